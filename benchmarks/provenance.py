"""What every benchmark JSON records about how it was made: versions, device, commit, wall time.

    from provenance import provenance
    t0 = time.perf_counter()
    ...
    data = {"config": ..., "results": ..., **provenance(device, t0)}

``commit`` is ``git rev-parse HEAD`` of the checkout, with ``+dirty`` when tracked files under
``benchbox/``, ``plugins/`` or ``benchmarks/`` differ from it (the numbers may then come from code
no commit holds); ``None`` outside a git checkout.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]


def commit() -> str | None:
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "benchbox", "plugins",
                                "benchmarks"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return rev.stdout.strip() + ("+dirty" if dirty else "")


def provenance(device: torch.device | str, started: float) -> dict[str, Any]:
    """``versions``, ``device`` (with platform, CPU count, torch threads, GPU name), ``commit``, ``wall_seconds``."""
    from benchbox.runtime import device_info, package_versions

    return {"versions": package_versions(), "device": device_info(torch.device(device)), "commit": commit(),
            "wall_seconds": round(time.perf_counter() - started, 1)}
