"""Foundation reference numbers on the embedded MNIST-5k (one-class protocol).

1. For every normal class 0..9: the transformer detector with policy ``none`` next to a
   nearest-neighbour distance on raw pixels, fitted on the identical training split.
2. Policy ``none`` vs ``random`` on normal class 0, 3 seeds each.

Writes ``benchmarks/results/mnist_reference.json`` after every cell (resumable: a cell with a row that
records its commit on the same device is not rerun; each row records device, commit and wall time, the
file versions, device, commit and wall time via ``benchmarks/provenance.py``) and the ``.md`` from it.
Usage::

    python benchmarks/mnist_reference.py [--device cpu] [--classes 0 1 ...] [--seeds 0 1 2] [--out-dir DIR]
        [--no-controls] [--no-classes]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from provenance import commit, provenance  # benchmarks/provenance.py: versions, device, commit, wall time
from sklearn.neighbors import NearestNeighbors

from benchbox import registry
from benchbox.config import AugmentConfig, CellSpec, RunOptions
from benchbox.io import atomic_write_json, atomic_write_text
from benchbox.metrics import image_metrics
from benchbox.runner import run_cell

OUT = Path(__file__).parent / "results"


def knn_auroc(normal_class: int, seed: int) -> float:
    s = registry.create("datasets", "mnist", normal_class=normal_class).load(seed)
    nn = NearestNeighbors(n_neighbors=1).fit(s.train.flatten(1).numpy())
    dist, _ = nn.kneighbors(s.test.images.flatten(1).numpy())
    return image_metrics(s.test.labels, dist[:, 0])["image_auroc"]


def cell(normal_class: int, policy: str, seed: int, device: str) -> dict:
    t0 = time.perf_counter()
    spec = CellSpec.of(
        dataset=("mnist", {"normal_class": normal_class}), generator="ae", policy=policy, detector="transformer",
        augment=AugmentConfig(), run=RunOptions(seed=seed, device=device, threads=1),
    )
    r = run_cell(spec, write=False)
    return {"class": normal_class, "policy": policy, "seed": seed, **r["metrics"],
            "seconds": r["timings"]["total"], "device": r["device"], "commit": commit(),
            "wall_seconds": round(time.perf_counter() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--classes", type=int, nargs="*", default=list(range(10)))
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--out-dir", type=Path, default=OUT)
    ap.add_argument("--no-controls", action="store_true", help="skip part 2 (none vs random on class 0) this run")
    ap.add_argument("--no-classes", action="store_true", help="skip part 1 (the per-class table) this run")
    args = ap.parse_args()
    t0 = time.perf_counter()
    out_json = args.out_dir / "mnist_reference.json"
    old = json.loads(out_json.read_text()) if out_json.is_file() else {}
    per_class, controls = old.get("per_class", []), old.get("controls", [])

    def done(rows: list[dict], **key) -> bool:
        return any(all(r.get(k) == v for k, v in key.items()) and r.get("commit") and r["device"].startswith(
            args.device if args.device != "auto" else "") for r in rows)

    def save() -> None:
        summary = {}
        if per_class:
            summary["transformer_mean_auroc"] = statistics.mean(r["image_auroc"] for r in per_class)
            summary["knn_mean_auroc"] = statistics.mean(r["knn_auroc"] for r in per_class)
        summary["class0"] = {p: dict(zip(("mean", "std"), mean_std([r for r in controls if r["policy"] == p])))
                             for p in ("none", "random") if any(r["policy"] == p for r in controls)}
        result = {"per_class": sorted(per_class, key=lambda r: r["class"]), "controls": controls, "summary": summary,
                  **provenance(args.device if args.device != "auto" else "cpu", t0)}
        atomic_write_json(out_json, result)
        atomic_write_text(args.out_dir / "mnist_reference.md", render(result))

    for k in [] if args.no_classes else args.classes:
        if done(per_class, **{"class": k}):
            continue
        row = cell(k, "none", 0, args.device)
        row["knn_auroc"] = knn_auroc(k, 0)
        per_class = [r for r in per_class if r["class"] != k] + [row]
        print(f"class {k}: transformer {row['image_auroc']:.4f}  knn {row['knn_auroc']:.4f}  ({row['seconds']:.0f}s)", flush=True)
        save()
    for p in [] if args.no_controls else ("none", "random"):
        for s in args.seeds:
            if done(controls, policy=p, seed=s):
                continue
            r = cell(0, p, s, args.device)
            controls = [c for c in controls if not (c["policy"] == p and c["seed"] == s)] + [r]
            print(f"class 0 {p:<6} seed {s}: {r['image_auroc']:.4f}", flush=True)
            save()
    save()


def mean_std(rows: list[dict]) -> tuple[float, float]:
    vals = [r["image_auroc"] for r in rows]
    return statistics.mean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def render(result: dict) -> str:
    """The .md, from the JSON alone."""
    per_class, summary = result["per_class"], result["summary"]
    seeds = sorted({r["seed"] for r in result["controls"]})
    lines = ["# MNIST-5k one-class reference (transformer detector, policy none, seed 0)", "",
             "| normal class | transformer AUROC | kNN raw-pixel AUROC |", "|---:|---:|---:|"]
    lines += [f"| {r['class']} | {r['image_auroc']:.4f} | {r['knn_auroc']:.4f} |" for r in per_class]
    if len(per_class) == 10:
        lines.append(f"| **mean** | **{summary['transformer_mean_auroc']:.4f}** | **{summary['knn_mean_auroc']:.4f}** |")
    elif per_class:
        lines.append(f"| mean of {len(per_class)} classes run | {summary['transformer_mean_auroc']:.4f} | "
                     f"{summary['knn_mean_auroc']:.4f} |")
    lines += ["", f"## Normal class 0, generator ae, detector transformer, seeds {seeds}", "",
              "| policy | image AUROC mean | std | seeds |", "|---|---:|---:|---:|"]
    lines += [f"| {p} | {v['mean']:.4f} | {v['std']:.4f} | {sum(1 for r in result['controls'] if r['policy'] == p)} |"
              for p, v in summary["class0"].items()]
    devices = sorted({r["device"] for r in [*per_class, *result["controls"]]})
    commits = sorted({str(r.get("commit")) for r in [*per_class, *result["controls"]]})
    lines += ["", f"device: {', '.join(devices) or '?'}; torch {result['versions'].get('torch')}; cell commits "
              f"{', '.join(commits) or '-'}; summed cell wall time "
              f"{sum(r.get('wall_seconds', 0) for r in [*per_class, *result['controls']]):.0f} s"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
