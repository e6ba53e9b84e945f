"""Reconstruction-error detectors on MNIST-5k: memvae vs ae vs transformer, with the kNN floor.

For every normal class and seed, the ``ae`` and ``memvae`` detectors (default configs) are fitted
on the training normals -- exactly what a ``none``-policy cell does (same splits, same detector
seed ``seed * 101 + 3`` as ``benchbox.runner``) -- and scored on the test split. The nearest-
neighbour distance on raw pixels is the floor. Transformer numbers are taken from
``--transformer-json`` (default ``results/mnist_reference.json``, written by ``mnist_reference.py``)
where present.

Results are appended to ``results/recon_detectors.json`` after every cell (an interrupted run
resumes) and summarised in ``results/recon_detectors.md``. Usage::

    python benchmarks/recon_detectors.py [--classes 0 1 ...] [--seeds 0 1 2] [--detectors ae memvae transformer] [--threads 1] [--device cpu]
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
from benchbox.runtime import package_versions, resolve_device, seed_everything

OUT = Path(__file__).parent / "results"
JSON, MD = OUT / "recon_detectors.json", OUT / "recon_detectors.md"


def run(detector: str, normal_class: int, seed: int, device: torch.device) -> dict:
    splits = registry.create("datasets", "mnist", normal_class=normal_class).load(seed)
    if detector == "knn":
        nn = NearestNeighbors(n_neighbors=1).fit(splits.train.flatten(1).numpy())
        scores = torch.from_numpy(nn.kneighbors(splits.test.images.flatten(1).numpy())[0][:, 0])
        return {"image_auroc": image_metrics(splits.test.labels, scores)["image_auroc"], "cpu_seconds": 0.0}
    seed_everything(seed)
    det = registry.create("detectors", detector)
    t = time.process_time()
    det.fit(splits.train, FitContext(device=device, seed=seed * 101 + 3, stage="fit detector", val=splits.val))
    metrics = image_metrics(splits.test.labels, det.score(splits.test.images).image)
    return {**metrics, "cpu_seconds": round(time.process_time() - t, 1), "device": str(device)}


def transformer_reference(path: Path) -> tuple[dict[int, float], str]:
    """Per-class seed-0 transformer AUROC from a ``mnist_reference.py`` result, and where it ran."""
    if not path.is_file():
        return {}, ""
    data = json.loads(path.read_text())
    rows = [r for r in data["per_class"] if r.get("seed", 0) == 0]
    devices = sorted({r.get("device", "?") for r in rows})
    return {r["class"]: r["image_auroc"] for r in rows}, f"{', '.join(devices)}, torch {data.get('versions', {}).get('torch', '?')}"


def _mean(values: list[float]) -> float:
    return statistics.mean(values) if values else float("nan")


def summarise(rows: list[dict], transformer_json: Path) -> None:
    tr, tr_where = transformer_reference(transformer_json)
    classes = sorted({r["class"] for r in rows})
    seeds = sorted({r["seed"] for r in rows})
    dets = [d for d in ("memvae", "ae", "transformer", "knn") if any(r["detector"] == d for r in rows)]

    def aurocs(d: str, k: int | None = None, seed: int | None = None) -> list[float]:
        return [r["image_auroc"] for r in rows if r["detector"] == d and k in (None, r["class"]) and seed in (None, r["seed"])]

    head = " | ".join(f"{d} s{s}" for d in dets for s in seeds)
    lines = ["# MNIST-5k one-class: reconstruction-error detectors (policy none, default configs)", "",
             "Image AUROC on the test split per normal class and seed; `mean` = mean over the seeds run. "
             + (f"Transformer: seed 0 from `{transformer_json.name}` ({tr_where})." if tr else ""), "",
             f"| normal class | {head} | " + " | ".join(f"{d} mean" for d in dets) + (" | transformer s0 |" if tr else " |"),
             "|---:|" + "---:|" * (len(dets) * (len(seeds) + 1) + bool(tr))]
    for k in classes:
        per_seed = [f"{v[0]:.4f}" if (v := aurocs(d, k, s)) else "-" for d in dets for s in seeds]
        means = [f"{_mean(aurocs(d, k)):.4f}" for d in dets]
        lines.append(f"| {k} | " + " | ".join(per_seed + means) + (f" | {tr[k]:.4f} |" if k in tr else (" | - |" if tr else " |")))
    lines += ["", "Mean over the ten classes (only where all ten were run for that seed):", ""]
    for s in seeds:
        full = {d: aurocs(d, seed=s) for d in dets}
        parts = [f"{d} {_mean(v):.4f}" for d, v in full.items() if len(v) == 10]
        if parts:
            lines.append(f"- seed {s}: " + ", ".join(parts) + (f", transformer {_mean(list(tr.values())):.4f}" if s == 0 and len(tr) == 10 else ""))
    cpu = sum(r.get("cpu_seconds", 0) for r in rows)
    lines += ["", f"CPU time of the ae/memvae fits: {cpu:.0f} s (1 torch thread, shared 2-core machine); "
              f"torch {package_versions().get('torch')}. MemAE (Gong et al. 2019) reports 0.975 on full MNIST "
              "(60k training images); this is the 5k subset (about 270 training normals per class)."]
    atomic_write_text(MD, "\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--classes", type=int, nargs="*", default=list(range(10)))
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--detectors", nargs="*", default=["knn", "ae", "memvae"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--transformer-json", type=Path, default=OUT / "mnist_reference.json",
                    help="mnist_reference.py result to take the transformer column from")
    ap.add_argument("--summarise-only", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = json.loads(JSON.read_text())["rows"] if JSON.is_file() else []
    done = {(r["detector"], r["class"], r["seed"]) for r in rows}
    if args.summarise_only:
        return summarise(rows, args.transformer_json)
    for seed in args.seeds:
        for k in args.classes:
            for d in args.detectors:
                if (d, k, seed) in done:
                    continue
                row = {"detector": d, "class": k, "seed": seed, **run(d, k, seed, resolve_device(args.device))}
                rows.append(row)
                print(f"{d:<7} class {k} seed {seed}: {row['image_auroc']:.4f} ({row['cpu_seconds']} cpu s)", flush=True)
                atomic_write_json(JSON, {"rows": rows, "versions": package_versions()})
                summarise(rows, args.transformer_json)


if __name__ == "__main__":
    main()
