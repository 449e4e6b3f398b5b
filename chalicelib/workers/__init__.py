"""Event-driven workers: release (pacer), dispatch, stats."""
