"""Foundation reference numbers on the embedded MNIST-5k (one-class protocol).

1. For every normal class 0..9: the transformer detector with policy ``none`` next to a
   nearest-neighbour distance on raw pixels, fitted on the identical training split.
2. Policy ``none`` vs ``random`` on normal class 0, 3 seeds each.

Writes ``benchmarks/results/mnist_reference.json`` and ``.md``. Usage::

    python benchmarks/mnist_reference.py [--device auto] [--classes 0 1 ...] [--seeds 0 1 2] [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from sklearn.neighbors import NearestNeighbors

from benchbox import registry
from benchbox.config import AugmentConfig, CellSpec, RunOptions
from benchbox.io import atomic_write_json, atomic_write_text
from benchbox.metrics import image_metrics
from benchbox.runner import run_cell
from benchbox.runtime import package_versions

OUT = Path(__file__).parent / "results"


def knn_auroc(normal_class: int, seed: int) -> float:
    s = registry.create("datasets", "mnist", normal_class=normal_class).load(seed)
    nn = NearestNeighbors(n_neighbors=1).fit(s.train.flatten(1).numpy())
    dist, _ = nn.kneighbors(s.test.images.flatten(1).numpy())
    return image_metrics(s.test.labels, dist[:, 0])["image_auroc"]


def cell(normal_class: int, policy: str, seed: int, device: str) -> dict:
    spec = CellSpec.of(
        dataset=("mnist", {"normal_class": normal_class}), generator="ae", policy=policy, detector="transformer",
        augment=AugmentConfig(), run=RunOptions(seed=seed, device=device),
    )
    r = run_cell(spec, write=False)
    return {"class": normal_class, "policy": policy, "seed": seed, **r["metrics"],
            "seconds": r["timings"]["total"], "device": r["device"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="auto")
    ap.add_argument("--classes", type=int, nargs="*", default=list(range(10)))
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--out-dir", type=Path, default=OUT)
    args = ap.parse_args()
    t0 = time.time()
    per_class = []
    for k in args.classes:
        row = cell(k, "none", 0, args.device)
        row["knn_auroc"] = knn_auroc(k, 0)
        per_class.append(row)
        print(f"class {k}: transformer {row['image_auroc']:.4f}  knn {row['knn_auroc']:.4f}  ({row['seconds']:.0f}s)", flush=True)
    controls = [cell(0, p, s, args.device) for p in ("none", "random") for s in args.seeds]
    for r in controls:
        print(f"class 0 {r['policy']:<6} seed {r['seed']}: {r['image_auroc']:.4f}", flush=True)

    def mean_std(rows, key):
        vals = [r[key] for r in rows]
        return statistics.mean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)

    summary = {
        "transformer_mean_auroc": mean_std(per_class, "image_auroc")[0],
        "knn_mean_auroc": mean_std(per_class, "knn_auroc")[0],
        "class0": {p: dict(zip(("mean", "std"), mean_std([r for r in controls if r["policy"] == p], "image_auroc")))
                   for p in ("none", "random")},
    }
    result = {"per_class": per_class, "controls": controls, "summary": summary,
              "versions": package_versions(), "wall_seconds": round(time.time() - t0, 1)}
    atomic_write_json(args.out_dir / "mnist_reference.json", result)
    lines = ["# MNIST-5k one-class reference (transformer detector, policy none, seed 0)", "",
             "| normal class | transformer AUROC | kNN raw-pixel AUROC |", "|---:|---:|---:|"]
    lines += [f"| {r['class']} | {r['image_auroc']:.4f} | {r['knn_auroc']:.4f} |" for r in per_class]
    lines += [f"| **mean** | **{summary['transformer_mean_auroc']:.4f}** | **{summary['knn_mean_auroc']:.4f}** |", "",
              f"## Normal class 0, generator ae, detector transformer, seeds {args.seeds}", "",
              "| policy | image AUROC mean | std |", "|---|---:|---:|"]
    lines += [f"| {p} | {v['mean']:.4f} | {v['std']:.4f} |" for p, v in summary["class0"].items()]
    lines += ["", f"device: {per_class[0]['device'] if per_class else '?'}; torch {result['versions'].get('torch')}; "
              f"wall time {result['wall_seconds']} s"]
    atomic_write_text(args.out_dir / "mnist_reference.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
