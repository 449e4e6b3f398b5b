"""Pure domain: models, rules and arithmetic. Imports nothing from AWS."""
