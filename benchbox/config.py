"""Typed configuration: plugin ``Config`` dataclasses, the run config, and their stable hash."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import ConfigError


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


def build_config(cls: type, options: dict[str, Any], where: str) -> Any:
    """Build a plugin ``Config`` from keyword options, rejecting unknown names and wrong types.

    Option names may use dashes or underscores (``train-limit`` == ``train_limit``).
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for raw, value in options.items():
        name = raw.replace("-", "_")
        if name not in fields:
            import difflib

            close = difflib.get_close_matches(name, list(fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; options: {', '.join(fields) or 'none'}"
            raise ConfigError(f"{where} has no option {raw!r}{hint}")
        kwargs[name] = _coerce(value, hints[name], f"{where} option {raw!r}")
    return cls(**kwargs)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is Literal:  # exact type too: True must not pass for Literal[1], nor 1.0 for Literal[1]
        if any(value == a and type(value) is type(a) for a in args):
            return value
        raise ConfigError(f"{where} must be one of {', '.join(map(repr, args))}, got {value!r}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} expects a list, got {value!r}")
        inner = args[0] if args else Any
        return origin(_coerce(v, inner, where) for v in value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} expects true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where} expects an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:
                raise ConfigError(f"{where} expects a number within float range, got {value!r}") from None
        raise ConfigError(f"{where} expects a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where} expects a string, got {value!r}")
    if dataclasses.is_dataclass(tp) and isinstance(value, dict):
        return build_config(tp, value, where)
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"{where}: cannot use {value!r} as {getattr(tp, '__name__', tp)}")


def to_dict(cfg: Any) -> Any:
    return dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else cfg


def config_hash(obj: Any, length: int = 12) -> str:
    """Stable short hash of a JSON-able config (key order does not matter)."""
    blob = json.dumps(to_dict(obj), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


@dataclass
class CellSpec:
    """A fully resolved benchmark cell: the four plugin choices with their configs."""

    dataset: str = "mnist"
    generator: str = "ae"
    policy: str = "random"
    detector: str = "transformer"
    dataset_config: Any = None
    generator_config: Any = None
    policy_config: Any = None
    detector_config: Any = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    run: RunOptions = field(default_factory=RunOptions)

    def resolved(self) -> dict[str, Any]:
        """The full resolved config as stored in result.json."""
        return {
            "dataset": {"name": self.dataset, **to_dict(self.dataset_config)},
            "generator": {"name": self.generator, **to_dict(self.generator_config)},
            "policy": {"name": self.policy, **to_dict(self.policy_config)},
            "detector": {"name": self.detector, **to_dict(self.detector_config)},
            "augment": to_dict(self.augment),
            "seed": self.run.seed,
            "device": self.run.device,
        }

    def hash(self) -> str:
        return config_hash(self.resolved())
