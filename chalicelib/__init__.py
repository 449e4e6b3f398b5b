"""Bulk Campaign API: all logic behind the thin Chalice app in app.py."""
