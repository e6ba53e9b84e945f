"""Shared helpers of the reliability suite: a tiny grid, subprocess runs, one-line error checks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# the cheapest real cell: digits, a tiny ae generator, the ae detector (reconstruction error)
GRID_TINY = ["--datasets", "digits", "--generators", "ae", "--detectors", "ae", "--device", "cpu", "--threads", "1",
             "--set", "generator.epochs=1", "--set", "generator.base_channels=8", "--set", "generator.latent_dim=8",
             "--set", "detector.epochs=1", "--set", "detector.base_channels=8", "--set", "dataset.train_limit=60",
             "--augment-ratio", "0.5"]
RUN_TINY = ["--dataset", "digits", "--generator", "ae", "--detector", "ae", "--policy", "none",
            "--generator.epochs", "1", "--generator.base-channels", "8", "--detector.epochs", "1",
            "--detector.base-channels", "8", "--dataset.train-limit", "60", "--device", "cpu"]


def env(cache: Path) -> dict[str, str]:
    """Environment of a benchbox subprocess: one thread, offline, a private cache."""
    e = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1", BENCHBOX_CACHE=str(cache))
    e.pop("BENCHBOX_DEBUG", None)
    return e


def bb_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "benchbox.cli", *args]


def bb(*args: str, cache: Path, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(bb_cmd(*args), capture_output=True, text=True, env=env(cache), timeout=timeout, **kw)


def one_error_line(stderr: str) -> str:
    """The single ``error:`` line of a rejected input; fails on tracebacks, boxed help or several errors.

    ``benchbox run`` also leaves its stage progress rows on stderr when it is not a terminal; those
    are not errors and are allowed.
    """
    assert "Traceback" not in stderr and 'File "' not in stderr, stderr
    errors = [ln for ln in stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, f"expected one 'error:' line, got {len(errors)}:\n{stderr}"
    assert not any(ch in stderr for ch in "╭╰│"), f"boxed multi-line message:\n{stderr}"
    return errors[0]


def leftovers(*folders: Path) -> list[Path]:
    """Partial run folders and temporary files anywhere under ``folders``."""
    found = []
    for folder in folders:
        if folder.exists():
            found += [p for p in folder.rglob("*") if p.name.startswith(".partial-") or p.name.endswith(".tmp")
                      or (p.name.startswith(".") and p.suffix == ".npz")]
    return found
