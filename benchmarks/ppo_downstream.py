"""Downstream: does PPO-learned augmentation help the detector? none vs random vs ppo on MNIST.

Cells: dataset ``mnist`` (normal class 0), generator ``ae``, detector ``transformer``; policies
``none`` / ``random`` / ``ppo`` (role normal), each for ``--train-limits`` (0 = the full training
set) and ``--seeds``. Reports image AUROC mean ± std over seeds, and the paired difference of
each policy vs ``none``. Every plugin keeps its defaults unless ``--fast`` is given, which lowers
the generator and detector epochs (recorded in the result) so the whole grid fits a small CPU
budget. Writes ``benchmarks/results/ppo_downstream.json`` (config, per-cell rows, versions, device,
commit, wall time) and the ``.md`` from it. Each finished cell is kept in
``benchmarks/results/ppo_downstream/<limit>-<policy>-s<seed>-<config hash>.json``, keyed by the hash of
the cell's full resolved config (every plugin's Config, the policy's included) and recording that
config and the code fingerprint; a cell is reused only when its config hash matches and it was made
by the code installed now, so an interrupted run resumes and a changed policy config or plugin
source reruns. Usage::

    python benchmarks/ppo_downstream.py [--train-limits 50 0] [--seeds 0 1 2] [--fast]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from provenance import provenance  # benchmarks/provenance.py: versions, device, commit, wall time

from benchbox.config import AugmentConfig, CellSpec, RunOptions, to_dict
from benchbox.fingerprint import staleness
from benchbox.io import atomic_write_json, atomic_write_text
from benchbox.runner import run_cell

OUT = Path(__file__).parent / "results"
POLICIES = ("none", "random", "ppo")


def spec_of(train_limit: int, policy: str, seed: int, fast: bool) -> CellSpec:
    gen_opts = {"epochs": 15} if fast else {}
    det_opts = {"epochs": 20} if fast else {}
    return CellSpec.of(
        dataset=("mnist", {"train_limit": train_limit}), generator=("ae", gen_opts), policy=policy,
        detector=("transformer", det_opts),
        augment=AugmentConfig(), run=RunOptions(seed=seed, device="cpu", threads=1),
    )


def cell_file(cells_dir: Path, spec: CellSpec) -> Path:
    limit = spec["dataset"].config.train_limit
    return cells_dir / f"limit{limit}-{spec['policy'].name}-s{spec.run.seed}-{spec.hash()}.json"


def cell(spec: CellSpec) -> dict:
    t0 = time.perf_counter()
    r = run_cell(spec, write=False)
    return {"train_limit": spec["dataset"].config.train_limit, "policy": spec["policy"].name, "seed": spec.run.seed,
            "image_auroc": r["metrics"]["image_auroc"], "n_train": r["data"]["n_train"],
            "n_generated": r["data"]["n_generated"], "timings": r["timings"],
            "policy_config": to_dict(spec["policy"].config), "config": r["config"], "config_hash": r["config_hash"],
            "code": r["code"], **provenance("cpu", t0)}


def current(path: Path) -> dict | None:
    """The stored cell at ``path`` if it was made by the code installed now, else None (rerun it)."""
    if not path.exists():
        return None
    row = json.loads(path.read_text())
    return row if staleness([row]).get(0) is False else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train-limits", type=int, nargs="+", default=[50, 0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--policies", nargs="+", default=list(POLICIES))
    ap.add_argument("--fast", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    cells_dir = OUT / "ppo_downstream"
    cells_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for limit in args.train_limits:
        for seed in args.seeds:
            for policy in args.policies:
                spec = spec_of(limit, policy, seed, args.fast)
                f = cell_file(cells_dir, spec)
                row = current(f)
                if row is None:
                    row = cell(spec)
                    atomic_write_json(f, row)
                    print(f"limit {limit} {policy:<6} seed {seed}: AUROC {row['image_auroc']:.4f} "
                          f"({row['timings']['total']:.0f} s)", flush=True)
                rows.append(row)
    summary: dict = {}
    for limit in sorted({r["train_limit"] for r in rows}, reverse=True):
        base = {r["seed"]: r["image_auroc"] for r in rows if r["train_limit"] == limit and r["policy"] == "none"}
        for policy in args.policies:
            sel = [r for r in rows if r["train_limit"] == limit and r["policy"] == policy]
            if not sel:
                continue
            vals = [r["image_auroc"] for r in sel]
            diffs = [r["image_auroc"] - base[r["seed"]] for r in sel if r["seed"] in base]
            m, s = statistics.mean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0
            d = statistics.mean(diffs) if diffs and policy != "none" else None
            summary[f"{limit}/{policy}"] = {"train_limit": limit, "policy": policy, "n_train": sel[0]["n_train"],
                                            "mean": m, "std": s, "n": len(vals), "delta_vs_none": d,
                                            "seeds": sorted(r["seed"] for r in sel),
                                            "policy_config": sel[0]["policy_config"]}
    data = {"config": {"train_limits": args.train_limits, "seeds": args.seeds, "policies": args.policies,
                       "fast": args.fast, "dataset": "mnist (normal class 0)", "generator": "ae",
                       "detector": "transformer"},
            "summary": summary, "rows": rows, "commits_of_cells": sorted({str(r["commit"]) for r in rows}),
            **provenance("cpu", t0)}
    atomic_write_json(OUT / "ppo_downstream.json", data)
    atomic_write_text(OUT / "ppo_downstream.md", render(data))
    print(render(data))


def render(data: dict) -> str:
    """The .md, from the .json alone."""
    c = data["config"]
    lines = ["# Downstream image AUROC on MNIST (normal class 0): none vs random vs ppo", "",
             f"{'--fast: generator epochs 15, detector epochs 20' if c['fast'] else 'all plugin defaults'}; "
             "augment ratio 1.0; mean ± std over seeds; Δ = paired mean difference vs none. Cells are keyed by "
             "their full config hash (policy config included; see the JSON).", "",
             "| train images | policy | seeds | image AUROC | Δ vs none |", "|---|---|---|---|---|"]
    for v in data["summary"].values():
        label = "full" if v["train_limit"] == 0 else str(v["train_limit"])
        d = v["delta_vs_none"]
        lines.append(f"| {label} ({v['n_train']}) | {v['policy']} | {v['n']} | {v['mean']:.4f} ± {v['std']:.4f} | "
                     f"{'' if d is None else f'{d:+.4f}'} |")
    lines += ["", "Policy configs:", ""]
    for policy in c["policies"]:
        cfg = next((v["policy_config"] for v in data["summary"].values() if v["policy"] == policy), None)
        if cfg is not None:
            lines.append(f"- {policy}: `{json.dumps(cfg, sort_keys=True)}`")
    dev = data["device"]
    lines += ["", f"Device {dev['device']} ({dev['cpu_count']} cores, {dev['torch_threads']} torch thread), "
              f"torch {data['versions'].get('torch')}, commit {data['commit']} (cells: "
              f"{', '.join(data['commits_of_cells'])}); summed cell wall time "
              f"{sum(r['wall_seconds'] for r in data['rows']):.0f} s."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
