"""The Python API: run a cell, run a grid, load results into pandas, make a leaderboard.

Everything the ``benchbox`` command line does is here as functions, so a notebook or a script
needs no CLI and no internals::

    >>> import benchbox
    >>> r = benchbox.run(dataset="digits", generator="ae", policy="none", detector="ae",
    ...                  generator_epochs=1, detector_epochs=1, dataset_train_limit=60, device="cpu",
    ...                  write=False)
    >>> round(r.metrics["image_auroc"], 2) > 0.5
    True
    >>> sorted(r.timings)[:3]
    ['augment', 'fit detector', 'fit generator']

Plugin options are keyword arguments prefixed by their kind -- ``detector_epochs=3`` is
``--detector.epochs 3`` (``**{"detector.epochs": 3}`` works too), or a plugin is given as
``(name, {options})``. Run options are ``seed``, ``device``, ``out``, ``threads``; ``augment`` is a
ratio or a dict of :class:`~benchbox.config.AugmentConfig` fields. Every option is checked (type and
bounds) before anything runs: a bad one raises :class:`~benchbox.errors.ConfigError` in one line.

A grid, its results as a DataFrame, and a leaderboard::

    >>> import benchbox, tempfile, pathlib
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> g = benchbox.grid({"datasets": ["digits"], "generators": ["ae"], "policies": ["none", "random"],
    ...                    "detectors": ["ae"], "seeds": [0], "device": "cpu",
    ...                    "options": {"generator": {"epochs": 1}, "detector": {"epochs": 1},
    ...                                "dataset": {"train_limit": 60}}},
    ...                   results=tmp / "results.jsonl", write_runs=False, cache=tmp / "cache")
    >>> (g.ok, g.failed)
    (2, 0)
    >>> df = benchbox.load_results(tmp / "results.jsonl")
    >>> sorted(df["policy"])
    ['none', 'random']
    >>> "generator.epochs" in df.columns and "image_auroc" in df.columns
    True
    >>> board = benchbox.leaderboard(df)
    >>> list(board["policy"].sort_values())
    ['none', 'random']
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from . import registry
from .config import AugmentConfig, CellSpec, PluginChoice, RunOptions, DEFAULT_PLUGINS
from .errors import ConfigError
from .options import build_config

__all__ = ["Result", "GridRun", "run", "run_spec", "grid", "grid_spec", "cell_spec", "load_results", "leaderboard"]

RUN_OPTIONS = tuple(f.name for f in dataclasses.fields(RunOptions))  # seed, device, out, threads


# --------------------------------------------------------------------------------------------
# One cell
# --------------------------------------------------------------------------------------------


@dataclass
class Result:
    """A finished cell: ``metrics``, ``config`` (resolved), ``path`` (run folder or None), ``timings``.

    ``row`` is the whole result dict, as in ``result.json`` and the grid's results file.
    """

    row: dict[str, Any]

    @property
    def metrics(self) -> dict[str, Any]:
        return self.row.get("metrics", {})

    @property
    def config(self) -> dict[str, Any]:
        return self.row.get("config", {})

    @property
    def timings(self) -> dict[str, float]:
        return self.row.get("timings", {})

    @property
    def path(self) -> Path | None:
        return Path(self.row["path"]) if self.row.get("path") else None

    @property
    def id(self) -> str | None:
        return self.row.get("id")

    @property
    def seed(self) -> int:
        return int(self.row.get("seed", 0))

    @property
    def status(self) -> str:
        return str(self.row.get("status", "ok"))

    def __getitem__(self, key: str) -> Any:
        return self.row[key]

    def __repr__(self) -> str:
        names = "/".join(str(self.config.get(k, {}).get("name", "?")) for k in registry.KINDS)
        auroc = self.metrics.get("image_auroc")
        shown = f"image_auroc={auroc:.4f}" if isinstance(auroc, float) else self.status
        where = f", {self.path}" if self.path else ""
        return f"Result({names} seed {self.seed}: {shown}, {self.timings.get('total', 0):.1f} s{where})"


def cell_spec(dataset: Any = None, generator: Any = None, policy: Any = None, detector: Any = None,
              augment: Any = None, **options: Any) -> CellSpec:
    """A checked :class:`CellSpec` from the arguments :func:`run` takes (no run)."""
    choices = {"dataset": dataset, "generator": generator, "policy": policy, "detector": detector}
    per_kind: dict[str, dict[str, Any]] = {k: {} for k in registry.KINDS}
    run_opts: dict[str, Any] = {}
    for key, value in options.items():
        kind, sep, opt = key.replace(".", "_", 1).partition("_") if "." in key else key.partition("_")
        if key in RUN_OPTIONS:
            run_opts[key] = value
        elif sep and kind in registry.KINDS and opt:
            per_kind[kind][opt] = value
        else:
            valid = [*RUN_OPTIONS, *(f"{k}_OPTION" for k in registry.KINDS)]
            close = difflib.get_close_matches(key, list(RUN_OPTIONS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; expected one of {', '.join(valid)}"
            raise ConfigError(f"benchbox.run got an unknown option {key!r}{hint}")
    plugins: dict[str, PluginChoice] = {}
    for kind in registry.KINDS:
        choice = choices[kind] if choices[kind] is not None else DEFAULT_PLUGINS[kind]
        if isinstance(choice, PluginChoice):
            if per_kind[kind]:
                raise ConfigError(f"{kind} options {', '.join(per_kind[kind])} given beside a built {kind} config")
            plugins[kind] = choice
            continue
        name, own = (choice, {}) if isinstance(choice, str) else choice
        if not isinstance(name, str):
            raise ConfigError(f"{kind} must be a plugin name or (name, options), got {choice!r}")
        if dataclasses.is_dataclass(own):
            if per_kind[kind]:
                raise ConfigError(f"{kind} options {', '.join(per_kind[kind])} given beside a built {kind} config")
            from .options import check_config

            check_config(own, f"{kind} {name!r} option ")
            plugins[kind] = PluginChoice(name, own)
            continue
        cls = registry.load(registry.KINDS[kind], name)
        plugins[kind] = PluginChoice(name, build_config(cls.Config, {**dict(own or {}), **per_kind[kind]},
                                                        f"{kind} {name!r}"))
    if augment is None:
        aug = AugmentConfig()
    elif isinstance(augment, AugmentConfig):
        aug = augment
    elif isinstance(augment, (int, float)) and not isinstance(augment, bool):
        aug = build_config(AugmentConfig, {"ratio": augment}, "augment")
    elif isinstance(augment, dict):
        aug = build_config(AugmentConfig, augment, "augment")
    else:
        raise ConfigError(f"augment must be a ratio or a dict of {', '.join(f.name for f in dataclasses.fields(AugmentConfig))}, "
                          f"got {augment!r}")
    return CellSpec(plugins, augment=aug, run=build_config(RunOptions, run_opts, "run"))


def run(dataset: Any = None, generator: Any = None, policy: Any = None, detector: Any = None, *,
        augment: Any = None, write: bool = True, cache: str | os.PathLike | bool | None = None,
        log: str | Sequence[str] | None = None, log_uri: str | None = None, log_experiment: str = "benchbox",
        progress: bool = False, **options: Any) -> Result:
    """Run one cell and return its :class:`Result`; unnamed kinds take the CLI's defaults.

    ``write=False`` keeps everything in memory (no run folder); ``cache`` reuses fitted stages
    from a stage cache folder (``True``: the default one); ``log="mlflow"`` / ``"tensorboard"``
    (or both) exports the finished cell (:mod:`benchbox.tracking`); ``progress=True`` prints plain
    progress lines to stderr.
    """
    spec = cell_spec(dataset, generator, policy, detector, augment, **options)
    return run_spec(spec, write=write, cache=cache, log=log, log_uri=log_uri, log_experiment=log_experiment,
                    progress=progress)


def _log_kinds(log: str | Sequence[str] | None, log_uri: str | None) -> list[str]:
    from .tracking import preflight

    kinds = [log] if isinstance(log, str) else list(log or [])
    kinds = [k.strip() for item in kinds for k in item.split(",") if k.strip()]
    if log_uri and len(kinds) != 1:
        raise ConfigError("--log-uri names one store: use it with exactly one --log (mlflow or tensorboard)")
    for kind in kinds:
        preflight(kind, log_uri)
    return kinds


def _cache(cache: str | os.PathLike | bool | None) -> Any:
    if cache is None or cache is False:
        return None
    from .cache import StageCache, default_root

    return StageCache(str(default_root(None if cache is True else str(cache)).absolute()))


def run_spec(spec: CellSpec, *, reporter: Any = None, write: bool = True, cache: Any = None,
             log: str | Sequence[str] | None = None, log_uri: str | None = None, log_experiment: str = "benchbox",
             progress: bool = False) -> Result:
    """Run a built :class:`CellSpec` (what ``benchbox run`` parsed): the run, then the tracking export."""
    from .runner import run_cell

    kinds = _log_kinds(log, log_uri)  # a missing extra or an unreachable server fails before the run
    from .gridspec import incompatibility

    reason = incompatibility(spec)  # declared by the plugins: one line before any stage, as the grid skips it
    if reason:
        raise ConfigError(f"{reason}: they cannot run together")
    if reporter is None and progress:
        import sys

        from .progress import LineReporter

        reporter = LineReporter(sys.stderr)
    row = run_cell(spec, reporter, write=write, cache=cache if hasattr(cache, "fetch") else _cache(cache))
    for kind in kinds:
        from .tracking import export

        export(row, kind, log_uri, log_experiment)
    return Result(row)


# --------------------------------------------------------------------------------------------
# A grid
# --------------------------------------------------------------------------------------------


@dataclass
class GridRun:
    """What :func:`grid` did: cell counts, the results file, and the rows as a DataFrame (``frame()``)."""

    results: Path
    total: int
    ok: int
    failed: int
    skipped: int
    seconds: float
    generator_trainings: int = 0
    stage_hits: int = 0
    failures: list[str] = field(default_factory=list)
    skipped_combinations: list[str] = field(default_factory=list)

    def frame(self, **kwargs: Any) -> Any:
        """``load_results(self.results)``."""
        return load_results(self.results, **kwargs)


def grid_spec(spec: Any) -> Any:
    """A :class:`~benchbox.gridspec.GridSpec` from a GridSpec, a TOML path, or a dict.

    The dict is either the TOML's shape (``{"grid": {...}, "augment": {...}, "options": {...}}``)
    or flat (``{"datasets": [...], ..., "augment": {...}, "options": {...}}``).
    """
    from .gridspec import GridSpec

    if isinstance(spec, GridSpec):
        return spec
    if isinstance(spec, (str, os.PathLike)):
        return GridSpec.from_toml(spec)
    if isinstance(spec, dict):
        flat = {**spec.get("grid", {}), **{k: v for k, v in spec.items() if k != "grid"}}
        names = {f.name for f in dataclasses.fields(GridSpec)}
        bad = sorted(set(flat) - names)
        if bad:
            raise ConfigError(f"grid spec: unknown key(s) {', '.join(bad)}; keys: {', '.join(sorted(names))}")
        return GridSpec(**flat)
    raise ConfigError(f"grid spec must be a GridSpec, a TOML path or a dict, got {type(spec).__name__}")


def grid(spec: Any, results: str | os.PathLike | None = None, *, runs_dir: str | os.PathLike | None = None,
         write_runs: bool = True, cache: str | os.PathLike | bool | None = True, backend: str = "sequential",
         workers: int = 1, ray_address: str | None = None, gpus_per_cell: float = 0.0, retry_failed: bool = False,
         log: str | Sequence[str] | None = None, log_uri: str | None = None, log_experiment: str | None = None,
         progress: Any = None) -> GridRun:
    """Run every cell of ``spec`` (resumable: cells already in ``results`` are skipped); see :func:`grid_spec`.

    Axes take glob patterns (``"detectors": ["anomalib-*"]``); combinations the plugins declare cannot
    run together are not run and come back, with their reason, in ``GridRun.skipped_combinations``.

    ``results`` defaults to ``grid-results/grid.jsonl``; run folders go to ``runs_dir`` (default
    beside the results). ``cache=True`` uses the default stage cache, a path another one, ``False``
    none. ``log`` exports every cell at the end (one MLflow run / TensorBoard folder per cell, one
    experiment named after the results file unless ``log_experiment``).
    """
    from .grid import run_grid

    gs = grid_spec(spec)
    kinds = _log_kinds(log, log_uri)
    results = Path(results or Path("grid-results") / "grid.jsonl").absolute()
    runs = str(Path(runs_dir).absolute()) if runs_dir else str(results.parent / f"{results.stem}-runs")
    cells, skipped = gs.expand(out=runs)
    cache_root = None
    if cache is not None and cache is not False:
        from .cache import default_root

        cache_root = str(default_root(None if cache is True else str(cache)).absolute())
    out = run_grid(cells, results, cache_root, backend, workers, ray_address, gpus_per_cell, retry_failed,
                   write_runs=write_runs, progress=progress)
    from .grid import skipped_lines

    out.incompatible = skipped_lines(skipped)
    for kind in kinds:
        from .tracking import export

        export(results, kind, log_uri, log_experiment or results.stem)
    return GridRun(results=results, total=out.total, ok=out.ok, failed=out.failed, skipped=out.skipped,
                   seconds=out.seconds, generator_trainings=out.generator_trainings, stage_hits=out.stage_hits,
                   failures=list(out.failures), skipped_combinations=list(out.incompatible))


# --------------------------------------------------------------------------------------------
# Results as a DataFrame, and back
# --------------------------------------------------------------------------------------------

META = ("id", "status", "seed", "device", "config_hash", "category", "error", "stage", "path", "created")


def _rows(source: Any) -> tuple[list[dict[str, Any]], int]:
    """(rows, unreadable lines) from a results file, a run folder, a folder of run folders, or several."""
    from .results import latest_rows, read_rows

    if isinstance(source, dict):
        return [source], 0
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            files = [path / "result.json"] if (path / "result.json").is_file() else sorted(path.glob("*/result.json"))
            if not files:
                raise ConfigError(f"{path}: no result.json in it or in its sub-folders (a run folder, or a folder "
                                  "of run folders, was expected)")
            rows = [json.loads(f.read_text()) for f in files]
            return list(latest_rows([r for r in rows if isinstance(r, dict) and "config_hash" in r]).values()), 0
        if not path.is_file():
            raise ConfigError(f"results file {path} not found")
        rows, bad = read_rows(path)
        return list(latest_rows(rows).values()), bad
    rows, bad = [], 0
    for item in source:
        r, b = _rows(item)
        rows += r
        bad += b
    return list(latest_rows(rows).values()), bad


def _flat_row(row: dict[str, Any]) -> dict[str, Any]:
    rec: dict[str, Any] = {}
    cfg = row.get("config", {})
    for kind in registry.KINDS:
        part = dict(cfg.get(kind, {}))
        rec[kind] = part.pop("name", None)
        for k, v in part.items():
            rec[f"{kind}.{k}"] = json.dumps(v) if isinstance(v, (list, dict)) else v
    for k, v in (cfg.get("augment") or {}).items():
        rec[f"augment.{k}"] = v
    for k in ("id", "status", "seed", "config_hash", "error", "stage", "path", "created"):
        if k in row:
            rec[k] = row[k]
    rec["device"] = cfg.get("device", row.get("device"))
    rec["category"] = str((row.get("data") or {}).get("category", ""))
    for k, v in (row.get("metrics") or {}).items():
        if v is None or isinstance(v, (int, float, str)):
            rec[k] = math.nan if v is None else v
    for k, v in (row.get("timings") or {}).items():
        rec[f"time.{k}"] = v
    return rec


def load_results(path: Any, status: str | None = None) -> Any:
    """Results as a ``pandas.DataFrame``: one row per cell (its latest row), the config flattened.

    Columns: the plugin names (``dataset``, ``generator``, ``policy``, ``detector``), their
    options (``generator.epochs``, ...), ``augment.*``, ``seed``, ``device``, ``status``, the metrics
    (``image_auroc``, ``gen_fid``, ...), ``time.<stage>`` seconds, ``path``, ``config_hash``, ``id``.
    ``path`` is a results file (JSON Lines), a run folder, a folder of run folders, or a list of
    them; ``status="ok"`` keeps only successful cells.

    >>> import benchbox, json, pathlib, tempfile
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "r.jsonl"
    >>> cfg = {"dataset": {"name": "digits"}, "generator": {"name": "ae", "epochs": 2}, "policy": {"name": "none"},
    ...        "detector": {"name": "ae"}, "augment": {"ratio": 1.0}, "seed": 0, "device": "cpu"}
    >>> _ = f.write_text(json.dumps({"config_hash": "h", "status": "ok", "seed": 0, "config": cfg,
    ...                              "metrics": {"image_auroc": 0.9}}) + "\\n")
    >>> df = benchbox.load_results(f)
    >>> [str(v) for v in df.loc[0, ["dataset", "generator.epochs", "image_auroc"]]]
    ['digits', '2', '0.9']
    """
    import pandas as pd

    rows, _ = _rows(path)
    if status is not None:
        rows = [r for r in rows if r.get("status") == status]
    return pd.DataFrame([_flat_row(r) for r in rows])


def _unflatten(rec: dict[str, Any]) -> dict[str, Any]:
    """A results row rebuilt from a :func:`load_results` record (what the leaderboard reads)."""
    def present(v: Any) -> bool:
        return not (isinstance(v, float) and math.isnan(v))

    cfg: dict[str, Any] = {kind: {"name": rec.get(kind)} for kind in registry.KINDS}
    cfg["augment"] = {}
    metrics: dict[str, Any] = {}
    for key, value in rec.items():
        head, dot, tail = key.partition(".")
        if dot and head in cfg and present(value):
            cfg[head][tail] = value
        elif not dot and key not in META and key not in registry.KINDS:
            metrics[key] = value if present(value) else None
    cfg["seed"], cfg["device"] = rec.get("seed"), rec.get("device")
    row = {k: rec[k] for k in META if k in rec and present(rec[k])}
    row.update(config=cfg, metrics=metrics, data={"category": rec.get("category", "")})
    row.setdefault("status", "ok")
    return row


def leaderboard(results: Any, out: str | os.PathLike | None = None, title: str = "benchbox leaderboard") -> Any:
    """The leaderboard table (``pandas.DataFrame``) of a results file / DataFrame from :func:`load_results`.

    With ``out``, also writes ``leaderboard.md/.csv/.json/.html`` there. Raises ConfigError when no
    row can be ranked, saying how many lines were unreadable.
    """
    import pandas as pd

    from .leaderboard import build, write_all

    bad = 0
    if isinstance(results, pd.DataFrame):
        rows = [_unflatten(rec) for rec in results.to_dict(orient="records")]
        where = "the DataFrame"
    else:
        rows, bad = _rows(results)
        where = ", ".join(str(p) for p in results) if isinstance(results, (list, tuple)) else str(results)
    if not rows:
        if bad:
            raise ConfigError(f"{where}: none of its {bad} non-empty line(s) is a benchbox result row "
                              "(JSON with a config_hash); nothing to rank")
        raise ConfigError(f"{where}: no result rows; nothing to rank")
    if not any(r.get("status") == "ok" for r in rows):
        failed = sum(r.get("status") == "failed" for r in rows)
        raise ConfigError(f"{where}: no successful rows among {len(rows)} ({failed} failed"
                          + (f", {bad} unreadable line(s)" if bad else "") + "); nothing to rank")
    table = build(rows)
    if out is not None:
        write_all(table, Path(out), title)
    return table


# --------------------------------------------------------------------------------------------
# benchbox.grid / benchbox.leaderboard: modules that are also the functions above
# --------------------------------------------------------------------------------------------


class CallableModule(types.ModuleType):
    """A submodule that can be called like the API function of the same name.

    ``benchbox.grid`` is the module :mod:`benchbox.grid` *and* calls :func:`benchbox.api.grid`
    (likewise ``benchbox.leaderboard``), so ``benchbox.grid(spec)`` works however the submodule
    was first imported, and ``from benchbox.grid import run_grid`` keeps working.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(sys.modules[__name__], self.__name__.rpartition(".")[2])(*args, **kwargs)


def make_callable(module_name: str) -> None:
    """Turn submodule ``module_name`` (``benchbox.grid``) into a :class:`CallableModule`."""
    sys.modules[module_name].__class__ = CallableModule
