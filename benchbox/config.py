"""Typed configuration: the run config, a cell's plugin choices, and their stable hash.

A cell (:class:`CellSpec`) is one plugin of each kind in :data:`benchbox.registry.KINDS` --
dataset, generator, policy, detector -- each a :class:`PluginChoice` (registered name + that
plugin's ``Config``), plus the augmentation and run options. Plugin ``Config`` dataclasses are
read, coerced and checked by :mod:`benchbox.options`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal, Union

from . import registry
from .errors import ConfigError
from .options import build_config

__all__ = ["AugmentConfig", "RunOptions", "PluginChoice", "CellSpec", "DEFAULT_PLUGINS", "build_config",
           "config_hash", "to_dict"]

DEFAULT_PLUGINS: dict[str, str] = dict(zip(registry.KINDS, ("mnist", "ae", "ppo", "transformer")))
"""The default cell (``benchbox run`` with no selectors, ``make run``): kind -> plugin name."""


@dataclass
class AugmentConfig:
    """How many images the latent policy generates."""

    ratio: float = 1.0
    """Generated images per real training image (0 disables augmentation)."""
    batch_size: int = 256
    """Latents decoded per batch."""


@dataclass
class RunOptions:
    """Options of one benchmark cell that belong to no plugin."""

    seed: int = 0
    """Seed for splits, weight init, sampling and exploration."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto picks cuda when available."""
    out: str = "runs"
    """Folder that receives runs/<id>/."""
    threads: int = 0
    """CPU threads for torch (0 keeps torch's default)."""


def to_dict(cfg: Any) -> Any:
    return dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else cfg


def config_hash(obj: Any, length: int = 12) -> str:
    """Stable short hash of a JSON-able config (key order does not matter)."""
    blob = json.dumps(to_dict(obj), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


@dataclass
class PluginChoice:
    """One plugin of a cell: its registered name and its ``Config`` instance."""

    name: str
    config: Any

    @classmethod
    def of(cls, kind: str, choice: Union[str, tuple[str, Any], "PluginChoice"]) -> "PluginChoice":
        """From a name (the plugin's default Config), ``(name, Config or dict of options)`` or a choice."""
        if isinstance(choice, PluginChoice):
            return choice
        name, config = (choice, None) if isinstance(choice, str) else choice
        plugin_config = registry.load(registry.KINDS[kind], name).Config
        if config is None or isinstance(config, dict):
            config = build_config(plugin_config, config or {}, f"{kind} {name!r}")
        return cls(name, config)


@dataclass
class CellSpec:
    """A fully resolved benchmark cell: one plugin per kind (``plugins[kind]``), augment and run options.

    ``CellSpec.of(dataset="digits", generator=("ae", {"epochs": 2}))`` fills unnamed kinds from
    :data:`DEFAULT_PLUGINS`; ``spec["policy"].name`` / ``spec["policy"].config`` read a choice.
    """

    plugins: dict[str, PluginChoice]
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    run: RunOptions = field(default_factory=RunOptions)

    def __post_init__(self) -> None:
        if set(self.plugins) != set(registry.KINDS):
            raise ConfigError(f"a cell needs exactly one plugin of each kind ({', '.join(registry.KINDS)}), "
                              f"got {', '.join(self.plugins) or 'none'}")
        self.plugins = {kind: self.plugins[kind] for kind in registry.KINDS}  # data-flow order

    @classmethod
    def of(cls, augment: AugmentConfig | None = None, run: RunOptions | None = None,
           **choices: Union[str, tuple[str, Any], PluginChoice]) -> "CellSpec":
        unknown = set(choices) - set(registry.KINDS)
        if unknown:
            raise ConfigError(f"unknown plugin kind(s) {', '.join(sorted(unknown))}; use {', '.join(registry.KINDS)}")
        plugins = {kind: PluginChoice.of(kind, choices.get(kind, DEFAULT_PLUGINS[kind])) for kind in registry.KINDS}
        return cls(plugins, augment or AugmentConfig(), run or RunOptions())

    def __getitem__(self, kind: str) -> PluginChoice:
        return self.plugins[kind]

    @property
    def names(self) -> dict[str, str]:
        """kind -> plugin name."""
        return {kind: choice.name for kind, choice in self.plugins.items()}

    def resolved(self) -> dict[str, Any]:
        """The full resolved config as stored in result.json (its hash keys the results rows)."""
        return {
            **{kind: {"name": c.name, **to_dict(c.config)} for kind, c in self.plugins.items()},
            "augment": to_dict(self.augment),
            "seed": self.run.seed,
            "device": self.run.device,
        }

    def hash(self) -> str:
        return config_hash(self.resolved())
