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


# ------------------------------------------------------------------------------------------------
# The inventory of benchmarks/results/: python benchmarks/provenance.py  ->  results/PROVENANCE.md
# ------------------------------------------------------------------------------------------------

SCRIPT_OF = {"latent_env_speed_cpu": "latent_env_speed", "mnist_reference_cuda": "mnist_reference",
             "ppo_latent_reward_normal": "ppo_latent_reward", "gan_table_samples": "gan_table", "PROVENANCE": "provenance"}
WALL_KEYS = ("wall_seconds", "wall_s", "last_wall_s", "last_invocation_wall_seconds")
# What is known to be wrong with a file and what it needs (kept by hand; the columns are computed)
NOTES = {
    "anomalib_mnist": "reference rows from recon_detectors.json (transformer partly CUDA); no commit",
    "fanogan_mnist": "its reference row hard-codes seed-0 ten-class means from recon_detectors (transformer: CUDA)",
    "grid_cache_speed": "no .md; no versions or commit",
    "latent_env_speed_cpu": "no versions, commit or wall time",
    "mnist_reference_cuda": "removed: ran with torch 2.11 / Python 3.12 on CUDA, outside the pinned environment",
    "pendulum_ppo": "no versions or commit",
    "ppo_downstream": "cells reused by file name and record no policy config; no versions, device or commit",
    "ppo_latent_reward_normal": "no versions, device, commit or wall time",
    "recon_detectors": "CPU and CUDA cells: the .md now has one table per device; a one-device rerun is still owed",
    "textures_transformer": "had no script or JSON; now written by textures_transformer.py",
}


OWED = [
    "`recon_detectors.py --device cpu`: the 28 ae/memvae cells of seeds 1-2, classes 3-9, and the 24 transformer "
    "cells that ran on CUDA (52 cells), so the table is one device.",
    "`mnist_reference.py --device cpu` in the pinned environment (replaces the removed CUDA / torch 2.11 file).",
    "`anomalib_mnist.py`: its reference rows again once recon_detectors is one device, "
    "and `fanogan_mnist.py` with its REFERENCE row read from recon_detectors.json instead of hard-coded.",
    "Every JSON marked **no** above: a rerun with `provenance()` (versions, device, commit, wall time) recorded; "
    "`ppo_downstream.py` also needs its cells keyed by the policy config, not the file name.",
]


def _keys(obj: Any, out: set[str] | None = None) -> set[str]:
    out = set() if out is None else out
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.add(k)
            _keys(v, out)
    elif isinstance(obj, list):
        for v in obj[:50]:
            _keys(v, out)
    return out


def inventory() -> str:
    import json

    results = ROOT / "benchmarks" / "results"
    files = sorted(p for p in [*results.iterdir(), ROOT / "benchmarks" / "perf.json", ROOT / "benchmarks" / "perf.md"]
                   if p.name != "PROVENANCE.md")
    lines = ["# Provenance of benchmarks/results/", "",
             "Written by `python benchmarks/provenance.py`. Per file: the script that writes it (and whether that "
             "script names the file), and for JSON whether it records package versions, the device, the git "
             "commit and the wall time. A folder is listed once (its per-cell JSON files).", "",
             "| file | script | script names it | versions | device | commit | wall time | notes |",
             "|---|---|---|---|---|---|---|---|"]
    for p in files:
        stem = p.stem if p.is_file() else p.name
        script = ROOT / "benchmarks" / f"{SCRIPT_OF.get(stem, stem)}.py"
        names = script.is_file() and (SCRIPT_OF.get(stem, stem) in script.read_text() or stem in script.read_text())
        cols = ["–"] * 4
        jsons = [p] if p.suffix == ".json" else sorted(p.glob("*.json")) if p.is_dir() else []
        if jsons:
            keys = set().union(*(_keys(json.loads(j.read_text())) for j in jsons))
            cols = ["yes" if c else "**no**" for c in ("versions" in keys, bool({"device", "environment"} & keys),
                                                       "commit" in keys, bool(set(WALL_KEYS) & keys))]
        name = p.name + ("/" if p.is_dir() else "")
        lines.append(f"| {name} | {script.name if script.is_file() else '**none**'} | {'yes' if names else '**no**'} | "
                     + " | ".join(cols) + f" | {NOTES.get(stem, '')} |")
    lines += ["", "Removed: `mnist_reference_cuda.json/.md` (torch 2.11 / Python 3.12 on CUDA, outside the pinned "
              "environment; its per-class transformer numbers are the CUDA rows of recon_detectors.json).", "",
              "Reruns still owed (not run here: long):", ""] + [f"- {r}" for r in OWED]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    out = ROOT / "benchmarks" / "results" / "PROVENANCE.md"
    out.write_text(inventory())
    print(f"wrote {out}")
