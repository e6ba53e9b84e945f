"""Reconstruction-error detectors on MNIST-5k: memvae vs ae vs transformer, with the kNN floor.

For every normal class and seed, the ``ae`` and ``memvae`` detectors (default configs) are fitted
on the training normals -- exactly what a ``none``-policy cell does (same splits, same detector
seed ``seed * 101 + 3`` as ``benchbox.runner``) -- and scored on the test split. The nearest-
neighbour distance on raw pixels is the floor. Transformer numbers are taken from
``results/mnist_reference.json`` (written by ``mnist_reference.py``) where present.

Results are appended to ``results/recon_detectors.json`` after every cell (an interrupted run
resumes) and summarised in ``results/recon_detectors.md``. Usage::

    python benchmarks/recon_detectors.py [--classes 0 1 ...] [--seeds 0 1 2] [--detectors ae memvae] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from sklearn.neighbors import NearestNeighbors

from benchbox import registry
from benchbox.interfaces import FitContext
from benchbox.io import atomic_write_json, atomic_write_text
from benchbox.metrics import image_metrics
from benchbox.runtime import package_versions, seed_everything

OUT = Path(__file__).parent / "results"
JSON, MD = OUT / "recon_detectors.json", OUT / "recon_detectors.md"


def run(detector: str, normal_class: int, seed: int) -> dict:
    splits = registry.create("datasets", "mnist", normal_class=normal_class).load(seed)
    if detector == "knn":
        nn = NearestNeighbors(n_neighbors=1).fit(splits.train.flatten(1).numpy())
        scores = torch.from_numpy(nn.kneighbors(splits.test.images.flatten(1).numpy())[0][:, 0])
        return {"image_auroc": image_metrics(splits.test.labels, scores)["image_auroc"], "cpu_seconds": 0.0}
    seed_everything(seed)
    det = registry.create("detectors", detector)
    t = time.process_time()
    det.fit(splits.train, FitContext(device=torch.device("cpu"), seed=seed * 101 + 3, stage="fit detector", val=splits.val))
    metrics = image_metrics(splits.test.labels, det.score(splits.test.images).image)
    return {**metrics, "cpu_seconds": round(time.process_time() - t, 1)}


def transformer_reference() -> dict[int, float]:
    path = OUT / "mnist_reference.json"
    if not path.is_file():
        return {}
    return {r["class"]: r["image_auroc"] for r in json.loads(path.read_text())["per_class"] if r.get("seed", 0) == 0}


def summarise(rows: list[dict], classes: list[int], seeds: list[int]) -> None:
    tr = transformer_reference()
    dets = [d for d in ("memvae", "ae", "knn") if any(r["detector"] == d for r in rows)]
    table = {d: {k: [r["image_auroc"] for r in rows if r["detector"] == d and r["class"] == k] for k in classes} for d in dets}
    lines = ["# MNIST-5k one-class: reconstruction-error detectors (policy none, default configs)", "",
             f"Mean image AUROC per normal class over the seeds run ({', '.join(map(str, seeds))}); "
             "transformer: seed 0 from `mnist_reference.json`.", "",
             "| normal class | " + " | ".join(dets) + (" | transformer |" if tr else " |"),
             "|---:|" + "---:|" * (len(dets) + bool(tr))]
    for k in classes:
        cells = [f"{statistics.mean(v):.4f}" + (f" (n={len(v)})" if len(v) != len(seeds) else "") if v else "-"
                 for v in (table[d][k] for d in dets)]
        lines.append(f"| {k} | " + " | ".join(cells) + (f" | {tr[k]:.4f} |" if k in tr else (" | - |" if tr else " |")))
    means = {d: statistics.mean([statistics.mean(v) for v in table[d].values() if v]) for d in dets if any(table[d].values())}
    lines.append("| **mean** | " + " | ".join(f"**{means[d]:.4f}**" if d in means else "-" for d in dets)
                 + (f" | **{statistics.mean(tr[k] for k in classes if k in tr):.4f}** |" if tr else " |"))
    lines += ["", "Per-seed mean over classes (classes complete for that seed only):", ""]
    for d in dets:
        for s in seeds:
            v = [r["image_auroc"] for r in rows if r["detector"] == d and r["seed"] == s]
            if len(v) == len(classes):
                lines.append(f"- {d} seed {s}: {statistics.mean(v):.4f}")
    cpu = sum(r.get("cpu_seconds", 0) for r in rows)
    lines += ["", f"CPU time of the detector fits: {cpu:.0f} s (1 torch thread, shared 2-core machine); "
              f"torch {package_versions().get('torch')}. MemAE (Gong et al. 2019) reports 0.975 on full MNIST "
              "(60k training images); this is the 5k subset (about 270 training normals per class)."]
    atomic_write_text(MD, "\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--classes", type=int, nargs="*", default=list(range(10)))
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--detectors", nargs="*", default=["knn", "ae", "memvae"])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = json.loads(JSON.read_text())["rows"] if JSON.is_file() else []
    done = {(r["detector"], r["class"], r["seed"]) for r in rows}
    for seed in args.seeds:
        for k in args.classes:
            for d in args.detectors:
                if (d, k, seed) in done:
                    continue
                row = {"detector": d, "class": k, "seed": seed, **run(d, k, seed)}
                rows.append(row)
                print(f"{d:<7} class {k} seed {seed}: {row['image_auroc']:.4f} ({row['cpu_seconds']} cpu s)", flush=True)
                atomic_write_json(JSON, {"rows": rows, "versions": package_versions()})
                summarise(rows, args.classes, args.seeds)


if __name__ == "__main__":
    main()
