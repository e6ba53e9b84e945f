"""Old vs new conv backbone: autoencoder training speed and reconstruction quality (issue 16).

    .venv/bin/python benchmarks/backbone.py [--parts speed quality] [--variants old new ...]
        [--datasets mnist brick] [--seeds 0 1 2] [--threads 2] [--textures-root DIR]

* ``speed`` -- autoencoder training images/s, measured the way ``benchmarks/perf.py`` measures
  the generator rows: one epoch of the ``ae`` training loop (``benchbox.training.train_epochs``,
  batch 64, Adam 2e-3, latent 16, MSE; the final probe included) on the first 256 MNIST-5k
  class-0 training images at 28 px (grayscale) and on the first 64 of them resized to 256 px
  RGB; plus the steady state (median of 5 further epochs on the same images). One throwaway epoch
  per size runs first, so the first variant timed does not pay the process's start-up costs.
* ``detector`` -- the ``ae`` detector's image AUROC on MNIST-5k, all ten normal classes (the
  issue's guard: it may not drop by more than 0.005); this reads the test split, so it is a
  check on a design, never a way to tune one.
* ``quality`` -- the default ``ae`` budget (40 epochs, batch 64, Adam 2e-3, latent 16, the
  validation normals passed for the curves) on MNIST-5k normal class 0 (28 px) and textures
  brick at 128 px (``benchbox data make-textures``; 54 train / 6 validation normals): the
  validation reconstruction MSE, FID of ``decode(encode(train))`` against the training images
  (reconstruction FID) and of ``decode(z)`` with ``z ~ N(0, I) * std(z_train)`` (sample FID),
  both on benchbox's fixed in-domain features (``benchbox.features``). Test images are never
  touched.

Variants: ``old`` is the backbone the conv generators used before issue 16 (stride-1 3x3 convs
after nearest upsampling, widths doubling per stage from 32); it is measured while its module
still exists, and kept from the previous results file (with the commit it was measured at)
once it is gone. ``new`` is ``generators/base/backbone.py`` with its defaults; ``new-*`` are the
alternatives tried (pixel shuffle, widths). Results are merged into
``benchmarks/results/backbone.json`` by (part, dataset/size, variant, seed, threads), so parts can
run in separate chunks; ``backbone.md`` is rewritten from the json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from benchbox import registry
from benchbox.features import feature_extractor
from benchbox.genmetrics import generation_metrics
from benchbox.interfaces import FitContext
from benchbox.io import atomic_write_json, atomic_write_text
from benchbox.metrics import image_metrics
from benchbox.runtime import package_versions, seed_everything
from benchbox.training import batched, train_epochs
from benchbox_plugins.generators.base import backbone

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "backbone.json"
LATENT, EPOCHS, BATCH, LR = 16, 40, 64, 2e-3  # the ae generator's defaults
NEW_VARIANTS: dict[str, dict[str, Any]] = {  # "new" = the defaults; the rest are the alternatives tried
    "new": {},
    "new-shuffle": {"up": "shuffle"},
    "new-w16": {"width": 16},
    "new-w64": {"width": 64},
    "new-d2": {"depth": 2},
    "new-shuffle-d2": {"up": "shuffle", "depth": 2},
    "new-channels-last": {"channels_last": True},
    "new-cl-bf16": {"channels_last": True, "bf16": True},  # bf16 acts on CUDA only
}


def old_module():
    """The pre-issue-16 backbone module, or None once it has been deleted."""
    for name in ("benchbox_plugins.generators.base.convnet", "benchbox_plugins.common.convnet"):
        try:
            return __import__(name, fromlist=["ConvEncoder"])
        except ImportError:
            continue
    return None


class AE(nn.Module):
    """The ae generator's head (z = E(x), loss = MSE(D(z), x)) on a given encoder/decoder."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def build(variant: str, channels: int, size: int, seed: int) -> AE:
    torch.manual_seed(seed)
    if variant == "old":
        old = old_module()
        return AE(old.ConvEncoder(channels, size, LATENT, 32), old.ConvDecoder(channels, size, LATENT, 32))
    kw = dict(NEW_VARIANTS[variant])
    width, up = kw.pop("width", 32), kw.pop("up", "transpose")
    return AE(backbone.Encoder(channels, size, LATENT, width, **kw),
              backbone.Decoder(channels, size, LATENT, width, up=up, **kw))


DEVICE = torch.device("cpu")  # --device; the speed part only (quality and detector rows are CPU rows)


def fit(net: AE, x: torch.Tensor, seed: int, epochs: int, val: torch.Tensor | None = None,
        device: torch.device = torch.device("cpu")) -> float:
    ctx = FitContext(device=device, seed=seed, stage="backbone benchmark")
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    train_epochs(net, x, lambda b: F.mse_loss(net(b), b), ctx, epochs=epochs, batch_size=BATCH, lr=LR, val=val)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


# ------------------------------------------------------------------------------------ parts


def speed_sets(repeat: int = 1) -> dict[int, torch.Tensor]:
    """perf.py's generator images: 256 MNIST-5k class-0 train images at 28 px; 64 of them at 256 px RGB
    (each set repeated ``repeat`` times, so a GPU gets enough batches to time)."""
    train = registry.create("datasets", "mnist", normal_class=0).load(0).train[:256]
    big = F.interpolate(train[:64], size=(256, 256), mode="bilinear", align_corners=False)
    return {28: train.repeat(repeat, 1, 1, 1), 256: big.expand(-1, 3, -1, -1).repeat(repeat, 1, 1, 1).contiguous()}


def warm_up(sets: dict[int, torch.Tensor]) -> None:
    """One throwaway epoch per size first, so no variant pays the process's first-call costs."""
    for size, x in sets.items():
        fit(build("new", int(x.shape[1]), size, 0), x[:16], 0, 1, device=DEVICE)


def run_speed(variant: str, threads: int, sets: dict[int, torch.Tensor]) -> list[dict]:
    torch.set_num_threads(threads)
    rows = []
    for size, x in sets.items():
        net = build(variant, int(x.shape[1]), size, 0)
        first = fit(net, x, 0, 1, device=DEVICE)
        steady = [len(x) / fit(net, x, 0, 1, device=DEVICE) for _ in range(5)]
        rows.append({"part": "speed", "variant": variant, "image_size": size, "threads": threads, "n_images": len(x),
                     "device": DEVICE.type,
                     "params": sum(p.numel() for p in net.parameters()),
                     "images_per_s": round(len(x) / first, 1), "steady_images_per_s": round(statistics.median(steady), 1)})
        print(rows[-1], flush=True)
    return rows


def textures_root(arg: str) -> Path:
    if arg:
        return Path(arg)
    root = Path(tempfile.gettempdir()) / "benchbox-backbone-textures"
    if not (root / "brick" / "train" / "good").is_dir():
        subprocess.run([str(Path(sys.executable).parent / "benchbox"), "data", "make-textures", str(root)], check=True,
                       stdout=subprocess.DEVNULL)
    return root


def load(dataset: str, seed: int, tex_root: Path):
    if dataset == "mnist":
        return registry.create("datasets", "mnist", normal_class=0).load(seed)
    return registry.create("datasets", "mvtec", root=str(tex_root), category="brick", image_size=128).load(seed)


def run_quality(variant: str, dataset: str, seed: int, tex_root: Path, threads: int) -> dict:
    torch.set_num_threads(threads)
    splits = load(dataset, seed, tex_root)
    train, val = splits.train, splits.val.images[splits.val.labels == 0]
    extract = feature_extractor(train)
    net = build(variant, int(train.shape[1]), int(train.shape[-1]), seed)
    wall = fit(net, train, seed, EPOCHS, val=val)
    net.eval()
    encode: Callable = lambda x: batched(net.encoder, x, torch.device("cpu"))
    decode: Callable = lambda z: batched(net.decoder, z, torch.device("cpu"))
    val_mse = float(F.mse_loss(decode(encode(val)), val))
    z = encode(train)
    noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(seed)) * z.std(0)
    recon = generation_metrics(train, decode(z), extract)
    sample = generation_metrics(train, decode(noise), extract)
    row = {"part": "quality", "variant": variant, "dataset": dataset, "seed": seed, "threads": threads,
           "image_size": int(train.shape[-1]), "n_train": len(train), "n_val": len(val),
           "val_mse": round(val_mse, 6), "recon_fid": round(recon["gen_fid"], 4), "sample_fid": round(sample["gen_fid"], 4),
           "fit_s": round(wall, 1), "train_images_per_s": round(EPOCHS * len(train) / wall, 1)}
    print(row, flush=True)
    return row


def run_detector(variant: str, seed: int, threads: int) -> dict:
    """The ae detector on MNIST-5k, every normal class: exactly what ``recon_detectors.py`` runs
    (default config, ``seed_everything(seed)``, detector seed ``seed * 101 + 3``, validation passed),
    on this variant's encoder/decoder; score = mean squared reconstruction error per image."""
    torch.set_num_threads(threads)
    aurocs = []
    for k in range(10):
        splits = registry.create("datasets", "mnist", normal_class=k).load(seed)
        seed_everything(seed)
        s = seed * 101 + 3
        if variant == "plugin":  # the wired `ae` detector plugin itself, exactly as recon_detectors.py runs it
            det = registry.create("detectors", "ae")
            det.fit(splits.train, FitContext(device=torch.device("cpu"), seed=s, stage="fit detector", val=splits.val))
            aurocs.append(image_metrics(splits.test.labels, det.score(splits.test.images).image)["image_auroc"])
            continue
        net = build(variant, 1, 28, s)
        fit(net, splits.train, s, EPOCHS, val=splits.val.images)
        net.eval()
        recon = batched(net, splits.test.images, torch.device("cpu"))
        score = (recon - splits.test.images).pow(2).mean(1).flatten(1).mean(1)
        aurocs.append(image_metrics(splits.test.labels, score)["image_auroc"])
    row = {"part": "detector", "variant": variant, "dataset": "mnist", "seed": seed, "threads": threads,
           "class_aurocs": [round(a, 4) for a in aurocs], "mean_auroc": round(statistics.mean(aurocs), 4)}
    print(row, flush=True)
    return row


# ----------------------------------------------------------------------------------- output


def key(row: dict) -> tuple:
    return tuple(row.get(k, "cpu" if k == "device" else None)
                 for k in ("part", "variant", "dataset", "image_size", "seed", "threads", "device"))


def commit() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "plugins", "benchbox", "benchmarks/backbone.py"],
                               cwd=HERE, capture_output=True, text=True).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except OSError:
        return "unknown"


def _mean(rows: list[dict], k: str) -> str:
    vals = [r[k] for r in rows]
    if not vals:
        return "-"
    m = statistics.mean(vals)
    return f"{m:.4g} ± {statistics.stdev(vals):.2g}" if len(vals) > 1 else f"{m:.4g}"


def markdown(doc: dict) -> str:
    rows, variants = doc["rows"], doc["variants"]
    order = [v for v in ["old", *NEW_VARIANTS, "plugin"] if any(r["variant"] == v for r in rows)]
    lines = ["# Conv backbone: old vs new (issue 16)", "",
             "Written by `benchmarks/backbone.py` from `results/backbone.json`. CPU only; "
             f"{doc['machine']['cpu_count']} cores, torch {doc['machine']['torch']}.", "", "Variants:", ""]
    lines += [f"- `{v}`: {variants.get(v, '')}" for v in order] + [""]
    lines += ["## Autoencoder training images/s", "",
              "One epoch of the ae training loop as `benchmarks/perf.py` times it (first epoch, so first-call costs "
              "included; 256 images at 28 px, 64 at 256 px RGB, batch 64), and the steady state (median of 5 more epochs).",
              "", "| variant | device | torch threads | params 28 px | 28 px img/s | 28 px steady | params 256 px | 256 px img/s | "
              "256 px steady | measured at |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    speed = [r for r in rows if r["part"] == "speed"]
    groups = sorted({(r.get("device", "cpu"), r["variant"], r["threads"]) for r in speed},
                    key=lambda g: (g[0], order.index(g[1]) if g[1] in order else 99, g[2]))
    for dev, v, t in groups:
        by = {r["image_size"]: r for r in speed if (r.get("device", "cpu"), r["variant"], r["threads"]) == (dev, v, t)}
        a, b = by.get(28, {}), by.get(256, {})
        lines.append(f"| {v} | {dev} ({a.get('n_images', '-')} / {b.get('n_images', '-')} images) | {t} | "
                     f"{a.get('params', '-')} | {a.get('images_per_s', '-')} | {a.get('steady_images_per_s', '-')} | "
                     f"{b.get('params', '-')} | {b.get('images_per_s', '-')} | {b.get('steady_images_per_s', '-')} | "
                     f"{(a or b).get('commit', '-')} |")
    quality = [r for r in rows if r["part"] == "quality"]
    lines += ["", "## Reconstruction quality (default ae budget: 40 epochs, batch 64, Adam 2e-3, latent 16)", "",
              "Mean ± std over seeds. val MSE: per-pixel MSE of the validation normals' reconstructions; "
              "recon FID: `decode(encode(train))` vs train; sample FID: `decode(N(0, I) * std(z_train))` vs train "
              "(in-domain features, lower is better). Test images are not used.", "",
              "| dataset | variant | seeds | val MSE | recon FID | sample FID | fit s | train img/s |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
    for d in ("mnist", "brick"):
        for v in order:
            rs = [r for r in quality if r["dataset"] == d and r["variant"] == v]
            if rs:
                lines.append(f"| {d} | {v} | {len(rs)} | {_mean(rs, 'val_mse')} | {_mean(rs, 'recon_fid')} | "
                             f"{_mean(rs, 'sample_fid')} | {_mean(rs, 'fit_s')} | {_mean(rs, 'train_images_per_s')} |")
    lines += ["", "mnist: MNIST-5k normal class 0, 28 px; brick: `benchbox data make-textures` brick at 128 px "
              "(`--dataset.image-size 128`).", ""]
    det = [r for r in rows if r["part"] == "detector"]
    if det:
        seeds = sorted({r["seed"] for r in det})
        lines += ["## The ae detector on MNIST-5k (mean image AUROC over the 10 normal classes, test split)", "",
                  "What `benchmarks/recon_detectors.py` runs for the `ae` detector (default config, detector seed "
                  "`seed * 101 + 3`), on each variant's encoder/decoder. The issue's guard: the mean may drop by at "
                  "most 0.005 from the old backbone's 0.956 (`results/recon_detectors.md`, 1 thread).", "",
                  "| variant | " + " | ".join(f"seed {s}" for s in seeds) + " | mean |", "|---|" + "---:|" * (len(seeds) + 1)]
        for v in order:
            by = {r["seed"]: r["mean_auroc"] for r in det if r["variant"] == v}
            if by:
                lines.append(f"| {v} | " + " | ".join(str(by.get(s, "-")) for s in seeds)
                             + f" | {statistics.mean(by.values()):.4f} |")
        wired = [r["mean_auroc"] for r in det if r["variant"] == "plugin"]
        if wired:
            mean = statistics.mean(wired)
            lines += ["", f"`plugin` is the registered `ae` detector itself, wired to this backbone (commit "
                      f"{next(r['commit'] for r in det if r['variant'] == 'plugin')}): mean {mean:.4f}, "
                      f"{0.956 - mean:.4f} below the guard's 0.956 -- "
                      + ("inside" if 0.956 - mean <= 0.005 else "OUTSIDE") + " the 0.005 the issue allows."]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", nargs="*", default=["speed", "quality", "detector"], choices=["speed", "quality", "detector"])
    ap.add_argument("--variants", nargs="*", default=["old", "new"], choices=["old", *NEW_VARIANTS, "plugin"],
                    help="plugin: the registered `ae` detector at its defaults (detector part only)")
    ap.add_argument("--datasets", nargs="*", default=["mnist", "brick"], choices=["mnist", "brick"])
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, nargs="*", default=[2], help="torch CPU threads (speed: one row each)")
    ap.add_argument("--textures-root", default="", help="a make-textures folder (default: made in the temp dir)")
    ap.add_argument("--device", default="cpu", help="speed part only: cpu or cuda")
    ap.add_argument("--speed-repeat", type=int, default=1, help="speed part: repeat the image sets (a GPU needs more)")
    ap.add_argument("--out", type=Path, default=OUT, help="results json (the .md is written beside it)")
    ap.add_argument("--markdown-only", action="store_true", help="rewrite backbone.md from backbone.json")
    args = ap.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    if DEVICE.type == "cuda" and not torch.cuda.is_available():
        ap.exit(2, "backbone: --device cuda but torch sees no CUDA device\n")
    out = args.out
    doc = json.loads(out.read_text()) if out.exists() else {"rows": []}
    if not args.markdown_only:
        variants = [v for v in args.variants if v != "old" or old_module() is not None]
        if "old" in args.variants and "old" not in variants:
            print("[backbone] the old backbone is gone: its rows are kept from the results file", flush=True)
        t0 = time.perf_counter()
        new_rows: list[dict] = []
        tex = textures_root(args.textures_root) if "quality" in args.parts and "brick" in args.datasets else Path()
        if "speed" in args.parts:
            sets = speed_sets(args.speed_repeat)
            warm_up(sets)
            for v in [v for v in variants if v != "plugin"]:
                for t in args.threads:
                    new_rows += run_speed(v, t, sets)
        if "quality" in args.parts:
            for d in args.datasets:
                for seed in args.seeds:
                    for v in [v for v in variants if v != "plugin"]:
                        new_rows.append(run_quality(v, d, seed, tex, args.threads[0]))
        if "detector" in args.parts:
            for seed in args.seeds:
                for v in variants:
                    new_rows.append(run_detector(v, seed, args.threads[0]))
        stamp = {"commit": commit(), "date": time.strftime("%Y-%m-%d %H:%M")}
        for r in new_rows:
            r.update(stamp)
        merged = {key(r): r for r in doc["rows"]}
        merged.update({key(r): r for r in new_rows})
        doc["rows"] = sorted(merged.values(), key=lambda r: tuple(str(x) for x in key(r)))
        doc["variants"] = {"old": "pre-issue-16 ConvEncoder/ConvDecoder, base 32 (stride-1 3x3 conv after nearest "
                                  "upsampling at every decoder size, widths 32 -> 256)",
                           **{v: f"backbone.Encoder/Decoder {kw or '(defaults: width 32, up transpose, depth 1)'}"
                              for v, kw in NEW_VARIANTS.items()},
                           "plugin": "the registered `ae` detector plugin at its defaults (wired to backbone.py), "
                                     "detector part only"}
        doc["config"] = {"latent_dim": LATENT, "epochs": EPOCHS, "batch_size": BATCH, "lr": LR,
                         "speed_images": "MNIST-5k class 0 train[:256] at 28 px; train[:64] bilinear to 256 px, RGB",
                         "quality_datasets": {"mnist": "MNIST-5k normal class 0, 28 px",
                                              "brick": "make-textures brick, --dataset.image-size 128"},
                         "last_command": " ".join(sys.argv[1:])}
        doc["machine"] = {"device": DEVICE.type, "device_name": torch.cuda.get_device_name() if DEVICE.type == "cuda"
                          else "", "processor": platform.processor() or platform.machine(),
                          "cpu_count": os.cpu_count(), "torch": torch.__version__, "platform": platform.platform()}
        doc["versions"] = package_versions()
        doc["last_wall_s"] = round(time.perf_counter() - t0, 1)
        atomic_write_json(out, doc)
    atomic_write_text(out.with_suffix(".md"), markdown(doc))
    print(f"[backbone] wrote {out} and {out.with_suffix('.md')}", flush=True)


if __name__ == "__main__":
    main()
