"""The fanogan detector on MNIST-5k, one class normal at a time (policy none).

For every normal class and seed: the ``fanogan`` detector is fitted on the training normals --
the same splits and detector seed (``seed * 101 + 3``) as a ``none``-policy cell of
``benchbox.runner`` and ``recon_detectors.py`` -- and scored on the test split (image AUROC, AUPR,
F1-max). The budget (GAN epochs, encoder epochs, width) is stated in the output. Rows are appended
to ``results/fanogan_mnist.json`` after every cell (an interrupted run resumes); the summary goes
to ``results/fanogan_mnist.md``, written from the JSON, with the existing detectors' numbers for
comparison: the seed-0 ten-class means read from ``results/recon_detectors.json`` at summary time
(rows of fanogan's device only; a detector without all ten seed-0 classes there is left out). The
JSON records versions, device, commit and wall time (``benchmarks/provenance.py``), each row its
commit.

    python benchmarks/fanogan_mnist.py [--seeds 0] [--classes 0 1 ...] [--epochs 100]
        [--encoder-epochs 50] [--base-channels 16] [--threads 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
from provenance import commit, provenance  # benchmarks/provenance.py: versions, device, commit, wall time
from recon_detectors import JSON as RECON_JSON  # the reference rows
from recon_detectors import seed_means

from benchbox import registry
from benchbox.interfaces import FitContext
from benchbox.io import atomic_write_json, atomic_write_text
from benchbox.metrics import image_metrics
from benchbox.runtime import resolve_device, seed_everything

OUT = Path(__file__).parent / "results"
JSON, MD = OUT / "fanogan_mnist.json", OUT / "fanogan_mnist.md"


def reference(device: str) -> dict:
    """Seed-0 ten-class mean image AUROC per detector on ``device`` from results/recon_detectors.json."""
    if not RECON_JSON.is_file():
        return {"source": RECON_JSON.name, "device": device, "means": {}, "commit": None}
    data = json.loads(RECON_JSON.read_text())
    return {"source": RECON_JSON.name, "device": device, "means": seed_means(data["rows"], device),
            "commit": data.get("commit")}


def run(normal_class: int, seed: int, options: dict, device: torch.device) -> dict:
    splits = registry.create("datasets", "mnist", normal_class=normal_class).load(seed)
    seed_everything(seed)
    det = registry.create("detectors", "fanogan", **options)
    t = time.perf_counter()
    det.fit(splits.train, FitContext(device=device, seed=seed * 101 + 3, stage="fit detector", val=splits.val))
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    scores = det.score(splits.test.images)
    score_s = time.perf_counter() - t
    return {"class": normal_class, "seed": seed, **image_metrics(splits.test.labels, scores.image),
            "fit_seconds": round(fit_s, 1), "score_seconds": round(score_s, 1), "n_train": len(splits.train),
            "n_test": len(splits.test), "device": str(device), "commit": commit()}


def summarise(rows: list[dict], meta: dict) -> None:
    means = {}
    for s in sorted({r["seed"] for r in rows}):
        vals = [r["image_auroc"] for r in rows if r["seed"] == s]
        if len(vals) == 10:
            means[s] = statistics.mean(vals)
    data = {"rows": rows, "seed_means": means, "reference_seed0": reference(meta["device_name"]), **meta,
            **provenance(meta["device_name"], meta["started"])}
    data.pop("started")
    atomic_write_json(JSON, data)
    atomic_write_text(MD, render(data))


def render(data: dict) -> str:
    """The .md, from the JSON alone."""
    rows, meta = data["rows"], data
    seeds = sorted({r["seed"] for r in rows})
    classes = sorted({r["class"] for r in rows})

    def get(k: int, s: int) -> dict | None:
        return next((r for r in rows if r["class"] == k and r["seed"] == s), None)

    o = meta["options"]
    lines = ["# fanogan on MNIST-5k, one class normal (policy none)", "",
             f"f-AnoGAN (`--detector` defaults except the budget): DCGAN with feature matching, {o['epochs']} GAN epochs, "
             f"then the izi_f encoder for {o['encoder_epochs']} epochs, base channels {o['base_channels']}, batch "
             f"{o.get('batch_size', 64)}; score = mean (x - G(E(x)))² + kappa · mean (f_D(x) - f_D(G(E(x))))², kappa "
             f"{o.get('kappa', 1.0)}. Fitted on the ~270 training normals of each class, image AUROC on the test split "
             "(held-out normals + all other digits). Same splits and detector seeds as `recon_detectors.py`.", "",
             "| normal class | " + " | ".join(f"AUROC s{s}" for s in seeds) + " | fit s | score s |",
             "|---:|" + "---:|" * (len(seeds) + 2)]
    for k in classes:
        rs = [get(k, s) for s in seeds]
        done = [r for r in rs if r]
        lines.append(f"| {k} | " + " | ".join(f"{r['image_auroc']:.4f}" if r else "-" for r in rs)
                     + f" | {statistics.mean(r['fit_seconds'] for r in done):.0f} | "
                     f"{statistics.mean(r['score_seconds'] for r in done):.1f} |")
    lines += ["", "Mean image AUROC over the ten classes:", ""]
    means = {int(k): v for k, v in data["seed_means"].items()}
    for s in seeds:
        vals = [r["image_auroc"] for r in rows if r["seed"] == s]
        if s in means:
            lines.append(f"- seed {s}: **{means[s]:.4f}**")
        else:
            lines.append(f"- seed {s}: {len(vals)}/10 classes run (partial mean {statistics.mean(vals):.4f})")
    if len(means) > 1:
        lines.append(f"- over seeds {', '.join(map(str, means))}: {statistics.mean(means.values()):.4f} ± "
                     f"{statistics.stdev(means.values()):.4f} (std)")
    ref = data["reference_seed0"]
    names = {"knn": "kNN (raw pixels)"}
    lines += ["", (f"For comparison, seed-0 ten-class means on {ref['device']} read from `{ref['source']}` (same splits; "
                   f"its commit {ref['commit']}): " + ", ".join(f"{names.get(k, k)} {v:.4f}" for k, v in ref["means"].items())
                   + ".") if ref["means"] else
              f"No detector of `{ref['source']}` has all ten seed-0 classes on {ref['device']}: no comparison row.", ""]
    old = sum(1 for r in rows if "commit" not in r)
    dev = data["device"]
    lines += [f"Device {dev['device']}, torch {data['versions'].get('torch')}, {dev['torch_threads']} torch thread(s), "
              f"{dev['cpu_count']} cores, load average at start {meta['load_start']} / last cell {meta.get('load_end', '?')} "
              f"(shared machine: fit/score seconds are wall time); commit {data['commit']}, wall {data['wall_seconds']} s"
              + (f"; {old} rows from an earlier run record no commit." if old else ".")]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--classes", type=int, nargs="*", default=list(range(10)))
    ap.add_argument("--seeds", type=int, nargs="*", default=[0])
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--encoder-epochs", type=int, default=50)
    ap.add_argument("--base-channels", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--summarise-only", action="store_true", help="rewrite the JSON/.md from the stored rows")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    options = {"epochs": args.epochs, "encoder_epochs": args.encoder_epochs, "base_channels": args.base_channels}
    old = json.loads(JSON.read_text()) if JSON.is_file() else {}
    rows = old.get("rows", []) if old.get("options") == options else []  # resume only the same budget
    meta = {"options": options, "device_name": "cpu" if device.type == "cpu" else str(device),
            "load_start": round(os.getloadavg()[0], 2), "started": time.perf_counter()}
    for seed in [] if args.summarise_only else args.seeds:
        for k in args.classes:
            # done = a row of this budget that records its commit; older rows are rerun and replaced
            if any(r["class"] == k and r["seed"] == seed and "commit" in r for r in rows):
                continue
            row = run(k, seed, options, device)
            rows = [r for r in rows if not (r["class"] == k and r["seed"] == seed)] + [row]
            print(json.dumps(row), flush=True)
            meta["load_end"] = round(os.getloadavg()[0], 2)
            summarise(rows, meta)
    if args.summarise_only:
        summarise(rows, meta)


if __name__ == "__main__":
    main()
