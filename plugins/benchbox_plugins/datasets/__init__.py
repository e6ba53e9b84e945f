"""First-party datasets plugins (one module per plugin)."""
