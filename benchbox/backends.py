"""Where grid cells run: in-process, a local process pool, or Ray. Each yields result rows as cells finish.

A cell never raises out of a backend: :func:`execute` turns an exception into a ``failed`` row
carrying the one-line error, so the grid goes on.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any, Iterable, Iterator

from .config import CellSpec


def execute(spec: CellSpec, cache_root: str | None, write: bool = True) -> dict[str, Any]:
    """Run one cell (with the stage cache at ``cache_root``, or none) and return its row."""
    from .cache import StageCache
    from .runner import StageFailed, run_cell

    try:
        return run_cell(spec, write=write, cache=StageCache(cache_root) if cache_root else None)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        if not isinstance(exc, StageFailed):
            msg = f"{type(exc).__name__}: {msg}"
        row = {
            "id": None, "status": "failed", "error": msg, "stage": getattr(exc, "stage", None),
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "config": spec.resolved(), "config_hash": spec.hash(), "seed": spec.run.seed, "metrics": {},
        }
        try:  # the code that failed, so a fix to it reruns the cell (an unknown plugin has none)
            from .fingerprint import row_code

            row["code"] = row_code(spec)
        except Exception:
            pass
        return row


def run_sequential(specs: Iterable[CellSpec], cache_root: str | None, write: bool = True,
                   on_start: Any = None) -> Iterator[dict[str, Any]]:
    for spec in specs:
        if on_start:
            on_start(spec)
        yield execute(spec, cache_root, write)


def run_pool(specs: list[CellSpec], cache_root: str | None, workers: int, write: bool = True,
             on_start: Any = None) -> Iterator[dict[str, Any]]:
    """A local ``ProcessPoolExecutor`` (spawn context: no forked torch state)."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        pending = set()
        for spec in specs:
            pending.add(pool.submit(execute, spec, cache_root, write))
            if on_start:
                on_start(spec)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield fut.result()
        except BaseException:  # Ctrl-C or a consumer that stops: queued cells must not start
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def run_ray(specs: list[CellSpec], cache_root: str | None, address: str | None = None,
            gpus_per_cell: float = 0.0, cpus_per_cell: float = 1.0, write: bool = True,
            on_start: Any = None) -> Iterator[dict[str, Any]]:
    """One Ray task per cell with its resource request; rows stream back as tasks finish.

    Uses the running Ray if this process already called ``ray.init``, else connects to
    ``address`` (or starts a local one). Ray does the scheduling.
    """
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the extra
        from .errors import ConfigError

        raise ConfigError("--backend ray needs Ray: pip install 'benchbox[grid-ray]'") from exc
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {k: v for k, v in os.environ.items()
                                           if k in ("BENCHBOX_CACHE", "HF_HUB_OFFLINE", "PYTHONPATH")}})
    task = ray.remote(num_cpus=cpus_per_cell, num_gpus=gpus_per_cell, max_retries=0)(execute)
    pending = []
    for spec in specs:
        pending.append(task.remote(spec, cache_root, write))
        if on_start:
            on_start(spec)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        for ref in done:
            yield ray.get(ref)
