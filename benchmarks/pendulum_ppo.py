"""Validate the single-file PPO on a task nobody here wrote: gymnasium's Pendulum-v1.

Trains ``benchbox_plugins.rl.ppo`` for ``--total-timesteps`` (default 200k) on each seed and
records the mean return of the final 10 evaluation episodes (deterministic actions, fresh env).
References: rl-baselines3-zoo (tuned PPO) about -172 after 100k steps; cleanrl's default PPO
about -1142 after 8M steps. Target here: mean >= -250 within 200k steps.

Writes ``benchmarks/results/pendulum_ppo.json`` and ``.md``. Usage::

    python benchmarks/pendulum_ppo.py [--seeds 1 2 3] [--total-timesteps 200000]
    python benchmarks/pendulum_ppo.py --seeds 2 --no-summary   # one seed per process, then:
    python benchmarks/pendulum_ppo.py --seeds --summary-only

Each seed's result is kept in ``benchmarks/results/pendulum_ppo/seed<N>.json`` (with versions,
device, commit and wall time from ``benchmarks/provenance.py``); the summary covers every seed file
present and its ``.md`` is written from the summary JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from provenance import provenance  # benchmarks/provenance.py: versions, device, commit, wall time

from benchbox.io import atomic_write_json, atomic_write_text
from benchbox_plugins.rl.ppo import Args, run

OUT = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=[1, 2, 3])
    parser.add_argument("--total-timesteps", type=int, default=200_000)
    parser.add_argument("--no-summary", action="store_true")
    parser.add_argument("--summary-only", action="store_true")
    opts = parser.parse_args()
    torch.set_num_threads(1)
    (OUT / "pendulum_ppo").mkdir(parents=True, exist_ok=True)
    for seed in [] if opts.summary_only else opts.seeds:
        t0 = time.perf_counter()
        s = run(Args(seed=seed, env_id="Pendulum-v1", total_timesteps=opts.total_timesteps, progress=False,
                     out_dir="/tmp/benchbox_pendulum_ppo"))
        row = {"seed": seed, "eval_mean": s["eval_mean"], "eval_std": s["eval_std"], "eval_returns": s["eval_returns"],
               "steps": s["total_timesteps"], "seconds": round(time.perf_counter() - t0, 1), **provenance("cpu", t0)}
        atomic_write_json(OUT / "pendulum_ppo" / f"seed{seed}.json", row)
        print(f"seed {seed}: final 10 eval episodes mean {s['eval_mean']:.1f} ({row['seconds']} s)", flush=True)
    if opts.no_summary:
        return
    rows = [json.loads(p.read_text()) for p in sorted((OUT / "pendulum_ppo").glob("seed*.json"))]
    means = [r["eval_mean"] for r in rows]
    summary = {"env_id": "Pendulum-v1", "total_timesteps": rows[0]["steps"], "rows": rows,
               "mean_over_seeds": statistics.mean(means), "std_over_seeds": statistics.stdev(means) if len(means) > 1 else 0.0,
               "target": -250, "args": {k: v for k, v in vars(Args()).items() if k not in ("seed", "out_dir")},
               "seeds_without_provenance": [r["seed"] for r in rows if "commit" not in r],
               # wall_seconds here = the sum of the per-seed wall times (each seed file records its own)
               **provenance("cpu", time.perf_counter() - sum(r["seconds"] for r in rows))}
    atomic_write_json(OUT / "pendulum_ppo.json", summary)
    atomic_write_text(OUT / "pendulum_ppo.md", render(summary))
    print(render(summary))


def render(summary: dict) -> str:
    """The .md, from the summary JSON alone."""
    rows = summary["rows"]
    lines = ["# PPO on Pendulum-v1", "", f"{summary['total_timesteps']:,} steps per seed; mean return of the final 10 "
             f"deterministic evaluation episodes. Target >= {summary['target']}.", "",
             "| seed | eval mean | eval std | seconds | torch threads | commit |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['seed']} | {r['eval_mean']:.1f} | {r['eval_std']:.1f} | {r['seconds']} | "
              f"{r['device']['torch_threads'] if isinstance(r.get('device'), dict) else '?'} | "
              f"{r.get('commit') or 'not recorded'} |" for r in rows]
    lines += ["", f"**mean over seeds: {summary['mean_over_seeds']:.1f} ± {summary['std_over_seeds']:.1f}** (std over seeds)"]
    if summary["seeds_without_provenance"]:
        lines += ["", f"Seeds from an earlier run without versions/device/commit (owed a rerun): "
                  f"{', '.join(map(str, summary['seeds_without_provenance']))}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
