"""Reconstruction-error detectors on MNIST-5k: memvae vs ae vs transformer, with the kNN floor.

For every normal class and seed, the ``ae`` and ``memvae`` detectors (default configs) are fitted
on the training normals -- exactly what a ``none``-policy cell does (same splits, same detector
seed ``seed * 101 + 3`` as ``benchbox.runner``) -- and scored on the test split. The nearest-
neighbour distance on raw pixels is the floor. The transformer runs as one more
detector (``--detectors transformer``); ``--transformer-json`` optionally adds a seed-0 column
from a ``mnist_reference.py`` result.

Results are appended to ``results/recon_detectors.json`` after every cell (an interrupted run
resumes); every row records its device, git commit (``benchmarks/provenance.py``) and wall time, the
file the versions, device, commit and wall time of its last write. A cell counts as done when a row
of it exists *on the same device* with a recorded commit; ``--redo`` reruns the selected cells
anyway (e.g. after the detector's code changed). A new row replaces the cell's older row on the
same device; ``--drop-superseded`` removes the rows on other devices of cells rerun on ``--device``.
``results/recon_detectors.md`` is written from the JSON, one table per device.
Usage::

    python benchmarks/recon_detectors.py [--classes 0 1 ...] [--seeds 0 1 2] [--detectors ae memvae transformer]
        [--threads 1] [--device cpu] [--redo] [--drop-superseded] [--summarise-only]
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
from benchbox.runtime import resolve_device, seed_everything
from provenance import commit, provenance  # benchmarks/provenance.py: versions, device, commit, wall time

OUT = Path(__file__).parent / "results"
JSON, MD = OUT / "recon_detectors.json", OUT / "recon_detectors.md"


def run(detector: str, normal_class: int, seed: int, device: torch.device) -> dict:
    wall = time.perf_counter()
    splits = registry.create("datasets", "mnist", normal_class=normal_class).load(seed)
    if detector == "knn":
        nn = NearestNeighbors(n_neighbors=1).fit(splits.train.flatten(1).numpy())
        scores = torch.from_numpy(nn.kneighbors(splits.test.images.flatten(1).numpy())[0][:, 0])
        return {"image_auroc": image_metrics(splits.test.labels, scores)["image_auroc"], "cpu_seconds": 0.0,
                "device": "cpu", "commit": commit(), "wall_seconds": round(time.perf_counter() - wall, 1)}
    seed_everything(seed)
    det = registry.create("detectors", detector)
    t = time.process_time()
    det.fit(splits.train, FitContext(device=device, seed=seed * 101 + 3, stage="fit detector", val=splits.val))
    metrics = image_metrics(splits.test.labels, det.score(splits.test.images).image)
    return {**metrics, "cpu_seconds": round(time.process_time() - t, 1), "device": str(device), "commit": commit(),
            "wall_seconds": round(time.perf_counter() - wall, 1)}


def transformer_reference(path: Path | None) -> tuple[dict[int, float], str]:
    """Per-class seed-0 transformer AUROC from a ``mnist_reference.py`` result, and where it ran."""
    if path is None or not path.is_file():
        return {}, ""
    data = json.loads(path.read_text())
    rows = [r for r in data["per_class"] if r.get("seed", 0) == 0]
    devices = sorted({r.get("device", "?") for r in rows})
    return {r["class"]: r["image_auroc"] for r in rows}, f"{', '.join(devices)}, torch {data.get('versions', {}).get('torch', '?')}"


def _mean(values: list[float]) -> float:
    return statistics.mean(values) if values else float("nan")


def device_of(row: dict) -> str:
    """Where a row ran. kNN is numpy on the CPU; ae/memvae rows without a ``device`` field predate
    ``--device`` (commit aee7a33), when the script fitted on ``torch.device("cpu")`` unconditionally."""
    return row.get("device") or "cpu"


def seed_means(rows: list[dict], device: str, seed: int = 0) -> dict[str, float]:
    """Per detector, the mean image AUROC over the ten classes of ``seed`` on ``device`` (only detectors with
    all ten classes there): the reference row other benchmarks (fanogan_mnist.py) quote."""
    out = {}
    for d in ("transformer", "ae", "memvae", "knn"):
        vals = {r["class"]: r["image_auroc"] for r in rows
                if r["detector"] == d and r["seed"] == seed and device_of(r) == device}
        if len(vals) == 10:
            out[d] = statistics.mean(vals.values())
    return out


def summarise(data: dict, transformer_json: Path | None) -> None:
    """results/recon_detectors.md from the JSON: one table per device (CPU and CUDA numbers differ)."""
    rows = data["rows"]
    tr, tr_where = transformer_reference(transformer_json)
    classes = sorted({r["class"] for r in rows})
    seeds = sorted({r["seed"] for r in rows})
    dets = [d for d in ("memvae", "ae", "transformer", "knn") if any(r["detector"] == d for r in rows)]
    lines = ["# MNIST-5k one-class: reconstruction-error detectors (policy none, default configs)", "",
             "Image AUROC on the test split per normal class and seed; `mean` = mean over the seeds run on that "
             + ("device. The cells ran on several devices (CPU and CUDA give different numbers for the same seed), "
                "so there is one table per device; `-` = that cell ran on another device (or not at all). "
                if len({device_of(r) for r in rows}) > 1 else "device; every cell ran on this one device. ")
             + "kNN (raw-pixel nearest neighbour, numpy) is the floor and is listed with the CPU rows."
             + (f" Transformer: seed 0 from `{transformer_json.name}` ({tr_where})." if tr else ""), ""]
    for device in sorted({device_of(r) for r in rows}):
        here = [r for r in rows if device_of(r) == device]
        ddets = [d for d in dets if any(r["detector"] == d for r in here)]

        def aurocs(d: str, k: int | None = None, seed: int | None = None) -> list[float]:
            return [r["image_auroc"] for r in here
                    if r["detector"] == d and k in (None, r["class"]) and seed in (None, r["seed"])]

        counts = ", ".join(f"{d} {len(aurocs(d))}" for d in ddets)
        head = " | ".join(f"{d} s{s}" for d in ddets for s in seeds)
        lines += [f"## {device.upper()} ({counts} cells)", "",
                  f"| normal class | {head} | " + " | ".join(f"{d} mean" for d in ddets) + (" | transformer s0 |" if tr else " |"),
                  "|---:|" + "---:|" * (len(ddets) * (len(seeds) + 1) + bool(tr))]
        for k in classes:
            per_seed = [f"{v[0]:.4f}" if (v := aurocs(d, k, s)) else "-" for d in ddets for s in seeds]
            means = [f"{_mean(v):.4f}" if (v := aurocs(d, k)) else "-" for d in ddets]
            lines.append(f"| {k} | " + " | ".join(per_seed + means) + (f" | {tr[k]:.4f} |" if k in tr else (" | - |" if tr else " |")))
        full = [f"- seed {s}: " + ", ".join(f"{d} {_mean(v):.4f}" for d in ddets if len(v := aurocs(d, seed=s)) == 10)
                for s in seeds if any(len(aurocs(d, seed=s)) == 10 for d in ddets)]
        lines += ["", "Mean over the ten classes (only where all ten ran on this device for that seed):", ""]
        lines += full or ["- (no detector has all ten classes of one seed on this device)"]
        cpu = sum(r.get("cpu_seconds", 0) for r in here)
        commits = sorted({str(r["commit"]) for r in here if r.get("commit")})
        old = sum(1 for r in here if not r.get("commit"))
        lines += ["", f"Process CPU time of the ae/memvae/transformer fits here: {cpu:.0f} s. Commits of these rows: "
                  + (", ".join(c[:12] + ("+dirty" if c.endswith("+dirty") else "") for c in commits) or "none recorded")
                  + (f"; {old} rows predate per-row commits (owed a rerun)." if old else "."), ""]
    lines += [f"Last write: torch {data.get('versions', {}).get('torch', '?')}, commit {data.get('commit', '?')}, "
              f"{data.get('wall_seconds', '?')} s. MemAE "
              "(Gong et al. 2019) reports 0.975 on full MNIST (60k training images); this is the 5k subset (about "
              "270 training normals per class). Machine: 2 cores shared with other jobs, 1 torch thread."]
    atomic_write_text(MD, "\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--classes", type=int, nargs="*", default=list(range(10)))
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--detectors", nargs="*", default=["knn", "ae", "memvae"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--transformer-json", type=Path, default=None,
                    help="optional mnist_reference.py result to add as an extra transformer column (the transformer "
                         "rows of this table come from --detectors transformer)")
    ap.add_argument("--summarise-only", action="store_true")
    ap.add_argument("--redo", action="store_true", help="rerun the selected cells even when done on this device")
    ap.add_argument("--drop-superseded", action="store_true",
                    help="remove rows on other devices of cells that have a row with a commit on --device")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    device = resolve_device(args.device)
    data = json.loads(JSON.read_text()) if JSON.is_file() else {"rows": []}
    rows = data["rows"]
    here = "cpu" if device.type == "cpu" else str(device)
    done = {(r["detector"], r["class"], r["seed"]) for r in rows if device_of(r) == here and r.get("commit")}
    if args.drop_superseded:
        rows = [r for r in rows if device_of(r) == here or (r["detector"], r["class"], r["seed"]) not in done]
        data = {"rows": rows, **provenance(device, t0)}
        atomic_write_json(JSON, data)
        summarise(data, args.transformer_json)
    if args.summarise_only:
        return summarise(data, args.transformer_json)
    for seed in args.seeds:
        for k in args.classes:
            for d in args.detectors:
                if (d, k, seed) in done and not args.redo:
                    continue
                row = {"detector": d, "class": k, "seed": seed, **run(d, k, seed, device)}
                rows = [r for r in rows if not (r["detector"] == d and r["class"] == k and r["seed"] == seed
                                                and (args.drop_superseded or device_of(r) == device_of(row)))] + [row]
                print(f"{d:<7} class {k} seed {seed}: {row['image_auroc']:.4f} ({row['cpu_seconds']} cpu s, "
                      f"{row['wall_seconds']} s)", flush=True)
                data = {"rows": rows, **provenance(device, t0)}
                atomic_write_json(JSON, data)
                summarise(data, args.transformer_json)


if __name__ == "__main__":
    main()
