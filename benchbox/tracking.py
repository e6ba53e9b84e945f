"""Export finished benchmark cells to MLflow or TensorBoard (optional extra ``benchbox[tracking]``).

Tracking is a function over results that already exist -- a result dict returned by
``run_cell``, a run folder holding ``result.json``, or a grid's results file (JSON Lines) -- so the
runner and the grid call it once, at the end, and a tracking server that is down never costs a
trained cell::

    from benchbox.tracking import export
    export("grid-results/grid.jsonl", "mlflow")                 # sqlite:///mlruns/mlflow.db
    export("grid-results/grid.jsonl", "tensorboard", uri="tb")  # tb/<cell>/events.out.tfevents.*

Each cell becomes one run (MLflow) or one sub-folder (TensorBoard) named after its run id, all
under one experiment:

* params: the cell's resolved config flattened (``generator.epochs``, ``detector.name``, ...),
  plus ``seed``, ``device`` and ``config_hash``;
* metrics: every numeric entry of ``metrics`` (image AUROC, FID, ...) and ``time/<stage>`` seconds;
* curves: every training curve as a step-indexed series ``<stage>/<name>`` (``generator/train/loss``);
* artifacts: ``samples.png``, ``curves.png`` and ``result.json`` of the run folder, where it exists.

Exports are idempotent: a cell already in the store (same config hash) is not logged twice, so a
resumed grid can export again. Failed cells are logged as FAILED runs with their error.

MLflow by default writes a local SQLite store, ``sqlite:///mlruns/mlflow.db`` with artifacts in
``mlruns/artifacts/`` -- no server; ``uri`` may name any MLflow tracking URI (``http://host:5000``,
``sqlite:///path.db``, ``file:./mlruns``). TensorBoard writes event files under ``uri`` (default
``runs/tensorboard``); view them with ``tensorboard --logdir DIR``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Literal

from .errors import ConfigError

Kind = Literal["mlflow", "tensorboard"]
KINDS = ("mlflow", "tensorboard")
DEFAULT_URIS = {"mlflow": "sqlite:///mlruns/mlflow.db", "tensorboard": "runs/tensorboard"}
ARTIFACTS = ("samples.png", "curves.png", "result.json")
INSTALL = "pip install 'benchbox[tracking]'"
_MODULES = {"mlflow": ("mlflow", "sqlalchemy", "alembic"), "tensorboard": ("tensorboard",)}


def require(kind: str, flag: str = "--log") -> None:
    """Fail in one line, before anything runs, when ``kind`` is unknown or its package is missing."""
    if kind not in KINDS:
        raise ConfigError(f"{flag} {kind!r}: expected one of {', '.join(KINDS)}")
    import importlib.util

    for module in _MODULES[kind]:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a module set to None in sys.modules, a broken parent
            found = False
        if not found:
            raise ConfigError(f"{flag} {kind} needs the {module} package, which is not installed: {INSTALL}")


def preflight(kind: str, uri: str | None = None, flag: str = "--log") -> None:
    """:func:`require`, and for a tracking server (``http(s)://``) that it answers: all before a run starts."""
    require(kind, flag)
    if kind == "mlflow" and uri and uri.startswith(("http://", "https://")):
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=10) as reply:
                reply.read(64)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ConfigError(f"--log-uri {uri}: no MLflow tracking server answers there ({reason})") from None


def describe_target(kind: str, uri: str | None = None, experiment: str | None = None) -> str:
    """Where an export went and how to look at it, in one line."""
    uri = uri or DEFAULT_URIS[kind]
    experiment = experiment or "benchbox"
    if kind == "mlflow":
        return (f"MLflow {uri}, experiment {experiment!r} (browse: mlflow ui --backend-store-uri {uri}; "
                "the UI comes with pip install mlflow)")
    return f"TensorBoard {Path(uri) / experiment} (browse: tensorboard --logdir {uri})"


# --------------------------------------------------------------------------------------------
# What a cell contributes: params, metrics, curves, artifacts
# --------------------------------------------------------------------------------------------


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts to dotted keys: ``{"generator": {"epochs": 2}}`` -> ``{"generator.epochs": 2}``.

    Lists and tuples stay one value (written as JSON text where a store needs a string).
    """
    out: dict[str, Any] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict) and v:
                out.update(flatten(v, key))
            else:
                out[key] = v
    else:
        out[prefix] = obj
    return out


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def params(result: dict[str, Any]) -> dict[str, str]:
    """The cell's config as flat string params (config, seed, device, config hash)."""
    p = {k: _text(v) for k, v in flatten(result.get("config", {})).items()}
    p["config_hash"] = str(result.get("config_hash", ""))
    return p


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def metrics(result: dict[str, Any]) -> dict[str, float]:
    """Numeric, finite metrics of the cell and its stage timings (``time/<stage>``, seconds)."""
    out = {k: float(v) for k, v in result.get("metrics", {}).items() if _finite(v)}
    out.update({f"time/{k}": float(v) for k, v in result.get("timings", {}).items() if _finite(v)})
    if _finite(result.get("peak_rss_mb")):
        out["peak_rss_mb"] = float(result["peak_rss_mb"])
    return out


def curves(result: dict[str, Any]) -> dict[str, list[tuple[int, float]]]:
    """Training curves as ``<stage>/<name>`` -> [(integer step, value), ...] (non-finite points dropped).

    Curve steps are stored as floats; integral steps are kept, any other series is indexed 0, 1, 2, ...
    """
    out: dict[str, list[tuple[int, float]]] = {}
    for stage, series in (result.get("curves") or {}).items():
        for name, points in (series or {}).items():
            pts = [(float(s), float(v)) for s, v in points]
            integral = all(s.is_integer() for s, _ in pts)
            out[f"{stage}/{name}"] = [(int(s) if integral else i, v) for i, (s, v) in enumerate(pts) if math.isfinite(v)]
    return out


def artifacts(result: dict[str, Any]) -> list[Path]:
    """The run folder's files worth attaching, where the cell wrote a folder."""
    folder = result.get("path")
    if not folder:
        return []
    return [Path(folder) / name for name in ARTIFACTS if (Path(folder) / name).is_file()]


def run_name(result: dict[str, Any]) -> str:
    """The run id (``<time>-<dataset>-<generator>-<policy>-<detector>-s<seed>-<hash>``) or, without a
    run folder, the same parts without the time."""
    if result.get("id"):
        return str(result["id"])
    cfg = result.get("config", {})
    parts = [str(cfg.get(k, {}).get("name", "?")) for k in ("dataset", "generator", "policy", "detector")]
    return "-".join([*parts, f"s{result.get('seed', '?')}", str(result.get("config_hash", ""))[:6]])


# --------------------------------------------------------------------------------------------
# Reading results: dicts, run folders, results files
# --------------------------------------------------------------------------------------------


def load(source: Any) -> list[dict[str, Any]]:
    """Result dicts from a dict, a list of dicts, a run folder, a ``result.json`` or a results file."""
    if isinstance(source, dict):
        return [source]
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            path = path / "result.json"
        if not path.is_file():
            raise ConfigError(f"{path}: no such run folder, result.json or results file")
        if path.suffix == ".json":
            try:
                row = json.loads(path.read_text())
            except ValueError as exc:
                raise ConfigError(f"{path}: not a benchbox result.json ({exc})") from None
            return [row]
        rows = []
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue  # torn or foreign lines: the leaderboard reports them, tracking skips them
            if isinstance(row, dict) and "config_hash" in row:
                rows.append(row)
        latest = {r["config_hash"]: r for r in rows}  # a retried failure is superseded by its rerun
        return list(latest.values())
    return [r for s in source for r in load(s)]


# --------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------


def export(source: Any, kind: str, uri: str | None = None, experiment: str = "benchbox") -> list[str]:
    """Log every cell of ``source`` to ``kind`` (``mlflow`` or ``tensorboard``); returns the run ids
    (MLflow) or event folders (TensorBoard) written, skipping cells already there."""
    require(kind)
    results = load(source)
    if kind == "mlflow":
        return _to_mlflow(results, uri or DEFAULT_URIS["mlflow"], experiment)
    return _to_tensorboard(results, Path(uri or DEFAULT_URIS["tensorboard"]), experiment)


def _local_root(uri: str) -> Path | None:
    """The folder of a local store (``sqlite:///x/mlflow.db`` -> ``x``, ``file:./mlruns`` -> ``mlruns``)."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):]).parent
    if uri.startswith("file:"):
        return Path(uri[len("file:"):].removeprefix("//"))
    if "://" not in uri:
        return Path(uri)
    return None


def _quiet_mlflow() -> None:
    import logging

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _to_mlflow(results: list[dict[str, Any]], uri: str, experiment: str) -> list[str]:
    _quiet_mlflow()
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    root = _local_root(uri)
    if root is not None:
        root.mkdir(parents=True, exist_ok=True)
        if "://" not in uri and not uri.startswith("file:"):
            uri = root.absolute().as_uri()
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        location = (root / "artifacts" / experiment).absolute().as_uri() if root is not None else None
        exp_id = client.create_experiment(experiment, artifact_location=location)
    else:
        exp_id = exp.experiment_id
    written = []
    for result in results:
        key = str(result.get("config_hash", ""))
        found = client.search_runs([exp_id], filter_string=f"tags.`benchbox.config_hash` = '{key}'", max_results=1)
        if found:
            continue
        tags = {"benchbox.config_hash": key, "benchbox.status": str(result.get("status", "?")),
                "benchbox.run_id": str(result.get("id") or "")}
        if result.get("error"):
            tags["benchbox.error"] = str(result["error"])[:5000]
        run = client.create_run(exp_id, run_name=run_name(result), tags=tags)
        rid = run.info.run_id
        try:
            ps = [Param(k, v[:6000]) for k, v in params(result).items()]
            ms = [Metric(k, v, 0, 0) for k, v in metrics(result).items()]
            ms += [Metric(k, v, 0, step) for k, series in curves(result).items() for step, v in series]
            for i in range(0, len(ps), 100):  # one log_batch takes at most 100 params, 1000 metrics
                client.log_batch(rid, params=ps[i:i + 100])
            for i in range(0, len(ms), 1000):
                client.log_batch(rid, metrics=ms[i:i + 1000])
            for path in artifacts(result):
                client.log_artifact(rid, str(path))
        except BaseException:
            client.set_terminated(rid, status="FAILED")
            raise
        client.set_terminated(rid, status="FINISHED" if result.get("status") == "ok" else "FAILED")
        written.append(rid)
    return written


def _to_tensorboard(results: list[dict[str, Any]], logdir: Path, experiment: str) -> list[str]:
    import numpy as np
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    root = logdir / experiment
    written = []
    for result in results:
        folder = root / run_name(result)
        if folder.is_dir() and any(folder.glob("events.out.tfevents.*")):
            continue
        writer = SummaryWriter(log_dir=str(folder))
        try:
            p = {k: (v if isinstance(v, (int, float, str, bool)) and not isinstance(v, type(None)) else _text(v))
                 for k, v in flatten(result.get("config", {})).items()}
            p["config_hash"] = str(result.get("config_hash", ""))
            m = metrics(result)
            for summary in hparams(p, {f"metrics/{k}": v for k, v in m.items()}):
                writer.file_writer.add_summary(summary)
            for k, v in m.items():
                writer.add_scalar(f"metrics/{k}", v, 0)
            for k, series in curves(result).items():
                for step, v in series:
                    writer.add_scalar(k, v, step)
            writer.add_text("config", "```json\n" + json.dumps(result.get("config", {}), indent=1) + "\n```", 0)
            if result.get("error"):
                writer.add_text("error", str(result["error"]), 0)
            for path in artifacts(result):
                if path.suffix == ".png":
                    from PIL import Image

                    image = np.asarray(Image.open(path).convert("RGB"))
                    writer.add_image(path.stem, image, 0, dataformats="HWC")
        finally:
            writer.close()
        written.append(str(folder))
    return written
