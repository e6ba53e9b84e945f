"""Example third-party benchbox plugins (registered through entry points in pyproject.toml)."""

__version__ = "0.1.0"
