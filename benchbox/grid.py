"""``benchbox grid``: every combination of datasets x generators x policies x detectors x seeds.

Spec (TOML, e.g. ``benchmarks/default_grid.toml``); every axis entry is a plugin name or a table
``{name = "...", option = value, ...}`` with options for that entry only::

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

The same axes are CLI flags (``--datasets digits,mnist --seeds 0,1 --set generator.epochs=2``),
which replace the spec's. Results: one JSON line per cell appended to ``--results`` (default
``results.jsonl`` beside the spec's name under ``grid-results/``), under an ``fcntl`` lock with
``O_APPEND`` + fsync, so several workers or grids lose no rows. A rerun skips every cell whose
row (keyed by the cell's config hash) is present; a torn last line (a killed writer) is ignored
and reported. Failed cells get a ``failed`` row with their error; the exit code is then 1.
"""

from __future__ import annotations

import argparse
import fcntl
import itertools
import json
import os
import time
try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator, Sequence

from . import registry
from .config import AugmentConfig, CellSpec, RunOptions, build_config
from .errors import ConfigError

AXES = {"datasets": "dataset", "generators": "generator", "policies": "policy", "detectors": "detector"}


# --------------------------------------------------------------------------------------------
# Spec
# --------------------------------------------------------------------------------------------


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
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # "generator" -> {opt or plugin: ...}

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
        bad = set(opts) - set(AXES.values())
        if bad:
            raise ConfigError(f"grid spec {path}: unknown [options.{sorted(bad)[0]}]; use dataset, generator, policy, detector")
        return cls(**grid, augment=dict(data.get("augment", {})), options=opts)

    def cells(self, out: str = "runs") -> list[CellSpec]:
        """All cells, in an order that keeps cells sharing a generator (then a policy) together."""
        axes = {axis: [_entry(e, axis) for e in getattr(self, axis)] for axis in AXES}
        for axis, entries in axes.items():
            if not entries:
                raise ConfigError(f"grid axis {axis} is empty")
        if not self.seeds:
            raise ConfigError("grid axis seeds is empty")
        for axis, key in AXES.items():  # a common option no chosen plugin has is a typo
            common = {k: v for k, v in self.options.get(key, {}).items() if not isinstance(v, dict)}
            for opt in common:
                if not any(_has_option(registry.load(axis, n), opt) for n, _ in axes[axis]):
                    raise ConfigError(f"[options.{key}] {opt!r}: no chosen {key} has this option")
        for axis, key in AXES.items():  # per-plugin tables: a registered plugin and its real options, even
            for plugin, table in self.options.get(key, {}).items():  # when not chosen (a typo must not be ignored)
                if isinstance(table, dict):
                    build_config(registry.load(axis, plugin).Config, table, f"[options.{key}.{plugin}]")
        augment = build_config(AugmentConfig, self.augment, "[augment]")
        out_cells = []
        for (ds, g, s, p, d) in itertools.product(axes["datasets"], axes["generators"], self.seeds,
                                                  axes["policies"], axes["detectors"]):
            configs = {}
            for (name, own), axis in zip((ds, g, p, d), ("datasets", "generators", "policies", "detectors")):
                key = AXES[axis]
                cls = registry.load(axis, name)
                opts = {k: v for k, v in self.options.get(key, {}).items()
                        if not isinstance(v, dict) and _has_option(cls, k)}
                opts.update(self.options.get(key, {}).get(name, {}) if isinstance(self.options.get(key, {}).get(name), dict) else {})
                opts.update(own)
                configs[key] = build_config(cls.Config, opts, f"{key} {name!r}")
            out_cells.append(CellSpec(
                dataset=ds[0], generator=g[0], policy=p[0], detector=d[0],
                dataset_config=configs["dataset"], generator_config=configs["generator"],
                policy_config=configs["policy"], detector_config=configs["detector"],
                augment=augment,
                run=RunOptions(seed=int(s), device=self.device, out=out, threads=self.threads),  # type: ignore[arg-type]
            ))
        return out_cells


def _has_option(cls: type, opt: str) -> bool:
    return opt.replace("-", "_") in {f.name for f in fields(cls.Config)}


def _entry(e: Any, axis: str) -> tuple[str, dict[str, Any]]:
    if isinstance(e, str):
        return e, {}
    if isinstance(e, dict) and isinstance(e.get("name"), str):
        return e["name"], {k: v for k, v in e.items() if k != "name"}
    raise ConfigError(f"grid axis {axis}: entries are names or tables with a name, got {e!r}")


# --------------------------------------------------------------------------------------------
# Results file (JSON Lines)
# --------------------------------------------------------------------------------------------


def append_row(path: Path, row: dict[str, Any]) -> None:
    """Append one JSON line atomically: O_APPEND, one write, fsync, under an exclusive flock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(row, default=str, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size:  # a writer killed mid-line left a torn tail: start a fresh line
            with open(path, "rb") as fh:
                fh.seek(size - 1)
                if fh.read(1) != b"\n":
                    line = b"\n" + line
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)  # closing releases the lock


def read_rows(path: str | os.PathLike) -> tuple[list[dict[str, Any]], int]:
    """All parseable rows and the number of torn/unparseable lines that were ignored."""
    rows, bad = [], 0
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or "config_hash" not in row:
                raise ValueError
            rows.append(row)
        except ValueError:
            bad += 1
    return rows, bad


def latest_rows(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last row of each cell (config hash): a retried failure is superseded by its rerun."""
    return {r["config_hash"]: r for r in rows}


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


@dataclass
class GridOutcome:
    total: int
    skipped: int
    ok: int = 0
    failed: int = 0
    stage_hits: int = 0
    generator_trainings: int = 0
    seconds: float = 0.0
    torn_lines: int = 0
    failures: list[str] = field(default_factory=list)


def run_grid(cells: list[CellSpec], results: Path, cache_root: str | None, backend: str = "sequential",
             workers: int = 1, ray_address: str | None = None, gpus_per_cell: float = 0.0,
             retry_failed: bool = False, write_runs: bool = True, progress: Any = None) -> GridOutcome:
    rows, torn = read_rows(results)
    done = latest_rows(rows)
    todo = [c for c in cells if c.hash() not in done or (retry_failed and done[c.hash()].get("status") == "failed")]
    out = GridOutcome(total=len(cells), skipped=len(cells) - len(todo), torn_lines=torn)
    t0 = time.perf_counter()
    if progress:
        progress.begin(out)
    on_start = progress.started if progress else None
    if backend == "ray":
        from .backends import run_ray

        stream: Iterator[dict[str, Any]] = run_ray(todo, cache_root, ray_address, gpus_per_cell, write=write_runs,
                                                   on_start=on_start)
    elif backend == "process" or workers > 1:
        from .backends import run_pool

        stream = run_pool(todo, cache_root, max(1, workers), write=write_runs, on_start=on_start)
    elif backend == "sequential":
        from .backends import run_sequential

        stream = run_sequential(todo, cache_root, write=write_runs, on_start=on_start)
    else:
        raise ConfigError(f"unknown backend {backend!r}; use sequential, process or ray")
    for row in stream:
        append_row(results, row)
        if row.get("status") == "ok":
            out.ok += 1
        else:
            out.failed += 1
            c = row["config"]
            out.failures.append(f"{c['dataset']['name']}/{c['generator']['name']}/{c['policy']['name']}/"
                                f"{c['detector']['name']} seed {row['seed']}: {row.get('error')}")
        cache = row.get("cache", {})
        out.stage_hits += sum(1 for v in cache.values() if v.get("status") == "hit")
        if row.get("status") == "ok" and cache.get("generator", {}).get("status") != "hit":
            out.generator_trainings += 1
        if progress:
            progress.finished(row, out)
    out.seconds = time.perf_counter() - t0
    return out


class GridProgress:
    """rich progress of a grid: cells done / skipped / stage-cache hits / failed / running, elapsed, ETA."""

    def __init__(self, console: Any):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("grid"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                                 TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console)
        self.running = 0

    def _desc(self, out: GridOutcome) -> str:
        return (f"[green]{out.ok} done[/] · {out.skipped} already in results · {out.stage_hits} stage-cache hits · "
                f"[red]{out.failed} failed[/] · {self.running} running")

    def begin(self, out: GridOutcome) -> None:
        self.progress.start()
        self.task = self.progress.add_task(self._desc(out), total=out.total - out.skipped)
        self.out = out

    def started(self, spec: CellSpec) -> None:
        self.running += 1
        self.progress.update(self.task, description=self._desc(self.out))

    def finished(self, row: dict[str, Any], out: GridOutcome) -> None:
        self.running = max(0, self.running - 1)
        self.progress.update(self.task, advance=1, description=self._desc(out))

    def stop(self) -> None:
        self.progress.stop()


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _int_csv(value: str) -> list[int]:
    try:
        return [int(v) for v in _csv(value)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {value!r}") from None


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="benchbox grid", description="Run every cell of a grid; rerun to resume.",
                                allow_abbrev=False)
    p.add_argument("spec", nargs="?", help="grid spec (TOML), e.g. benchmarks/default_grid.toml")
    for axis in AXES:
        p.add_argument(f"--{axis}", type=_csv, help=f"comma-separated {axis} (replaces the spec's)")
    p.add_argument("--seeds", type=_int_csv, help="comma-separated seeds")
    p.add_argument("--set", action="append", default=[], metavar="KIND[.PLUGIN].OPT=VALUE",
                   help="plugin option, e.g. generator.epochs=2 or detector.transformer.dim=32 (repeatable)")
    p.add_argument("--augment-ratio", type=float)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, help="torch CPU threads per cell")
    p.add_argument("--results", help="results file (JSON Lines); default grid-results/<spec name>.jsonl")
    p.add_argument("--runs-dir", help="per-cell run folders (samples.png, curves.png); default beside the results")
    p.add_argument("--no-run-folders", action="store_true", help="write only the results rows")
    p.add_argument("--cache-dir", help="stage cache folder (default $BENCHBOX_CACHE, else ~/.cache/benchbox); "
                                      "artifacts go in its stages/ subfolder")
    p.add_argument("--no-cache", action="store_true", help="disable the stage cache (every cell fits every stage)")
    p.add_argument("--backend", choices=["sequential", "process", "ray"], default="sequential")
    p.add_argument("--workers", type=int, default=1, help="local process pool size (implies --backend process)")
    p.add_argument("--ray-address", help="Ray cluster address (default: start a local Ray)")
    p.add_argument("--gpus-per-cell", type=float, default=0.0, help="GPUs requested per Ray task (fractional allowed)")
    p.add_argument("--retry-failed", action="store_true", help="rerun cells whose row says failed")
    p.add_argument("--dry-run", action="store_true", help="print the cells and which stages are cached; run nothing")
    return p


def build_spec(args: argparse.Namespace) -> GridSpec:
    spec = GridSpec.from_toml(args.spec) if args.spec else GridSpec()
    for axis in AXES:
        if getattr(args, axis):
            setattr(spec, axis, getattr(args, axis))
    if args.seeds:
        spec.seeds = args.seeds
    if args.device:
        spec.device = args.device
    if args.threads is not None:
        spec.threads = args.threads
    if args.augment_ratio is not None:
        spec.augment["ratio"] = args.augment_ratio
    for item in args.set:
        lhs, eq, value = item.partition("=")
        parts = lhs.split(".")
        if not eq or len(parts) not in (2, 3) or parts[0] not in AXES.values():
            raise ConfigError(f"--set {item!r}: expected KIND.OPT=VALUE or KIND.PLUGIN.OPT=VALUE, KIND one of "
                              f"{', '.join(AXES.values())}")
        table = spec.options.setdefault(parts[0], {})
        if len(parts) == 3:
            table = table.setdefault(parts[1], {})
        table[parts[-1]] = _parse_value(value)
    return spec


def cmd_grid(argv: Sequence[str]) -> int:
    from rich.console import Console
    from rich.table import Table

    from .cache import StageCache, default_root, stage_keys
    from .runtime import resolve_device

    args = parser().parse_args(list(argv))
    spec = build_spec(args)
    name = Path(args.spec).stem if args.spec else "grid"
    results = Path(args.results or Path("grid-results") / f"{name}.jsonl")
    results = results.absolute()  # absolute: pool and Ray workers need not share our working directory
    runs_dir = str(Path(args.runs_dir).absolute()) if args.runs_dir else str(results.parent / f"{results.stem}-runs")
    cells = spec.cells(out=runs_dir)
    cache_root = None if args.no_cache else str(default_root(args.cache_dir).absolute())
    console, err = Console(), Console(stderr=True)
    if args.dry_run:
        done = latest_rows(read_rows(results)[0])
        cache = StageCache(cache_root) if cache_root else None
        device_type = resolve_device(spec.device).type if spec.device != "auto" else "auto"
        table = Table(title=f"{len(cells)} cells -> {results}")
        for col in ("dataset", "generator", "policy", "detector", "seed", "hash", "result", "cached stages"):
            table.add_column(col)
        for c in cells:
            row = done.get(c.hash())
            if cache is not None:
                if device_type == "auto":
                    device_type = resolve_device("auto").type
                keys = stage_keys(c, device_type)
                staged = ", ".join(s for s in keys if cache.exists(s, keys[s])) or "-"
            else:
                staged = "(cache off)"
            table.add_row(c.dataset, c.generator, c.policy, c.detector, str(c.run.seed), c.hash()[:8],
                          row["status"] if row else "todo", staged)
        Console(width=max(140, console.width)).print(table)
        return 0
    prog = GridProgress(err)
    try:
        out = run_grid(cells, results, cache_root, args.backend, args.workers, args.ray_address, args.gpus_per_cell,
                       args.retry_failed, write_runs=not args.no_run_folders, progress=prog)
    except KeyboardInterrupt:  # Ctrl-C: every finished cell's row is already on disk (appended + fsynced)
        prog.stop()
        done = latest_rows(read_rows(results)[0])
        n = sum(1 for c in cells if c.hash() in done)
        err.print(f"[red]interrupted[/]: {n} of {len(cells)} cells are in {results}; rerun the same command to "
                  "resume (finished cells are skipped)", highlight=False, soft_wrap=True)
        return 130
    finally:
        prog.stop()
    if out.torn_lines:
        err.print(f"[yellow]warning:[/] ignored {out.torn_lines} torn or unreadable line(s) in {results}")
    for f in out.failures:
        err.print(f"[red]failed:[/] {f}", highlight=False, soft_wrap=True)
    console.print(f"{out.total} cells: {out.ok} run, {out.skipped} already in results, {out.failed} failed; "
                  f"{out.generator_trainings} generator trainings, {out.stage_hits} stage-cache hits; "
                  f"{out.seconds:.1f} s -> {results}", highlight=False, soft_wrap=True)
    return 1 if out.failed else 0
