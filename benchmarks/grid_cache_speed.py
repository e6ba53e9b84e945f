"""Must-show of issue 8: a 2 generators x 3 policies x 2 detectors x 2 seeds grid on `digits`,
run with the stage cache and with it disabled: wall time and the number of generator trainings.

    .venv/bin/python benchmarks/grid_cache_speed.py [--out benchmarks/results/grid_cache_speed.json]

Small budgets (generator 10 epochs, detectors 1 epoch, PPO 512 steps, small nets) so the whole
comparison takes a few minutes on 2 CPU cores. One warm-up cell runs first (it builds the FID
feature extractor, cached on disk, which would otherwise be charged to whichever run goes first).
The two runs must give identical metrics (the cache changes cost, never numbers).
Writes the JSON (with versions, device, commit and wall time from ``benchmarks/provenance.py``) and
the ``.md`` beside it, written from the JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from provenance import provenance  # noqa: E402  (benchmarks/provenance.py: versions, device, commit, wall time)

from benchbox.grid import GridSpec, latest_rows, read_rows, run_grid  # noqa: E402
from benchbox.io import atomic_write_json, atomic_write_text  # noqa: E402

OPTIONS = {
    "generator": {"epochs": 10, "base_channels": 8, "latent_dim": 8},
    "detector": {"epochs": 1, "transformer": {"dim": 32, "depth": 1, "heads": 2, "score_rounds": 1}},
    "policy": {"ppo": {"total_timesteps": 512, "num_steps": 16, "num_envs": 4, "n_epochs": 1}},
    "dataset": {"train_limit": 200},
}


def measure() -> dict:
    """Run the grid with and without the stage cache; wall times, trainings, identical metrics."""
    spec = GridSpec(datasets=["digits"], generators=["ae", "vae"], policies=["none", "random", "ppo"],
                    detectors=["ae", "transformer"], seeds=[0, 1], device="cpu", threads=1,
                    augment={"ratio": 0.5}, options=OPTIONS)
    report = {}
    metrics = {}
    with tempfile.TemporaryDirectory() as tmp:
        warm = spec.cells(out=str(Path(tmp) / "runs"))[2:3]  # one generating cell (random policy)
        run_grid(warm, Path(tmp) / "warm.jsonl", None, write_runs=False)
        for mode in ("cache", "no-cache"):
            results = Path(tmp) / f"{mode}.jsonl"
            cells = spec.cells(out=str(Path(tmp) / "runs"))
            t0 = time.perf_counter()
            out = run_grid(cells, results, str(Path(tmp) / "cache") if mode == "cache" else None, write_runs=False)
            wall = time.perf_counter() - t0
            rows = latest_rows(read_rows(results)[0])
            metrics[mode] = {h: r["metrics"]["image_auroc"] for h, r in rows.items()}
            report[mode] = {"cells": out.total, "ok": out.ok, "failed": out.failed, "wall_s": round(wall, 1),
                            "generator_trainings": out.generator_trainings, "stage_cache_hits": out.stage_hits,
                            "fit_generator_s": round(sum(r["timings"].get("fit generator", 0) for r in rows.values()), 1),
                            "fit_policy_s": round(sum(r["timings"].get("fit policy", 0) for r in rows.values()), 1)}
            print(mode, report[mode], flush=True)
    report["same_metrics"] = metrics["cache"] == metrics["no-cache"]
    report["speedup"] = round(report["no-cache"]["wall_s"] / report["cache"]["wall_s"], 2)
    report["grid"] = "digits x {ae, vae} x {none, random, ppo} x {ae, transformer} x seeds {0, 1}; options: " + json.dumps(OPTIONS)
    return report


def render(report: dict) -> str:
    """The .md, from the .json alone."""
    lines = ["# Grid with and without the stage cache", "", f"Grid: {report['grid']}.", "",
             "| run | cells | ok | wall s | generator trainings | stage-cache hits | fit generator s | fit policy s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for mode in ("cache", "no-cache"):
        r = report[mode]
        lines.append(f"| {mode} | {r['cells']} | {r['ok']} | {r['wall_s']} | {r['generator_trainings']} | "
                     f"{r['stage_cache_hits']} | {r['fit_generator_s']} | {r['fit_policy_s']} |")
    dev = report["device"]
    lines += ["", f"Speed-up {report['speedup']}x; identical metrics with and without the cache: "
              f"{report['same_metrics']}.", "",
              f"Device {dev['device']} ({dev['cpu_count']} cores shared with other jobs, {dev['torch_threads']} torch "
              f"thread), torch {report['versions'].get('torch')}, commit {report['commit']}, wall "
              f"{report['wall_seconds']} s (warm-up cell included)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "grid_cache_speed.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    report = measure()
    report.update(provenance("cpu", t0))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, report)
    atomic_write_text(out.with_suffix(".md"), render(report))
    print(render(report))


if __name__ == "__main__":
    main()
