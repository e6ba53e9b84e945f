"""CPU inference throughput (images/s) of every detector, plus the Engine-vs-Trainer comparison.

Each detector is fitted on the embedded MNIST-5k, normal class 0 (small budgets: pretrained
weights off, 1 epoch / ``--max-steps`` steps), then ``score`` is timed on ``--n`` test images
(28 x 28 grayscale; anomalib models resize to their ``--detector.image-size``) after one warm-up
call. ``--engine`` also times anomalib-padim through anomalib's own ``Engine.fit`` +
``Engine.predict`` against the wrapper (plain Lightning ``Trainer`` + module forward) on the same
images.

Writes ``benchmarks/results/detector_throughput.json`` (each row with its own versions, device,
commit and wall time from ``benchmarks/provenance.py``; rows of detectors not named in this run are
kept from the earlier file) and the ``.md`` from it. Usage::

    python benchmarks/detector_throughput.py [--detectors anomalib-padim ...] [--n 512] [--engine]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

import torch
from provenance import provenance  # benchmarks/provenance.py: versions, device, commit, wall time

from benchbox import registry
from benchbox.interfaces import FitContext
from benchbox.io import atomic_write_json, atomic_write_text

OUT = Path(__file__).parent / "results"
DEFAULT = ["anomalib-padim", "anomalib-patchcore", "anomalib-dfm", "anomalib-fastflow",
           "anomalib-reverse-distillation", "anomalib-stfpm", "anomalib-ganomaly", "anomalib-efficientad",
           "transformer", "ae"]


def budget(name: str, max_steps: int) -> dict:
    cls = registry.load("detectors", name)
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    opts = {"pretrained": False, "epochs": 1, "max_steps": max_steps}
    return {k: v for k, v in opts.items() if k in fields}


def throughput(name: str, train: torch.Tensor, test: torch.Tensor, max_steps: int) -> dict:
    started = time.perf_counter()
    det = registry.create("detectors", name, **budget(name, max_steps))
    t0 = time.perf_counter()
    det.fit(train, FitContext(device=torch.device("cpu"), seed=0, stage="detector"))
    fit_s = time.perf_counter() - t0
    det.score(test[:8])  # warm-up
    t0 = time.perf_counter()
    det.score(test)
    score_s = time.perf_counter() - t0
    return {"detector": name, "n": len(test), "fit_seconds": round(fit_s, 2), "score_seconds": round(score_s, 2),
            "images_per_s": round(len(test) / score_s, 1), "options": budget(name, max_steps),
            "load_avg_at_end": round(os.getloadavg()[0], 2), **provenance("cpu", started)}


def engine_vs_trainer(train: torch.Tensor, test: torch.Tensor) -> dict:
    """anomalib-padim: wrapper (Trainer + forward) vs anomalib Engine.fit + Engine.predict."""
    started = time.perf_counter()
    from anomalib.engine import Engine
    from anomalib.models import Padim

    from benchbox_plugins.detectors.base import anomalib_adapter as aa

    det = registry.create("detectors", "anomalib-padim", pretrained=False)
    t0 = time.perf_counter()
    det.fit(train, FitContext(device=torch.device("cpu"), seed=0))
    t1 = time.perf_counter()
    ours = det.score(test).image
    t2 = time.perf_counter()
    size = det.config.image_size
    with aa.quiet(), aa.seeded(0), tempfile.TemporaryDirectory() as tmp:
        t3 = time.perf_counter()
        model = Padim(backbone="resnet18", pre_trained=False, pre_processor=aa.pre_processor(size),
                      post_processor=False, evaluator=False, visualizer=False)
        engine = Engine(default_root_dir=tmp, logger=False, accelerator="cpu", devices=1, enable_progress_bar=False)
        engine.fit(model=model, train_dataloaders=aa.image_loader(aa.to_rgb(train), 32))
        t4 = time.perf_counter()
        preds = engine.predict(model=model, dataloaders=aa.image_loader(aa.to_rgb(test), 32))
        t5 = time.perf_counter()
    theirs = torch.cat([p.pred_score.reshape(-1) for p in preds]).float()
    return {"n_train": len(train), "n_test": len(test),
            "wrapper_fit_s": round(t1 - t0, 2), "wrapper_score_s": round(t2 - t1, 2),
            "engine_fit_s": round(t4 - t3, 2), "engine_predict_s": round(t5 - t4, 2),
            "max_abs_score_diff": float((ours - theirs).abs().max()), **provenance("cpu", started)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--detectors", nargs="*", default=DEFAULT)
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--max-steps", type=int, default=50, help="cap on training steps (trained models)")
    ap.add_argument("--engine", action="store_true")
    ap.add_argument("--out-dir", type=Path, default=OUT)
    args = ap.parse_args()
    t0 = time.perf_counter()
    torch.set_num_threads(1)
    splits = registry.create("datasets", "mnist", normal_class=0).load(0)
    test = splits.test.images[torch.randperm(len(splits.test), generator=torch.Generator().manual_seed(0))[: args.n]]
    out_json = args.out_dir / "detector_throughput.json"
    old = json.loads(out_json.read_text()) if out_json.exists() else {}
    rows = [r for r in old.get("rows", []) if r["detector"] not in args.detectors]  # merge with earlier runs
    for name in args.detectors:
        r = throughput(name, splits.train, test, args.max_steps)
        rows.append(r)
        print(json.dumps({k: v for k, v in r.items() if k != "versions"}), flush=True)
    rows.sort(key=lambda r: DEFAULT.index(r["detector"]) if r["detector"] in DEFAULT else len(DEFAULT))
    result = {"config": {"dataset": "mnist (normal class 0, seed 0)", "max_steps": args.max_steps},
              "rows": rows, **provenance("cpu", t0)}
    if "engine_vs_trainer" in old:
        result["engine_vs_trainer"] = old["engine_vs_trainer"]
    if args.engine:
        result["engine_vs_trainer"] = engine_vs_trainer(splits.train, test)
        print(json.dumps(result["engine_vs_trainer"]), flush=True)
    atomic_write_json(out_json, result)
    atomic_write_text(args.out_dir / "detector_throughput.md", render(result))


def render(result: dict) -> str:
    """The .md, from the .json alone."""
    rows = result["rows"]
    lines = ["# Detector inference throughput on CPU (MNIST-5k class 0 test images, 28x28 grayscale)", "",
             "| detector | images/s | images timed | score s | fit s (train 270 imgs, budget) | torch threads | "
             "load avg at end | commit |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        dev = r.get("device") if isinstance(r.get("device"), dict) else {}
        lines.append(f"| {r['detector']} | {r['images_per_s']} | {r['n']} | {r['score_seconds']} | {r['fit_seconds']} | "
                     f"{dev.get('torch_threads', '?')} | {r.get('load_avg_at_end', '?')} | "
                     f"{str(r.get('commit') or 'not recorded')[:12]}{'+dirty' if str(r.get('commit')).endswith('+dirty') else ''} |")
    old = [r["detector"] for r in rows if "commit" not in r]
    dev = result["device"]
    lines += ["", f"CPU: {dev['cpu_count']} cores shared with other jobs; torch {result['versions'].get('torch')}, "
              f"anomalib {result['versions'].get('anomalib')}; "
              "anomalib models at --detector.image-size 64 (EfficientAd 256), resnet18 backbones, pretrained off."]
    if old:
        lines += ["", f"Rows from an earlier run that recorded no commit or per-row device (still owed a rerun): "
                  f"{', '.join(old)}."]
    if "engine_vs_trainer" in result:
        e = result["engine_vs_trainer"]
        lines += ["", "## anomalib-padim: wrapper (Lightning Trainer + module forward) vs anomalib Engine", "",
                  "| route | fit s | score/predict s |", "|---|---:|---:|",
                  f"| wrapper | {e['wrapper_fit_s']} | {e['wrapper_score_s']} |",
                  f"| Engine.fit + Engine.predict | {e['engine_fit_s']} | {e['engine_predict_s']} |", "",
                  f"max |score difference| = {e['max_abs_score_diff']:.2e}"
                  + ("" if "commit" in e else " (earlier run: no commit recorded)")]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
