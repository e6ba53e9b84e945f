"""Downstream: does PPO-learned augmentation help the detector? none vs random vs ppo on MNIST.

Cells: dataset ``mnist`` (normal class 0), generator ``ae``, detector ``transformer``; policies
``none`` / ``random`` / ``ppo`` (role normal), each for ``--train-limits`` (0 = the full training
set) and ``--seeds``. Reports image AUROC mean ± std over seeds, and the paired difference of
each policy vs ``none``. Every plugin keeps its defaults unless ``--fast`` is given, which lowers
the generator and detector epochs (recorded in the result) so the whole grid fits a small CPU
budget. Writes ``benchmarks/results/ppo_downstream.json`` and ``.md``; each finished cell is kept
in ``benchmarks/results/ppo_downstream/`` so an interrupted run resumes. Usage::

    python benchmarks/ppo_downstream.py [--train-limits 50 0] [--seeds 0 1 2] [--fast]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from benchbox.config import AugmentConfig, CellSpec, RunOptions
from benchbox.runner import run_cell

OUT = Path(__file__).parent / "results"
POLICIES = ("none", "random", "ppo")


def cell(train_limit: int, policy: str, seed: int, fast: bool) -> dict:
    gen_opts = {"epochs": 15} if fast else {}
    det_opts = {"epochs": 20} if fast else {}
    spec = CellSpec.of(
        dataset=("mnist", {"train_limit": train_limit}), generator=("ae", gen_opts), policy=policy,
        detector=("transformer", det_opts),
        augment=AugmentConfig(), run=RunOptions(seed=seed, device="cpu", threads=1),
    )
    r = run_cell(spec, write=False)
    return {"train_limit": train_limit, "policy": policy, "seed": seed, "image_auroc": r["metrics"]["image_auroc"],
            "n_train": r["data"]["n_train"], "n_generated": r["data"]["n_generated"], "timings": r["timings"],
            "generator_opts": gen_opts, "detector_opts": det_opts}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train-limits", type=int, nargs="+", default=[50, 0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--policies", nargs="+", default=list(POLICIES))
    ap.add_argument("--fast", action="store_true")
    args = ap.parse_args()
    cells_dir = OUT / "ppo_downstream"
    cells_dir.mkdir(parents=True, exist_ok=True)
    for limit in args.train_limits:
        for seed in args.seeds:
            for policy in args.policies:
                f = cells_dir / f"{'fast' if args.fast else 'default'}-limit{limit}-{policy}-s{seed}.json"
                if f.exists():
                    continue
                row = cell(limit, policy, seed, args.fast)
                f.write_text(json.dumps(row, indent=2))
                print(f"limit {limit} {policy:<6} seed {seed}: AUROC {row['image_auroc']:.4f} "
                      f"({row['timings']['total']:.0f} s)", flush=True)
    rows = [json.loads(p.read_text()) for p in sorted(cells_dir.glob(f"{'fast' if args.fast else 'default'}-*.json"))]
    lines = ["# Downstream image AUROC on MNIST (normal class 0): none vs random vs ppo", "",
             f"{'--fast: generator epochs 15, detector epochs 20' if args.fast else 'all plugin defaults'}; "
             "augment ratio 1.0; mean ± std over seeds; Δ = paired mean difference vs none.", "",
             "| train images | policy | seeds | image AUROC | Δ vs none |", "|---|---|---|---|---|"]
    summary: dict = {}
    for limit in sorted({r["train_limit"] for r in rows}, reverse=True):
        base = {r["seed"]: r["image_auroc"] for r in rows if r["train_limit"] == limit and r["policy"] == "none"}
        for policy in POLICIES:
            sel = [r for r in rows if r["train_limit"] == limit and r["policy"] == policy]
            if not sel:
                continue
            vals = [r["image_auroc"] for r in sel]
            diffs = [r["image_auroc"] - base[r["seed"]] for r in sel if r["seed"] in base]
            m, s = statistics.mean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0
            d = statistics.mean(diffs) if diffs and policy != "none" else None
            summary[f"{limit}/{policy}"] = {"mean": m, "std": s, "n": len(vals), "delta_vs_none": d,
                                            "seeds": sorted(r["seed"] for r in sel)}
            label = "full" if limit == 0 else str(limit)
            lines.append(f"| {label} ({sel[0]['n_train']}) | {policy} | {len(vals)} | {m:.4f} ± {s:.4f} | "
                         f"{'' if d is None else f'{d:+.4f}'} |")
    (OUT / "ppo_downstream.json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=2))
    (OUT / "ppo_downstream.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
