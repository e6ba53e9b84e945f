"""What every benchmark JSON records about how it was made: versions, device, commit, wall time.

    from provenance import provenance
    t0 = time.perf_counter()
    ...
    data = {"config": ..., "results": ..., **provenance(device, t0)}

``commit`` is ``git rev-parse HEAD`` of the checkout, with ``+dirty`` when tracked files under
``benchbox/``, ``plugins/`` or ``benchmarks/`` differ from it (the numbers may then come from code
no commit holds); ``None`` outside a git checkout. The benchmarks' own outputs (``OUTPUTS``) do not
count: a resumable benchmark rewrites its results file between cells, which would otherwise mark
every later row of its own run dirty.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

ROOT = Path(__file__).resolve().parents[1]


OUTPUTS = ("benchmarks/results", "benchmarks/perf.json", "benchmarks/perf.md")
"""Result files, not code: left out of the ``+dirty`` check."""


def commit() -> str | None:
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "benchbox", "plugins",
                                "benchmarks", *(f":!{p}" for p in OUTPUTS)], cwd=ROOT, capture_output=True,
                               text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return rev.stdout.strip() + ("+dirty" if dirty else "")


def provenance(device: torch.device | str, started: float) -> dict[str, Any]:
    """``versions``, ``device`` (with platform, CPU count, torch threads, GPU name), ``commit``, ``wall_seconds``."""
    import torch  # here, so that the inventory below (python benchmarks/provenance.py) runs without torch

    from benchbox.runtime import device_info, package_versions

    return {"versions": package_versions(), "device": device_info(torch.device(device)), "commit": commit(),
            "wall_seconds": round(time.perf_counter() - started, 1)}


def write_results(json_path: Path, data: dict[str, Any], md_path: Path, markdown: str, *, json_too: bool = True) -> None:
    """Write a benchmark's ``data`` to ``json_path`` (unless ``json_too`` is False: the .md is only
    remade from the stored JSON) and the ``markdown`` made from it to ``md_path``, each atomically."""
    import json

    from benchbox.io import atomic_write_text

    if json_too:
        atomic_write_text(json_path, json.dumps(data, indent=1) + "\n")
    atomic_write_text(md_path, markdown)
    print(f"wrote {json_path} and {md_path}")


# ------------------------------------------------------------------------------------------------
# The inventory of benchmarks/results/: python benchmarks/provenance.py  ->  results/PROVENANCE.md
# ------------------------------------------------------------------------------------------------

SCRIPT_OF = {"latent_env_speed_cpu": "latent_env_speed", "mnist_reference_cuda": "mnist_reference",
             "augmentation_study_tune": "augmentation_study", "augmentation_study_analysis": "augmentation_study",
             "ppo_latent_reward_normal": "ppo_latent_reward", "gan_table_samples": "gan_table", "PROVENANCE": "provenance"}
WALL_KEYS = ("wall_seconds", "wall_s", "last_wall_s", "last_invocation_wall_seconds")
# What the computed columns cannot say about a file (kept by hand; the columns are computed)
NOTES = {
    "anomalib_mnist": "reference rows = the CPU rows of recon_detectors.json, copied into the JSON; all 210 "
                      "anomalib rows rerun with their commit (1 thread, about 50 min); their +dirty flags come from "
                      "the run's own results file, counted as code before provenance.OUTPUTS",
    "fanogan_mnist": "reference row read from recon_detectors.json (seed-0 CPU means); 30 rows rerun on the lean "
                     "backbone (2 threads)",
    "mnist_reference": "run in the pinned environment on CPU (replaces the removed CUDA / torch 2.11 file)",
    "ppo_downstream": "18 cells keyed by config hash + code fingerprint, rerun on CPU (the file-named cells removed)",
    "recon_detectors": "one device: all 120 cells rerun on CPU (the CUDA rows dropped with --drop-superseded)",
    "textures_transformer": "had no script or JSON; now written by textures_transformer.py",
}


REMOVED = ["`mnist_reference_cuda.json/.md` (torch 2.11 / Python 3.12 on CUDA, outside the pinned environment; its "
           "per-class transformer numbers are the CUDA rows of recon_detectors.json)."]

# Filled in by hand at the end of each regeneration session; costs are 1-thread CPU wall times measured here
OWED: list[str] = []


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


ROW_KEYS = ("rows", "runs", "per_class", "controls")
# Files whose rows accumulate over several invocations, each row recording its own commit (the other
# files are written by one invocation: their top-level commit covers every row)
PER_ROW_COMMIT = {"anomalib_mnist", "detector_throughput", "fanogan_mnist", "gan_table", "mnist_reference", "pendulum",
                  "pendulum_ppo", "ppo_downstream", "recon_detectors"}


def _rows(obj: Any) -> list[dict]:
    """The per-cell rows of a result JSON (a folder's files are one row each)."""
    if not isinstance(obj, dict):
        return []
    return [r for k in ROW_KEYS if isinstance(obj.get(k), list) for r in obj[k] if isinstance(r, dict)]


def inventory() -> dict[str, Any]:
    """Per result file: its script, whether that script names it, and for JSON which provenance keys it records."""
    import json

    results = ROOT / "benchmarks" / "results"
    files = sorted(p for p in [*results.iterdir(), ROOT / "benchmarks" / "perf.json", ROOT / "benchmarks" / "perf.md"]
                   if p.stem != "PROVENANCE")
    entries = []
    for p in files:
        stem = p.stem if p.is_file() else p.name
        script = ROOT / "benchmarks" / f"{SCRIPT_OF.get(stem, stem)}.py"
        entry: dict[str, Any] = {
            "file": p.name + ("/" if p.is_dir() else ""), "script": script.name if script.is_file() else None,
            "script_names_it": script.is_file() and (SCRIPT_OF.get(stem, stem) in script.read_text()
                                                    or stem in script.read_text()),
            "records": None, "rows_without_commit": None, "notes": NOTES.get(stem, "")}
        jsons = [p] if p.suffix == ".json" else sorted(p.glob("*.json")) if p.is_dir() else []
        if jsons:
            loaded = [json.loads(j.read_text()) for j in jsons]
            keys = set().union(*(_keys(d) for d in loaded))
            entry["records"] = {"versions": "versions" in keys, "device": bool({"device", "environment"} & keys),
                                "commit": "commit" in keys, "wall_time": bool(set(WALL_KEYS) & keys)}
            rows = (loaded if p.is_dir() else _rows(loaded[0])) if stem in PER_ROW_COMMIT else []
            if rows:
                entry["rows_without_commit"] = [sum(1 for r in rows if not r.get("commit")), len(rows)]
        entries.append(entry)
    return {"files": entries, "removed": REMOVED, "owed": OWED}


def inventory_markdown(inv: dict[str, Any]) -> str:
    """PROVENANCE.md from :func:`inventory`'s data."""
    lines = ["# Provenance of benchmarks/results/", "",
             "Written by `python benchmarks/provenance.py`. Per file: the script that writes it (and whether that "
             "script names the file), and for JSON whether it records package versions, the device, the git "
             "commit and the wall time. A folder is listed once (its per-cell JSON files). `rows without commit`: "
             "for the files whose rows accumulate over several runs, the per-cell rows (or per-cell files) made "
             "before rows recorded their commit -- results of older code, owed a rerun (`–`: the file is written "
             "by one run, its commit covers every row).", "",
             "| file | script | script names it | versions | device | commit | wall time | rows without commit | notes |",
             "|---|---|---|---|---|---|---|---|---|"]
    for e in inv["files"]:
        cols = ["–"] * 5
        if e["records"] is not None:
            cols = ["yes" if v else "**no**" for v in e["records"].values()]
            old = e["rows_without_commit"]
            cols.append("–" if old is None else f"**{old[0]} of {old[1]}**" if old[0] else f"0 of {old[1]}")
        lines.append(f"| {e['file']} | {e['script'] or '**none**'} | {'yes' if e['script_names_it'] else '**no**'} | "
                     + " | ".join(cols) + f" | {e['notes']} |")
    lines += ["", *(f"Removed: {r}" for r in inv["removed"]), "",
              "Reruns still owed:", ""] + ([f"- {r}" for r in inv["owed"]] or ["- none"])
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    data = inventory()
    out = ROOT / "benchmarks" / "results" / "PROVENANCE"
    write_results(out.with_suffix(".json"), data, out.with_suffix(".md"), inventory_markdown(data))
