"""A grid spec: every combination of datasets x generators x policies x detectors x seeds.

Spec (TOML, e.g. ``benchmarks/default_grid.toml``); every axis entry is a plugin name, a glob
pattern over the registered names (``"anomalib-*"``, ``"*"``) or a table ``{name = "...", option =
value, ...}`` with options for that entry only (its name may be a pattern too)::

    [grid]
    datasets   = ["digits", {name = "mnist", normal_class = 0}]
    generators = ["ae", "vae"]
    policies   = ["none", "random"]
    detectors  = ["transformer"]
    seeds      = [0, 1, 2]
    device     = "cpu"          # run options: device, threads
    threads    = 1

    [augment]                   # AugmentConfig
    ratio = 1.0

    [options.generator]         # applied to every chosen generator whose Config has the field
    epochs = 2

    [options.detector.transformer]   # options of one plugin
    dim = 32

:meth:`GridSpec.cells` expands it into :class:`~benchbox.config.CellSpec` cells, checking every
option against the plugins' ``Config`` first (a typo fails the whole grid before anything runs);
:meth:`GridSpec.expand` also returns the combinations the plugins declare cannot run together
(:func:`incompatibility`), each with its reason.
Running them and the ``benchbox grid`` command line live in :mod:`benchbox.grid`.
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

from . import registry
from .config import AugmentConfig, CellSpec, PluginChoice, RunOptions
from .options import build_config
from .errors import ConfigError


@dataclass
class GridSpec:
    datasets: list[Any] = field(default_factory=lambda: ["digits"])
    generators: list[Any] = field(default_factory=lambda: ["ae"])
    policies: list[Any] = field(default_factory=lambda: ["none", "random"])
    detectors: list[Any] = field(default_factory=lambda: ["transformer"])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    device: str = "auto"
    threads: int = 0
    augment: dict[str, Any] = field(default_factory=dict)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # kind -> {option or plugin: ...}

    @classmethod
    def from_toml(cls, path: str | os.PathLike) -> "GridSpec":
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"grid spec {path} not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"grid spec {path}: {exc}") from None
        unknown = set(data) - {"grid", "augment", "options"}
        if unknown:
            raise ConfigError(f"grid spec {path}: unknown table(s) {', '.join(sorted(unknown))}; use grid, augment, options")
        grid = dict(data.get("grid", {}))
        names = {f.name for f in fields(cls)} - {"augment", "options"}
        bad = set(grid) - names
        if bad:
            raise ConfigError(f"grid spec {path}: unknown key(s) {', '.join(sorted(bad))} in [grid]; keys: {', '.join(sorted(names))}")
        opts = data.get("options", {})
        bad = set(opts) - set(registry.KINDS)
        if bad:
            raise ConfigError(f"grid spec {path}: unknown [options.{sorted(bad)[0]}]; use {', '.join(registry.KINDS)}")
        return cls(**grid, augment=dict(data.get("augment", {})), options=opts)

    def cells(self, out: str = "runs") -> list[CellSpec]:
        """The cells that can run, in an order that keeps cells sharing a generator (then a policy) together."""
        return self.expand(out)[0]

    def expand(self, out: str = "runs") -> tuple[list[CellSpec], list[tuple[CellSpec, str]]]:
        """(cells that can run, [(cell, reason)] for combinations the plugins declare cannot run together)."""
        axes = {kind: expand_axis(group, getattr(self, group)) for kind, group in registry.KINDS.items()}
        for kind, entries in axes.items():
            if not entries:
                raise ConfigError(f"grid axis {registry.KINDS[kind]} is empty")
        if not self.seeds:
            raise ConfigError("grid axis seeds is empty")
        for kind, group in registry.KINDS.items():  # a common option no chosen plugin has is a typo
            common = {k: v for k, v in self.options.get(kind, {}).items() if not isinstance(v, dict)}
            for opt in common:
                if not any(_has_option(registry.load(group, n), opt) for n, _ in axes[kind]):
                    raise ConfigError(f"[options.{kind}] {opt!r}: no chosen {kind} has this option")
        for kind, group in registry.KINDS.items():  # per-plugin tables: a registered plugin and its real options,
            for plugin, table in self.options.get(kind, {}).items():  # even when not chosen (no ignored typo)
                if isinstance(table, dict):
                    build_config(registry.load(group, plugin).Config, table, f"[options.{kind}.{plugin}]")
        augment = build_config(AugmentConfig, self.augment, "[augment]")
        # seeds vary right after the generator, so cells sharing a fitted generator are adjacent
        lists = list(axes.values())
        cut = list(axes).index("generator") + 1
        out_cells, skipped = [], []
        for combo in itertools.product(*lists[:cut], self.seeds, *lists[cut:]):
            seed, picks = combo[cut], combo[:cut] + combo[cut + 1:]
            cell = CellSpec(
                {kind: self._choice(kind, name, own) for kind, (name, own) in zip(axes, picks)},
                augment=augment,
                run=RunOptions(seed=int(seed), device=self.device, out=out, threads=self.threads),  # type: ignore[arg-type]
            )
            reason = incompatibility(cell)
            if reason:
                skipped.append((cell, reason))
            else:
                out_cells.append(cell)
        return out_cells, skipped

    def _choice(self, kind: str, name: str, own: dict[str, Any]) -> PluginChoice:
        """The plugin's Config: [options.KIND] common options it has < [options.KIND.NAME] < the axis entry's own."""
        cls = registry.load(registry.KINDS[kind], name)
        table = self.options.get(kind, {})
        opts = {k: v for k, v in table.items() if not isinstance(v, dict) and _has_option(cls, k)}
        opts.update(table[name] if isinstance(table.get(name), dict) else {})
        opts.update(own)
        return PluginChoice(name, build_config(cls.Config, opts, f"{kind} {name!r}"))


PATTERN_CHARS = "*?["


def expand_axis(group: str, entries: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    """An axis's entries with glob patterns (``"anomalib-*"``, ``"*"``, as timm's ``list_models``)
    expanded against the registered plugins of ``group``, in registry order; a table's options go to
    every plugin its pattern matches. A pattern matching nothing is an error naming the axis;
    repeated (name, options) pairs count once."""
    out: list[tuple[str, dict[str, Any]]] = []
    for e in entries:
        name, own = _entry(e, group)
        if any(ch in name for ch in PATTERN_CHARS):
            known = registry.names(group)
            hits = [n for n in known if fnmatch.fnmatchcase(n, name)]
            if not hits:
                raise ConfigError(f"grid axis {group}: pattern {name!r} matches no registered "
                                  f"{registry.KIND_OF[group]} (registered: {', '.join(known) or 'none'})")
            out += [(n, own) for n in hits]
        else:
            out.append((name, own))
    seen: set[str] = set()
    unique = []
    for name, own in out:
        key = json.dumps([name, own], sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            unique.append((name, own))
    return unique


def incompatibility(cell: CellSpec) -> str | None:
    """Why the cell's policy and detector cannot run together, as declared by the plugins
    (:meth:`LatentPolicy.output_role <benchbox.interfaces.LatentPolicy.output_role>` and
    :attr:`Detector.pseudo_anomalies <benchbox.interfaces.Detector.pseudo_anomalies>`), or None."""
    pol, det = cell["policy"], cell["detector"]
    pol_cls, det_cls = registry.load("policies", pol.name), registry.load("detectors", det.name)
    if not hasattr(det_cls, "pseudo_anomaly_use") or not hasattr(pol_cls, "output_role"):
        return None  # not derived from the interfaces: nothing declared
    role = pol_cls.output_role(pol.config) if cell.augment.ratio > 0 else None
    use = det_cls.pseudo_anomaly_use(det.config)
    if role == "anomaly" and use == "refuses":
        return (f"detector {det.name!r} does not train on pseudo-anomalies, and policy {pol.name!r} generates them "
                "(role anomaly)")
    if use == "needs" and role != "anomaly":
        made = "generates nothing" if role is None else f"generates {role} images (role {role})"
        return f"detector {det.name!r} needs pseudo-anomalies (a policy with role anomaly); policy {pol.name!r} {made}"
    return None


def _has_option(cls: type, opt: str) -> bool:
    return opt.replace("-", "_") in {f.name for f in fields(cls.Config)}


def _entry(e: Any, axis: str) -> tuple[str, dict[str, Any]]:
    if isinstance(e, str):
        return e, {}
    if isinstance(e, dict) and isinstance(e.get("name"), str):
        return e["name"], {k: v for k, v in e.items() if k != "name"}
    raise ConfigError(f"grid axis {axis}: entries are names or tables with a name, got {e!r}")
