"""anomalib baselines on the embedded MNIST-5k (one-class, no augmentation), next to the transformer.

For each wrapped anomalib model, normal class and seed: load the split, fit the detector on the
training normals (policy ``none``: no generated images), score the test split once, report image
AUROC and the fit + score wall time. Budgets are CPU-sized and stated in the output: resnet18
backbones with pretrained weights off (the run is offline), ``--detector.image-size``
``--image-size`` (default 32 for the 28 px digits; EfficientAd needs 256), ``--epochs`` epochs for
the trained models.

The transformer, ae, memvae and kNN numbers are the CPU rows of ``benchmarks/results/recon_detectors.json``
(same dataset, splits and seeds, policy none), copied into this JSON when it is written; EfficientAd's
cost is quoted from ``detector_throughput.json`` the same way.

Writes ``benchmarks/results/anomalib_mnist.json`` (every row with its device, commit and wall time; the
file with versions, device, commit and wall time of its last write, ``benchmarks/provenance.py``) and
the ``.md`` from it. A cell counts as done only when its row records a commit (older rows are rerun
and replaced). Usage::

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
from provenance import commit, provenance  # benchmarks/provenance.py: versions, device, commit, wall time

from benchbox import registry
from benchbox.interfaces import FitContext
from benchbox.io import atomic_write_json, atomic_write_text
from benchbox.metrics import image_metrics

OUT = Path(__file__).parent / "results"
MODELS = ["padim", "patchcore", "dfm", "fastflow", "reverse-distillation", "stfpm", "ganomaly"]
"""The table's models. ``--models efficientad`` runs EfficientAd too (256 px minimum input: minutes per cell on a
CPU, so the table quotes its cost from ``detector_throughput.json`` instead)."""


def options(name: str, epochs: int, max_steps: int, image_size: int) -> dict:
    cls = registry.load("detectors", name)
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    opts = {"pretrained": False, "max_steps": max_steps, "image_size": image_size}
    if epochs > 0:  # 0: the plugin's own default
        opts["epochs"] = epochs
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
            "n_test": len(splits.test), "options": opts, "device": "cpu", "commit": commit(),
            "wall_seconds": round(time.perf_counter() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="*", default=MODELS)
    ap.add_argument("--classes", type=int, nargs="*", default=[0])
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=0, help="epochs of the trained models (0: each plugin's default)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: as is)")
    ap.add_argument("--max-steps", type=int, default=-1)
    ap.add_argument("--image-size", type=int, default=32, help="--detector.image-size (28 px digits -> 32)")
    ap.add_argument("--out-dir", type=Path, default=OUT)
    ap.add_argument("--summary-only", action="store_true", help="rewrite the Markdown from the JSON; run nothing")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    out_json = args.out_dir / "anomalib_mnist.json"
    rows = json.loads(out_json.read_text())["rows"] if out_json.exists() else []
    done = {(r["detector"], r["class"], r["seed"]) for r in rows if r.get("commit")}
    t0 = time.perf_counter()
    for seed in [] if args.summary_only else args.seeds:  # seed-major: each finished seed gives a complete ten-class mean
        for k in args.classes:
            for m in args.models:
                name = f"anomalib-{m}"
                if (name, k, seed) in done:
                    continue
                r = cell(name, k, seed, args.epochs, args.max_steps, args.image_size)
                rows = [x for x in rows if (x["detector"], x["class"], x["seed"]) != (name, k, seed)] + [r]
                print(json.dumps(r), flush=True)
                atomic_write_json(out_json, {"rows": rows})  # resumable
    result = {"rows": rows, "reference": reference(), "load_avg_at_end": os.getloadavg(), **provenance("cpu", t0)}
    atomic_write_json(out_json, result)

    atomic_write_text(args.out_dir / "anomalib_mnist.md", summary(result))


def reference() -> dict:
    """Same splits, policy none: the CPU transformer / ae / memvae / kNN rows of recon_detectors.json (CUDA
    rows give other numbers for the same seed), and EfficientAd's measured cost from detector_throughput.json."""
    out: dict = {"source": "recon_detectors.json", "device": "cpu", "rows": [], "commit": None, "efficientad": None}
    f = OUT / "recon_detectors.json"
    if f.exists():
        data = json.loads(f.read_text())
        out["rows"] = [r for r in data["rows"] if (r.get("device") or "cpu") == "cpu"]
        out["commit"] = data.get("commit")
    t = OUT / "detector_throughput.json"
    if t.exists():
        out["efficientad"] = next((r for r in json.loads(t.read_text())["rows"]
                                   if r["detector"] == "anomalib-efficientad"), None)
    return out


def summary(result: dict) -> str:
    """Markdown from the JSON: class 0 over seeds, ten-class mean per seed, fit/score seconds; references."""
    rows = result["rows"]
    ref = result["reference"]["rows"]
    names = [f"anomalib-{m}" for m in MODELS if any(r["detector"] == f"anomalib-{m}" for r in rows)]
    names += [n for n in ("transformer", "ae", "memvae", "knn") if any(r["detector"] == n for r in ref)]
    every = rows + ref
    seeds = sorted({r["seed"] for r in every})

    def ms(vals: list[float]) -> str:
        if not vals:
            return "-"
        sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
        return f"{statistics.mean(vals):.4f} ± {sd:.4f} (n={len(vals)})"

    lines = ["# anomalib baselines on MNIST-5k (one-class, policy none), CPU", "",
             "Image AUROC on the full test split (~200 normal + ~4,500 other digits per normal class), scored once. "
             "Ten-class mean = mean over normal classes 0-9 for one seed (shown only when all ten ran).", "",
             "| detector | class 0 (mean ± std over seeds) | " + " | ".join(f"10-class mean, seed {s}" for s in seeds)
             + " | 10-class mean over seeds | fit s (mean/cell) | score s (mean/cell) |",
             "|---|---:|" + "---:|" * len(seeds) + "---:|---:|---:|"]
    for name in names:
        cells = [r for r in every if r["detector"] == name]
        c0 = [r["image_auroc"] for r in cells if r["class"] == 0]
        per_seed = []
        for s in seeds:
            v = [r["image_auroc"] for r in cells if r["seed"] == s]
            per_seed.append(statistics.mean(v) if len({r["class"] for r in cells if r["seed"] == s}) == 10 else None)
        full = [v for v in per_seed if v is not None]
        fit = [r["fit_seconds"] for r in cells if "fit_seconds" in r]
        score = [r["score_seconds"] for r in cells if "score_seconds" in r]
        lines.append(f"| {name} | {ms(c0)} | " + " | ".join("-" if v is None else f"{v:.4f}" for v in per_seed)
                     + f" | {ms(full)} | {statistics.mean(fit):.1f} | {statistics.mean(score):.1f} |"
                     if fit else
                     f"| {name} (reference) | {ms(c0)} | " + " | ".join("-" if v is None else f"{v:.4f}" for v in per_seed)
                     + f" | {ms(full)} | - | - |")
    opts = {r["detector"]: r["options"] for r in rows}
    lines += ["", "Budgets: resnet18 backbones with pretrained weights OFF (offline; ImageNet weights would change "
              "these numbers), `--detector.image-size 32`, each plugin's default epochs; options per detector: "
              f"`{json.dumps(opts)}`.",
              efficientad_note(result["reference"]["efficientad"]),
              "Reference rows (transformer, ae, memvae, kNN on raw pixels) are the CPU rows of `recon_detectors.json` "
              f"(commit {result['reference']['commit']}): same dataset, splits and seeds, policy none; a ten-class "
              "mean is shown only where all ten classes of that seed ran on the CPU.",
              f"Times: wall seconds per cell on {result['device']['cpu_count']} CPU cores, 1 torch thread, machine "
              f"shared with other jobs (load average at end {', '.join(f'{x:.1f}' for x in result['load_avg_at_end'])}); "
              f"torch {result['versions'].get('torch')}, anomalib {result['versions'].get('anomalib')}; commit "
              f"{result['commit']}."
              + (f" {n} rows from an earlier run record no commit (owed a rerun)."
                 if (n := sum(1 for r in rows if not r.get("commit"))) else "")]
    return "\n".join(lines) + "\n"


def efficientad_note(row: dict | None) -> str:
    if row is None:
        return "anomalib-efficientad is not in the table (256 px minimum input and a PDN teacher: too slow on this CPU)."
    per_cell_h = 4700 / row["images_per_s"] / 3600  # ~4,700 test images per cell
    return (f"anomalib-efficientad is not in the table: with its 256 px minimum input and PDN teacher, "
            f"`benchmarks/detector_throughput.py` measured {row['images_per_s']} images/s scoring and "
            f"{row['fit_seconds']:.0f} s for a 1-epoch fit on this 2-core machine, i.e. about {per_cell_h:.1f} h of "
            "scoring per cell; it is covered by the slow contract test.")


if __name__ == "__main__":
    main()
