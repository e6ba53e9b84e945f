"""anomalib baselines on the embedded MNIST-5k (one-class, no augmentation), next to the transformer.

For each wrapped anomalib model, normal class and seed: load the split, fit the detector on the
training normals (policy ``none``: no generated images), score the test split once, report image
AUROC and the fit + score wall time. Budgets are CPU-sized and stated in the output: resnet18
backbones with pretrained weights off (the run is offline), ``--detector.image-size``
``--image-size`` (default 32 for the 28 px digits; EfficientAd needs 256), ``--epochs`` epochs for
the trained models.

The transformer's numbers are read from ``benchmarks/results/mnist_reference*.json`` (same
dataset, splits and seeds, policy none) unless ``--transformer`` re-runs it here.

Writes ``benchmarks/results/anomalib_mnist.json`` and ``.md``. Usage::

    python benchmarks/anomalib_mnist.py [--models padim dfm ...] [--classes 0] [--seeds 0 1 2] [--epochs 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import time
from pathlib import Path

import torch

from benchbox import registry
from benchbox.interfaces import FitContext
from benchbox.io import atomic_write_json, atomic_write_text
from benchbox.metrics import image_metrics
from benchbox.runtime import package_versions

OUT = Path(__file__).parent / "results"
MODELS = ["padim", "patchcore", "dfm", "fastflow", "reverse-distillation", "stfpm", "ganomaly", "efficientad"]


def options(name: str, epochs: int, max_steps: int, image_size: int) -> dict:
    cls = registry.load("detectors", name)
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    opts = {"pretrained": False, "epochs": epochs, "max_steps": max_steps, "image_size": image_size}
    opts["pooling_kernel_size"] = max(1, min(4, image_size // 16))  # dfm: layer3 map side at this size
    return {k: v for k, v in opts.items() if k in fields}


def cell(name: str, normal_class: int, seed: int, epochs: int, max_steps: int, image_size: int) -> dict:
    splits = registry.create("datasets", "mnist", normal_class=normal_class).load(seed)
    opts = options(name, epochs, max_steps, image_size)
    det = registry.create("detectors", name, **opts)
    t0 = time.perf_counter()
    det.fit(splits.train, FitContext(device=torch.device("cpu"), seed=seed, stage="detector", val=splits.val))
    t1 = time.perf_counter()
    s = det.score(splits.test.images)
    t2 = time.perf_counter()
    m = image_metrics(splits.test.labels, s.image.numpy())
    return {"detector": name, "class": normal_class, "seed": seed, "image_auroc": m["image_auroc"],
            "fit_seconds": round(t1 - t0, 1), "score_seconds": round(t2 - t1, 1), "n_train": len(splits.train),
            "n_test": len(splits.test), "options": opts}


def transformer_reference() -> dict:
    """Transformer AUROCs from the committed foundation reference (policy none)."""
    ref: dict = {}
    for f in sorted(OUT.glob("mnist_reference*.json")):
        data = json.loads(f.read_text())
        ref["source"] = f.name
        ref["per_class_seed0"] = {r["class"]: r["image_auroc"] for r in data.get("per_class", [])}
        ref["class0_none_seeds"] = [r["image_auroc"] for r in data.get("controls", []) if r["policy"] == "none"]
        ref["device"] = (data.get("per_class") or [{}])[0].get("device")
    return ref


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="*", default=MODELS)
    ap.add_argument("--classes", type=int, nargs="*", default=[0])
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--max-steps", type=int, default=-1)
    ap.add_argument("--image-size", type=int, default=32, help="--detector.image-size (28 px digits -> 32)")
    ap.add_argument("--out-dir", type=Path, default=OUT)
    args = ap.parse_args()
    out_json = args.out_dir / "anomalib_mnist.json"
    rows = json.loads(out_json.read_text())["rows"] if out_json.exists() else []
    done = {(r["detector"], r["class"], r["seed"]) for r in rows}
    t0 = time.time()
    for m in args.models:
        name = f"anomalib-{m}"
        for k in args.classes:
            for seed in args.seeds:
                if (name, k, seed) in done:
                    continue
                r = cell(name, k, seed, args.epochs, args.max_steps, args.image_size)
                rows.append(r)
                print(json.dumps(r), flush=True)
                atomic_write_json(out_json, {"rows": rows})  # resumable
    ref = transformer_reference()
    result = {"rows": rows, "transformer": ref, "versions": package_versions(), "cpu_count": os.cpu_count(),
              "load_avg_at_end": os.getloadavg(), "last_invocation_wall_seconds": round(time.time() - t0, 1)}
    atomic_write_json(out_json, result)

    def agg(name: str, pred) -> tuple[float, float, int] | None:
        vals = [r["image_auroc"] for r in rows if r["detector"] == name and pred(r)]
        if not vals:
            return None
        return statistics.mean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0), len(vals)

    lines = ["# anomalib baselines on MNIST-5k (one-class, policy none), CPU", "",
             "| detector | class 0 AUROC (mean ± std, n seeds) | mean over classes run (n cells) | fit s | score s |",
             "|---|---:|---:|---:|---:|"]
    names = [f"anomalib-{m}" for m in MODELS if any(r["detector"] == f"anomalib-{m}" for r in rows)]
    for name in names:
        c0 = agg(name, lambda r: r["class"] == 0)
        allc = agg(name, lambda r: True)
        cells = [r for r in rows if r["detector"] == name]
        fit = statistics.mean(r["fit_seconds"] for r in cells)
        score = statistics.mean(r["score_seconds"] for r in cells)
        c0s = f"{c0[0]:.4f} ± {c0[1]:.4f} (n={c0[2]})" if c0 else "-"
        lines.append(f"| {name} | {c0s} | {allc[0]:.4f} (n={allc[2]}) | {fit:.1f} | {score:.1f} |")
    if ref.get("class0_none_seeds"):
        v = ref["class0_none_seeds"]
        per = list(ref["per_class_seed0"].values())
        lines.append(f"| transformer (from {ref['source']}, {ref.get('device')}) | "
                     f"{statistics.mean(v):.4f} ± {statistics.stdev(v):.4f} (n={len(v)}) | "
                     f"{statistics.mean(per):.4f} (10 classes, seed 0) | - | - |")
    opts = {r["detector"]: r["options"] for r in rows}
    lines += ["", "Budgets: resnet18 backbones, pretrained weights off (offline); "
              f"options per detector: {json.dumps(opts)}.",
              f"Times are wall seconds on {os.cpu_count()} CPU cores shared with other jobs "
              f"(load average at end {', '.join(f'{x:.1f}' for x in result['load_avg_at_end'])}).",
              "Test split: all of it (MNIST-5k, ~4700 images per class), scored once."]
    atomic_write_text(args.out_dir / "anomalib_mnist.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
