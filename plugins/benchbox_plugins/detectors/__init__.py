"""First-party detectors plugins (one module per plugin)."""
