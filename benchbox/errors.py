"""Errors benchbox reports to users as one clear line (the CLI prints them without a traceback)."""

from __future__ import annotations


class BenchboxError(Exception):
    """Base for every error meant for the user: its message is one line saying what to do."""


class UnknownPluginError(BenchboxError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class PluginLoadError(BenchboxError):
    """A plugin's module raised on import or does not define what its entry point names."""


class ConfigError(BenchboxError):
    """An option has a bad value."""


class DataError(BenchboxError):
    """A dataset file or folder is missing, empty or malformed."""


class TrainingDiverged(BenchboxError):
    """A training loss became NaN or infinite."""
