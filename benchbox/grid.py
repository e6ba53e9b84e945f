"""``benchbox grid``: run every cell of a grid spec, resumably; the command line.

The spec (TOML or flags) and its expansion into cells are :mod:`benchbox.gridspec`; the same axes
are CLI flags (``--datasets digits,mnist --seeds 0,1 --set generator.epochs=2``), which replace the
spec's. Results: one JSON line per cell appended to ``--results`` (default ``results.jsonl`` beside
the spec's name under ``grid-results/``) through :mod:`benchbox.results` (locked, fsynced), so
several workers or grids lose no rows. A rerun skips every cell whose row (keyed by the cell's
config hash) was made by the code installed now (:mod:`benchbox.fingerprint`: benchbox's version
and the source of the cell's plugins); a row made by other code is *stale* and its cell reruns,
or with ``--keep-stale`` is kept (the leaderboard marks it). A torn last line (a killed writer) is
ignored and reported. Failed cells get a ``failed`` row with their error; the exit code is then 1.

Axes take glob patterns, as timm's ``list_models("pattern*")`` does (``--detectors 'anomalib-*'``,
``--policies '*'``), expanded against the registry. Combinations the plugins declare cannot run
together (a detector that refuses or needs pseudo-anomalies, against the policy's role) are listed
as skipped with the reason, never run. ``--dry-run`` prints the cells, the count, the skipped
combinations and an estimate of the wall time from the stage timings of earlier rows (:func:`estimate`).
"""

from __future__ import annotations

import argparse
import sys
import time

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from . import registry
from .config import CellSpec
from .errors import ConfigError
from .gridspec import GridSpec
from .results import append_row, latest_rows, read_rows

__all__ = ["GridSpec", "GridOutcome", "run_grid", "parser", "build_spec", "cmd_grid"]


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
    stale: int = 0  # cells whose rows were all made by other code (rerun, or kept with keep_stale)
    failures: list[str] = field(default_factory=list)
    incompatible: list[str] = field(default_factory=list)  # combinations the plugins declare cannot run (not run)


def pending_cells(cells: list[CellSpec], rows: list[dict[str, Any]], retry_failed: bool = False,
                  keep_stale: bool = False) -> tuple[list[CellSpec], int]:
    """The cells to run and the number of stale cells: a cell is done when a row of its config was
    made by the code installed now (a failed one only without ``retry_failed``); a cell with rows of
    other code only is stale and runs again, unless ``keep_stale``."""
    from .fingerprint import cell_code, code_hash

    by_cell: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_cell.setdefault(r["config_hash"], []).append(r)
    todo, stale = [], 0
    for c in cells:
        mine = by_cell.get(c.hash(), [])
        now = code_hash(cell_code(c)) if mine else None
        current = [r for r in mine if (r.get("code") or {}).get("hash") == now]
        if current:
            if retry_failed and current[-1].get("status") == "failed":
                todo.append(c)
        elif mine:
            stale += 1
            if not keep_stale:
                todo.append(c)
        else:
            todo.append(c)
    return todo, stale


def run_grid(cells: list[CellSpec], results: Path, cache_root: str | None, backend: str = "sequential",
             workers: int = 1, ray_address: str | None = None, gpus_per_cell: float = 0.0,
             retry_failed: bool = False, write_runs: bool = True, progress: Any = None,
             keep_stale: bool = False) -> GridOutcome:
    rows, torn = read_rows(results)
    todo, stale = pending_cells(cells, rows, retry_failed, keep_stale)
    out = GridOutcome(total=len(cells), skipped=len(cells) - len(todo), torn_lines=torn, stale=stale)
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
            names = "/".join(row["config"][kind]["name"] for kind in registry.KINDS)
            out.failures.append(f"{names} seed {row['seed']}: {row.get('error')}")
        cache = row.get("cache", {})
        out.stage_hits += sum(1 for v in cache.values() if v.get("status") == "hit")
        if row.get("status") == "ok" and cache.get("generator", {}).get("status") != "hit":
            out.generator_trainings += 1
        if progress:
            progress.finished(row, out)
    out.seconds = time.perf_counter() - t0
    return out


# --------------------------------------------------------------------------------------------
# Skipped combinations and the dry-run estimate
# --------------------------------------------------------------------------------------------


def skipped_lines(skipped: list[tuple[CellSpec, str]]) -> list[str]:
    """One line per reason (the plugins' declared incompatibility), with how many cells it rules out."""
    by_reason: dict[str, list[CellSpec]] = {}
    for cell, reason in skipped:
        by_reason.setdefault(reason, []).append(cell)
    return [f"{len(cells)} cell(s): {reason}" for reason, cells in by_reason.items()]


# which part of a cell's resolved config a stage's time depends on (besides the device type)
_STAGE_BASIS = {"load data": ("dataset",), "fit generator": ("dataset", "generator"),
                "fit policy": ("dataset", "generator", "policy"), "augment": ("dataset", "generator", "policy", "augment"),
                "fit detector": ("dataset", "policy", "augment", "detector"), "score": ("dataset", "detector")}
_CACHED_AS = {"fit generator": "generator", "fit policy": "policy", "augment": "augment"}
_STAGE_KIND = {"load data": "dataset", "fit generator": "generator", "fit policy": "policy", "augment": "policy",
               "fit detector": "detector", "score": "detector"}


@dataclass
class Estimate:
    """A grid's wall time (sequential) from stage timings measured in earlier results rows."""

    seconds: float = 0.0
    measured: int = 0  # stage runs (and per-cell overheads) with a measurement
    unmeasured: int = 0  # stage runs with none (counted as 0 s)
    lines: list[str] = field(default_factory=list)  # one per (stage, plugins, source)


def _device_type(device: str | None) -> str:
    return str(device or "cpu").split(":")[0]


def _basis(cfg: dict[str, Any], stage: str, names_only: bool) -> str:
    import json

    parts = {k: (cfg[k].get("name") if names_only and isinstance(cfg[k], dict) and "name" in cfg[k] else cfg[k])
             for k in _STAGE_BASIS[stage]}
    return json.dumps(parts, sort_keys=True, default=str)


def estimate(todo: list[CellSpec], rows: list[dict[str, Any]], source: str, device_type: str,
             cached: Any = None) -> Estimate:
    """Sum, over the stages the ``todo`` cells will really run, of the median time that stage took in
    earlier ``ok`` rows on the same device type: first rows with the same config for what the stage
    depends on (the dataset for 'load data'; dataset + generator for 'fit generator'; ...), else rows
    with the same plugins under other options. A cached stage (``cached(cell, stage) -> bool``) or one
    an earlier cell of this grid fits first (same stage key) costs nothing. Each line names its source."""
    import statistics

    from .cache import stage_keys

    samples: dict[tuple[str, bool, str], list[float]] = {}
    overhead: list[float] = []  # per cell: building the plugins, generation metrics, writing (total - stages)
    for r in rows:
        if r.get("status") != "ok" or _device_type(r.get("device")) != device_type:
            continue
        timings = r.get("timings") or {}
        if "total" in timings:
            overhead.append(max(0.0, timings["total"] - sum(v for k, v in timings.items() if k in _STAGE_BASIS)))
        cache = r.get("cache") or {}
        for stage, seconds in (r.get("timings") or {}).items():
            if stage not in _STAGE_BASIS or (cache.get(_CACHED_AS.get(stage, ""), {}).get("status") == "hit"):
                continue  # a cache hit times a load, not the work
            for names_only in (False, True):
                samples.setdefault((stage, names_only, _basis(r["config"], stage, names_only)), []).append(seconds)
    est = Estimate()
    agg: dict[tuple[str, str, str], list[float]] = {}
    seen: set[str] = set()
    for c in todo:
        cfg = c.resolved()
        keys = stage_keys(c, device_type)
        for stage in _STAGE_BASIS:
            cache_stage = _CACHED_AS.get(stage)
            if cache_stage:
                if keys[cache_stage] in seen or (cached is not None and cached(c, cache_stage, keys[cache_stage])):
                    continue
                seen.add(keys[cache_stage])
            kind = _STAGE_KIND[stage]
            label = f"{kind} {cfg[kind]['name']}"
            for names_only, how in ((False, "same config"), (True, "same plugins, other options")):
                found = samples.get((stage, names_only, _basis(cfg, stage, names_only)))
                if found:
                    t = statistics.median(found)
                    agg.setdefault((stage, label, f"median of {len(found)} row(s) in {source}, {how}"), []).append(t)
                    est.seconds += t
                    est.measured += 1
                    break
            else:
                agg.setdefault((stage, label, "no measurement"), []).append(0.0)
                est.unmeasured += 1
    missing: dict[str, list[str]] = {}
    for (stage, label, src), times in agg.items():
        if src == "no measurement":
            missing.setdefault(stage, []).append(f"{label.split(' ', 1)[1]} x {len(times)}")
        else:
            est.lines.append(f"{stage:<13} {label}: {statistics.median(times):.1f} s x {len(times)} ({src})")
    est.lines += [f"{stage:<13} no measurement: {', '.join(items)}" for stage, items in missing.items()]
    if overhead and todo:
        t = statistics.median(overhead)
        est.seconds += t * len(todo)
        est.measured += len(todo)
        est.lines.append(f"{'per cell':<13} set-up, metrics, writing: {t:.1f} s x {len(todo)} (median of "
                         f"{len(overhead)} row(s) in {source}, total minus the stages)")
    return est


def _human(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


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
    for axis in registry.GROUPS:
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
    p.add_argument("--keep-stale", action="store_true",
                   help="keep rows made by other code (another benchbox version or plugin source) instead of "
                        "rerunning their cells; the leaderboard marks them stale")
    p.add_argument("--log", action="append", default=[], metavar="{mlflow,tensorboard}",
                   help="export every cell at the end: one MLflow run / TensorBoard folder per cell, one experiment "
                        "(needs pip install 'benchbox[tracking]'; repeatable)")
    p.add_argument("--log-uri", help="MLflow tracking URI (default sqlite:///mlruns/mlflow.db) or TensorBoard folder "
                                     "(default runs/tensorboard)")
    p.add_argument("--log-experiment", help="experiment name (default: the results file's name)")
    p.add_argument("--quiet", action="store_true", help="no progress output (bars on a terminal, else plain lines)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the cells, which stages are cached, the combinations skipped and why, and an estimate of "
                        "the wall time from the stage timings of earlier rows; run nothing")
    p.add_argument("--estimate-from", action="append", default=[], metavar="RESULTS.jsonl",
                   help="--dry-run: also take stage timings from this results file (repeatable)")
    return p


def build_spec(args: argparse.Namespace) -> GridSpec:
    spec = GridSpec.from_toml(args.spec) if args.spec else GridSpec()
    for axis in registry.GROUPS:
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
        if not eq or len(parts) not in (2, 3) or parts[0] not in registry.KINDS:
            raise ConfigError(f"--set {item!r}: expected KIND.OPT=VALUE or KIND.PLUGIN.OPT=VALUE, KIND one of "
                              f"{', '.join(registry.KINDS)}")
        table = spec.options.setdefault(parts[0], {})
        if len(parts) == 3:
            table = table.setdefault(parts[1], {})
        table[parts[-1]] = _parse_value(value)
    return spec


def _print_plan(console: Any, cells: list[CellSpec], todo: list[CellSpec], skipped: list[tuple[CellSpec, str]],
                incompatible: list[str], rows: list[dict[str, Any]], results: Path, extra: list[str], device: str,
                cache: Any) -> None:
    """The dry run's summary: cell counts, skipped combinations with their reasons, the time estimate."""
    from .runtime import resolve_device

    console.print(f"{len(cells) + len(skipped)} combinations: {len(cells)} cells ({len(todo)} to run, "
                  f"{len(cells) - len(todo)} already in results), {len(skipped)} skipped (cannot run together)",
                  highlight=False, soft_wrap=True)
    for line in incompatible:
        console.print(f"  skipped: {line}", highlight=False, soft_wrap=True)
    all_rows, sources = list(rows), [results.name]
    for path in extra:
        all_rows += read_rows(path)[0]
        sources.append(Path(path).name)
    device_type = resolve_device(device).type
    est = estimate(todo, all_rows, " + ".join(sources), device_type,
                   (lambda c, stage, key: cache.exists(stage, key)) if cache is not None else None)
    if not todo:
        console.print("estimated wall time: 0 s (nothing to run)", highlight=False)
        return
    if not est.measured:
        console.print(f"estimated wall time: unknown -- no earlier ok rows on {device_type} in "
                      f"{' + '.join(sources)} time these stages (--estimate-from RESULTS.jsonl adds a source)",
                      highlight=False, soft_wrap=True)
    else:
        part = f"; {est.unmeasured} stage run(s) unmeasured, counted as 0 s, so more" if est.unmeasured else ""
        console.print(f"estimated wall time: ~{_human(est.seconds)} sequential on {device_type} "
                      f"({est.measured} measured timings{part})", highlight=False, soft_wrap=True)
    for line in est.lines:
        console.print(f"  {line}", highlight=False, soft_wrap=True)


def cmd_grid(argv: Sequence[str]) -> int:
    from rich.console import Console
    from rich.table import Table

    from .cache import StageCache, default_root, stage_keys
    from .runtime import resolve_device

    args = parser().parse_args(list(argv))
    from .api import _log_kinds

    log_kinds = _log_kinds(args.log, args.log_uri)  # a missing extra or an unreachable server: before any cell
    spec = build_spec(args)
    name = Path(args.spec).stem if args.spec else "grid"
    results = Path(args.results or Path("grid-results") / f"{name}.jsonl")
    results = results.absolute()  # absolute: pool and Ray workers need not share our working directory
    runs_dir = str(Path(args.runs_dir).absolute()) if args.runs_dir else str(results.parent / f"{results.stem}-runs")
    cells, skipped = spec.expand(out=runs_dir)
    incompatible = skipped_lines(skipped)
    cache_root = None if args.no_cache else str(default_root(args.cache_dir).absolute())
    console, err = Console(), Console(stderr=True)
    if args.dry_run:
        rows = read_rows(results)[0]
        for extra in args.estimate_from:
            if not Path(extra).is_file():
                raise ConfigError(f"--estimate-from {extra}: no such results file")
        done = latest_rows(rows)
        todo = pending_cells(cells, rows, args.retry_failed, args.keep_stale)[0]
        stale = {c.hash() for c in pending_cells(cells, rows)[0]} & set(done)  # rows, but none of today's code
        cache = StageCache(cache_root) if cache_root else None
        device_type = resolve_device(spec.device).type if spec.device != "auto" else "auto"
        table = Table(title=f"{len(cells)} cells -> {results}")
        for col in (*registry.KINDS, "seed", "hash", "result", "cached stages"):
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
            table.add_row(*c.names.values(), str(c.run.seed), c.hash()[:8],
                          ("stale" if c.hash() in stale else row["status"]) if row else "todo", staged)
        wide = Console(width=max(140, console.width))
        wide.print(table)
        _print_plan(wide, cells, todo, skipped, incompatible, rows, results, args.estimate_from, spec.device, cache)
        return 0
    for line in incompatible:
        console.print(f"skipped (cannot run together): {line}", highlight=False, soft_wrap=True)
    prog: Any
    if args.quiet or not sys.stdout.isatty():  # plain lines for logs and pipes (none with --quiet)
        from .progress import GridLines

        prog = GridLines(sys.stdout, quiet=args.quiet)
    else:
        prog = GridProgress(err)
    try:
        out = run_grid(cells, results, cache_root, args.backend, args.workers, args.ray_address, args.gpus_per_cell,
                       args.retry_failed, write_runs=not args.no_run_folders, progress=prog,
                       keep_stale=args.keep_stale)
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
    stale = (f" ({out.stale} stale: kept, made by other code)" if args.keep_stale else
             f"; {out.stale} stale (made by other code) rerun") if out.stale else ""
    out.incompatible = incompatible
    incompat = f", {len(skipped)} skipped (cannot run together)" if skipped else ""
    console.print(f"{out.total} cells: {out.ok} run, {out.skipped} already in results{stale}, {out.failed} failed{incompat}; "
                  f"{out.generator_trainings} generator trainings, {out.stage_hits} stage-cache hits; "
                  f"{out.seconds:.1f} s -> {results}", highlight=False, soft_wrap=True)
    if log_kinds:
        from .tracking import describe_target, export

        experiment = args.log_experiment or results.stem
        for kind in log_kinds:
            new = export(results, kind, args.log_uri, experiment)
            console.print(f"logged {len(new)} new cell(s) to {describe_target(kind, args.log_uri, experiment)}",
                          highlight=False, soft_wrap=True)
    return 1 if out.failed else 0


from .api import make_callable  # noqa: E402  (benchbox.grid(spec) calls benchbox.api.grid)

make_callable(__name__)
