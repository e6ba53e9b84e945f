"""Generation quality of the GAN family on MNIST-5k (all ten digits, with labels).

Models: DCGAN, improved DCGAN (``--generator.arch improved``), cGAN (``--generator.conditional``)
and Triple-GAN, each trained (GAN stage only: no encoder is needed to sample) on the 5,000
embedded MNIST images with their class labels, for the same fixed budget (epochs x batch size,
stated in the output). Then ``--samples`` images are drawn from the prior -- z ~ N(0, I) and, for
the conditional models, a class drawn from the training class frequencies -- and compared with
the real images: FID and precision / recall / density / coverage on the in-domain features of
``benchbox.features`` (an autoencoder trained on these real images; NOT Inception, so the numbers
are not comparable with published FIDs), and the KL divergence of the pixel-intensity histograms.
A "real vs real" row (two disjoint halves of the data) gives the floor of every metric.

Results after every cell go to ``results/<name>.json`` (an interrupted run resumes; each row records
its device, commit and wall time, the file versions, device, commit and wall time via
``benchmarks/provenance.py``; a cell counts as done only when its row records a commit), the summary
(mean +/- std over seeds) to ``<name>.md`` and ``<name>.csv`` written from the JSON, a sample grid to
``<name>_samples.png``.

    python benchmarks/gan_table.py [--seeds 0 1 2] [--models dcgan improved cgan triplegan]
        [--epochs 8] [--base-channels 16] [--emnist-root DIR] [--threads 1] [--device cpu]

``--emnist-root DIR`` runs the same table on EMNIST letters (26 classes, ``--limit`` images drawn
by seed 0 from the official training split) through the ``emnist`` dataset plugin's reader,
written as ``<name>_emnist.*``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from provenance import commit, provenance  # benchmarks/provenance.py: versions, device, commit, wall time

from benchbox import registry
from benchbox.errors import ConfigError
from benchbox.features import feature_extractor
from benchbox.genmetrics import generation_metrics
from benchbox.interfaces import FitContext
from benchbox.io import atomic_write_json, atomic_write_text
from benchbox.plotting import save_sample_grid
from benchbox.runtime import resolve_device, seed_everything

OUT = Path(__file__).parent / "results"
MODELS = {  # row name -> (generator plugin, options beyond the shared budget)
    "dcgan": ("dcgan", {}),
    "improved": ("dcgan", {"arch": "improved"}),
    "cgan": ("dcgan", {"conditional": True}),
    "triplegan": ("triplegan", {}),
}
LABELS = {"dcgan": "DCGAN", "improved": "improved DCGAN", "cgan": "cGAN", "triplegan": "Triple-GAN", "real": "real vs real"}
METRICS = ("gen_fid", "gen_pixel_kl", "gen_precision", "gen_recall", "gen_density", "gen_coverage", "train_seconds")


def load_mnist() -> tuple[torch.Tensor, torch.Tensor, str]:
    from benchbox_plugins.datasets.mnist import read_embedded

    images, labels = read_embedded()
    return torch.from_numpy(images.astype(np.float32) / 255.0)[:, None], torch.from_numpy(labels.astype(np.int64)), "MNIST-5k"


def load_emnist_letters(root: str, limit: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    try:
        from benchbox_plugins.datasets.emnist import find_files, read_split
    except ImportError as exc:
        raise ConfigError(f"gan_table: --emnist-root needs the emnist dataset plugin ({exc})") from None
    images, labels, _, _ = read_split(find_files(Path(root).expanduser(), "letters"), "letters")
    keep = np.flatnonzero(labels != 0)  # the N/A class of some copies
    keep = keep[np.random.default_rng(0).permutation(len(keep))[:limit]]
    x = torch.from_numpy(np.ascontiguousarray(images[keep]).astype(np.float32) / 255.0)[:, None]
    return x, torch.from_numpy(labels[keep].astype(np.int64)), f"EMNIST letters ({len(keep)} training images)"


def run_cell(model: str, seed: int, images: torch.Tensor, labels: torch.Tensor, extract, args, device) -> tuple[dict, torch.Tensor]:
    plugin, extra = MODELS[model]
    seed_everything(seed)
    gen = registry.create("generators", plugin, epochs=args.epochs, batch_size=args.batch_size,
                          base_channels=args.base_channels, latent_dim=args.latent_dim, **extra)
    t = time.perf_counter()
    gen.fit_gan(images, FitContext(device=device, seed=seed, stage=f"gan_table {model}"), labels=labels)
    train_s = time.perf_counter() - t
    samples = gen.decode(gen.sample_latents(args.samples, seed=10_000 + seed))
    m = generation_metrics(images, samples, extract, max_samples=args.samples, seed=seed)
    steps = args.epochs * -(-len(images) // args.batch_size)
    return {"model": model, "seed": seed, **m, "train_seconds": round(train_s, 1), "gan_steps": steps,
            "device": str(device), "commit": commit(), "wall_seconds": round(time.perf_counter() - t, 1)}, samples


def summarise(rows: list[dict], floor: dict, meta: dict, stem: str) -> None:
    models = [m for m in (*MODELS, "real") if any(r["model"] == m for r in rows) or m == "real"]
    table = []
    for m in models:
        rs = [r for r in rows if r["model"] == m] if m != "real" else [floor]
        entry = {"model": LABELS[m], "seeds": len(rs) if m != "real" else 0}
        for key in METRICS:
            vals = [r[key] for r in rs if key in r]
            if vals:
                entry[f"{key}_mean"] = statistics.mean(vals)
                entry[f"{key}_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
        table.append(entry)
    data = {"rows": rows, "real_vs_real": floor, "summary": table,
            **{k: v for k, v in meta.items() if k != "started"}, **provenance(meta["device_name"], meta["started"])}
    atomic_write_json(OUT / f"{stem}.json", data)
    atomic_write_text(OUT / f"{stem}.md", render(data, stem))
    buf = io.StringIO()
    fields = ["model", "seeds"] + [f"{k}_{s}" for k in METRICS for s in ("mean", "std")]
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(table)
    atomic_write_text(OUT / f"{stem}.csv", buf.getvalue())


def render(meta: dict, stem: str) -> str:
    """The .md, from the JSON alone."""
    table = meta["summary"]

    def cell(e: dict, key: str, fmt: str) -> str:
        if f"{key}_mean" not in e:
            return "-"
        return f"{e[f'{key}_mean']:{fmt}} ± {e[f'{key}_std']:{fmt}}" if e["seeds"] > 1 else f"{e[f'{key}_mean']:{fmt}}"

    b = meta["budget"]
    lines = [f"# GAN family on {meta['data']}: generation quality", "",
             f"Each model trained on all {meta['n_images']} images ({meta['n_classes']} classes, labels used by the "
             f"conditional models) for the same fixed budget: {b['epochs']} epochs x batch {b['batch_size']} = "
             f"{b['gan_steps']} GAN steps (one D and one G update each; Triple-GAN also one C update), "
             f"base channels {b['base_channels']}, z dim {b['latent_dim']}, Adam lr G 1e-3 / D 2e-4, beta1 0.5 (the plugin defaults). "
             f"{b['samples']} samples from the prior (conditional models: classes drawn from the training "
             "frequencies) against the real images. Mean ± std over seeds "
             f"{', '.join(map(str, meta['seeds']))}.", "",
             "**FID here is computed on benchbox's in-domain features** (`benchbox/features.py`: a conv autoencoder "
             "trained once on these real images), not on Inception features, so it is not comparable with published "
             "FIDs; precision/recall/density/coverage (Naeem et al., 2020, k = 5) use the same features. Pixel KL = "
             "KL(real ‖ generated) of 64-bin pixel-intensity histograms. *real vs real* compares two disjoint halves "
             "of the real images: the floor of each metric.", "",
             "| model | FID ↓ | pixel KL ↓ | precision ↑ | recall ↑ | density | coverage ↑ | train s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for e in table:
        lines.append(f"| {e['model']} | {cell(e, 'gen_fid', '.2f')} | {cell(e, 'gen_pixel_kl', '.4f')} | "
                     f"{cell(e, 'gen_precision', '.3f')} | {cell(e, 'gen_recall', '.3f')} | {cell(e, 'gen_density', '.3f')} | "
                     f"{cell(e, 'gen_coverage', '.3f')} | {cell(e, 'train_seconds', '.0f')} |")
    lines += ["", f"Samples (seed {meta['seeds'][0]}): `{stem}_samples.png`.", "",
              f"Device {meta['device']['device']}, torch {meta['versions'].get('torch')}, "
              f"{meta['device']['torch_threads']} torch thread(s), {meta['device']['cpu_count']} cores, load average at "
              f"start {meta['load_start']} / end {meta.get('load_end', '?')} (a shared machine: train seconds are wall "
              f"time and only comparable within this table); commit {meta['commit']}"
              + (f"; {n} rows from an earlier run record no commit (owed a rerun)."
                 if (n := sum(1 for r in meta["rows"] if not r.get("commit"))) else ".")]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--base-channels", type=int, default=16)
    ap.add_argument("--latent-dim", type=int, default=64)
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--emnist-root", default="", help="also/instead: EMNIST letters from this folder (emnist plugin)")
    ap.add_argument("--limit", type=int, default=5000, help="EMNIST images used (seeded subset)")
    ap.add_argument("--name", default="gan_table")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if args.emnist_root:
        images, labels, data = load_emnist_letters(args.emnist_root, args.limit)
        stem = f"{args.name}_emnist"
    else:
        images, labels, data = load_mnist()
        stem = args.name
    extract = feature_extractor(images, device=device)
    half = len(images) // 2
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    floor = {"model": "real", **generation_metrics(images[order[:half]], images[order[half:]], extract,
                                                   max_samples=args.samples)}
    path = OUT / f"{stem}.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    budget = {"epochs": args.epochs, "batch_size": args.batch_size, "base_channels": args.base_channels,
              "latent_dim": args.latent_dim, "samples": args.samples,
              "gan_steps": args.epochs * -(-len(images) // args.batch_size)}
    rows = [r for r in old.get("rows", []) if old.get("budget") == budget]  # resume only the same budget
    meta = {"data": data, "n_images": len(images), "n_classes": int(labels.unique().numel()), "budget": budget,
            "seeds": args.seeds, "device_name": "cpu" if device.type == "cpu" else str(device),
            "load_start": round(os.getloadavg()[0], 2), "started": time.perf_counter()}
    for seed in args.seeds:
        grid: dict[str, torch.Tensor] = {"real": images[order[:16]]}
        for model in args.models:
            if any(r["model"] == model and r["seed"] == seed and r.get("commit") for r in rows):
                continue
            row, samples = run_cell(model, seed, images, labels, extract, args, device)
            rows = [r for r in rows if not (r["model"] == model and r["seed"] == seed)] + [row]
            grid[LABELS[model]] = samples[:16]
            print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
            meta["load_end"] = round(os.getloadavg()[0], 2)
            summarise(rows, floor, meta, stem)
        if seed == args.seeds[0] and len(grid) > 1:
            save_sample_grid(OUT / f"{stem}_samples.png", grid)
    meta["load_end"] = round(os.getloadavg()[0], 2)
    summarise(rows, floor, meta, stem)


if __name__ == "__main__":
    main()
