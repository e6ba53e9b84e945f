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
    p.add_argument("--dry-run", action="store_true", help="print the cells and which stages are cached; run nothing")
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
    cells = spec.cells(out=runs_dir)
    cache_root = None if args.no_cache else str(default_root(args.cache_dir).absolute())
    console, err = Console(), Console(stderr=True)
    if args.dry_run:
        rows = read_rows(results)[0]
        done = latest_rows(rows)
        stale = {c.hash() for c in pending_cells(cells, rows)[0]}  # cells with rows, but none of today's code
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
        Console(width=max(140, console.width)).print(table)
        return 0
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
    console.print(f"{out.total} cells: {out.ok} run, {out.skipped} already in results{stale}, {out.failed} failed; "
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
