"""Textures set, `transformer` detector: image and pixel metrics on the test split, 3 textures x 3 seeds.

The set is what ``benchbox data make-textures`` writes (scikit-image's brick, grass and gravel
photographs, 128 px crops, train crops from the top half, test crops from the bottom half, defects
scratch / hole / blob / foreign patch with exact masks), read by the ``mvtec`` plugin. Each cell is
the ``benchbox run`` below, policy ``none``, the transformer's committed defaults; the generator
(5 epochs) only contributes ``generator_val_mse``::

    benchbox run --dataset mvtec --dataset.root DIR --dataset.category brick --dataset.image-size 128 \\
        --policy none --generator.epochs 5 --seed S --device cpu

    python benchmarks/textures_transformer.py [--categories brick,grass,gravel] [--seeds 0,1,2] [--device cpu]

Cells are merged into benchmarks/results/textures_transformer.json by (category, seed), so the
table can be built in chunks (one texture per call: a few minutes each on 2 CPU cores); the .md is
rebuilt from the JSON every time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import provenance, write_results  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "textures_transformer"
METRICS = ("image_auroc", "image_aupr", "pixel_auroc", "pixel_aupro")


def cell(root: Path, category: str, seed: int, device: str) -> dict:
    from benchbox.config import CellSpec, RunOptions
    from benchbox.runner import run_cell

    spec = CellSpec.of(dataset=("mvtec", {"root": str(root), "category": category, "image_size": 128}),
                       generator=("ae", {"epochs": 5}), policy="none", detector="transformer",
                       run=RunOptions(seed=seed, device=device, threads=2))
    t = time.perf_counter()
    row = run_cell(spec, write=False)
    return {"category": category, "seed": seed, **{m: row["metrics"].get(m) for m in METRICS},
            "wall_seconds": round(time.perf_counter() - t, 1), "device": row["device"],
            "config": row["config"], "code": row.get("code")}


def markdown(data: dict) -> str:
    rows = data["rows"]
    lines = ["# Textures set, `transformer` detector: image and pixel metrics", "",
             "Written by `benchmarks/textures_transformer.py` from `textures_transformer.json`. The set of "
             "`benchbox data make-textures` (seed 0; 128 px crops; train crops from the top half of each "
             "photograph, test crops from the bottom half; defects scratch / hole / blob / foreign-texture patch "
             "with exact region masks), read by the `mvtec` plugin: per category 60 training normals (54 train + 6 "
             "validation), test 20 normal + 40 anomalous. Detector `transformer` with its committed defaults; "
             "policy `none`; the generator (5 epochs) only contributes `generator_val_mse`. Mean ± std over seeds.",
             "", "| category | seeds | image AUROC | image AUPR | pixel AUROC | pixel AUPRO (FPR ≤ 0.3) | per-seed image AUROC |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for cat in sorted({r["category"] for r in rows}):
        part = sorted((r for r in rows if r["category"] == cat), key=lambda r: r["seed"])

        def ms(m: str) -> str:
            v = [r[m] for r in part if r[m] is not None]
            return f"{statistics.mean(v):.4f} ± {statistics.stdev(v):.4f}" if len(v) > 1 else (f"{v[0]:.4f}" if v else "–")

        lines.append(f"| {cat} | {','.join(str(r['seed']) for r in part)} | " + " | ".join(ms(m) for m in METRICS)
                     + " | " + ", ".join(f"{r['image_auroc']:.4f}" for r in part) + " |")
    devices = sorted({r["device"] for r in rows})
    walls = ", ".join(f"{r['wall_seconds']:.0f}" for r in rows)
    lines += ["", f"Device {', '.join(devices)}; torch {data['versions']['torch']}; commit `{data['commit']}`; "
              f"wall per cell {walls} s (2-core machine, shared).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--categories", default="brick,grass,gravel")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--device", default="cpu")
    p.add_argument("--markdown-only", action="store_true")
    args = p.parse_args(argv)
    path = OUT.with_suffix(".json")
    data = json.loads(path.read_text()) if path.is_file() else {"rows": []}
    if not args.markdown_only:
        from benchbox.textures import make_textures

        torch.set_num_threads(2)
        t0 = time.perf_counter()
        cats = [c for c in args.categories.split(",") if c]
        with tempfile.TemporaryDirectory() as tmp:
            make_textures(Path(tmp))  # all three always: each texture's crops depend on its index in the set
            for cat in cats:
                for seed in (int(s) for s in args.seeds.split(",")):
                    row = cell(Path(tmp), cat, seed, args.device)
                    data["rows"] = [r for r in data["rows"] if (r["category"], r["seed"]) != (cat, seed)] + [row]
                    print(f"{cat} seed {seed}: image AUROC {row['image_auroc']:.4f} ({row['wall_seconds']:.0f} s)",
                          flush=True)
        data.update(provenance(args.device, t0))
    write_results(path, data, OUT.with_suffix(".md"), markdown(data), json_too=not args.markdown_only)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
