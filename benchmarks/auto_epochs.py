"""What the auto epoch budget (issue 16 part 2) costs the transformer on the BMAD demo, on validation data only.

``--detector.epochs 0`` (auto) caps a 256 px fit at 2e9 pixel values seen: the design-card cell's 180 + 180
RGB images get 28 epochs instead of 60. This script fits the transformer detector (defaults otherwise) on the
demo's training normals for ``--epochs`` (default 14, 28, 60) and scores the *validation* split (held-out
training normals plus the demo's ``valid/good`` and ``valid/Ungood``): image AUROC and pixel AUROC. The test
split is not read. Usage::

    python benchmarks/auto_epochs.py [--seeds 0 1 2] [--epochs 14 28 60] [--threads 2]

Writes ``benchmarks/results/auto_epochs.json`` (rows, config, versions, device, commit, wall time) and the
``.md`` made from it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from provenance import provenance, write_results  # benchmarks/provenance.py

from benchbox import registry
from benchbox.interfaces import FitContext
from benchbox.metrics import image_metrics
from benchbox.pixel_metrics import pixel_auroc

OUT = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, nargs="*", default=[14, 28, 60])
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: as is)")
    ap.add_argument("--out-dir", type=Path, default=OUT)
    ap.add_argument("--markdown-only", action="store_true", help="rewrite the .md from the stored JSON; run nothing")
    args = ap.parse_args()
    if args.markdown_only:
        data = json.loads((args.out_dir / "auto_epochs.json").read_text())
        write_results(args.out_dir / "auto_epochs.json", data, args.out_dir / "auto_epochs.md", markdown(data),
                      json_too=False)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        exe = str(Path(sys.executable).with_name("benchbox"))
        subprocess.run([exe, "data", "make-demo", "bmad", tmp], check=True, capture_output=True)
        for seed in args.seeds:
            splits = registry.create("datasets", "bmad", root=tmp, category="Histopathology").load(seed)
            val = splits.val
            assert val is not None and int(val.labels.sum()) > 0
            for epochs in args.epochs:
                det = registry.create("detectors", "transformer", epochs=epochs)
                t = time.perf_counter()
                det.fit(splits.train, FitContext(device=torch.device("cpu"), seed=seed, stage="fit detector"))
                fit_s = time.perf_counter() - t
                s = det.score(val.images)
                row = {"seed": seed, "epochs": epochs, "n_train": len(splits.train), "n_val": len(val),
                       "n_val_anomalous": int(val.labels.sum()), "fit_seconds": round(fit_s, 1),
                       "val_image_auroc": image_metrics(val.labels, s.image.numpy())["image_auroc"]}
                if val.masks is not None and s.maps is not None:
                    row["val_pixel_auroc"] = pixel_auroc(val.masks, s.maps)
                rows.append(row)
                print(row, flush=True)
    data = {"config": {"dataset": "bmad demo (benchbox data make-demo bmad), Histopathology, 256 px RGB",
                       "detector": "transformer, defaults except --detector.epochs", "seeds": args.seeds,
                       "epochs": args.epochs, "threads": torch.get_num_threads(),
                       "command": "python benchmarks/auto_epochs.py " + " ".join(sys.argv[1:])},
            "rows": rows, **provenance("cpu", t0)}
    write_results(args.out_dir / "auto_epochs.json", data, args.out_dir / "auto_epochs.md", markdown(data))


def markdown(data: dict) -> str:
    c = data["config"]
    lines = ["# Auto epoch budget: what it costs the transformer on the BMAD demo (validation split)", "",
             f"Written by `benchmarks/auto_epochs.py` from `auto_epochs.json` (`{c['command'].strip()}`). {c['detector']}, "
             f"fitted on the demo's training normals and scored on the validation split only (held-out normals + "
             "`valid/good` + `valid/Ungood`; the test split is not read; the validation split carries no pixel masks, so "
             "image AUROC only). The design-card cell's auto budget is 28 "
             "epochs (2e9 // (360 x 3 x 256 x 256)); 60 is the transformer's usual number.", "",
             "| epochs | seeds | val image AUROC (mean ± std) | per seed | fit s (mean) |",
             "|---:|---:|---:|---|---:|"]

    def ms(values: list[float]) -> str:
        if not values:
            return "–"
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.4f} ± {sd:.4f}"

    for e in c["epochs"]:
        rs = [r for r in data["rows"] if r["epochs"] == e]
        lines.append(f"| {e} | {len(rs)} | {ms([r['val_image_auroc'] for r in rs])} | "
                     + " / ".join(f"{r['val_image_auroc']:.3f}" for r in rs)
                     + f" | {statistics.mean(r['fit_seconds'] for r in rs):.1f} |")
    r0 = data["rows"][0]
    lines += ["", f"{r0['n_train']} training normals, {r0['n_val']} validation images ({r0['n_val_anomalous']} anomalous) "
              f"per seed. {c['threads']} torch thread(s), CPU; torch {data['versions'].get('torch')}; commit "
              f"{data['commit']}; wall time {data['wall_seconds']:.0f} s.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
