"""First-party policies plugins (one module per plugin)."""
