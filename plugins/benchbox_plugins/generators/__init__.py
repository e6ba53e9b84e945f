"""First-party generators plugins (one module per plugin)."""
