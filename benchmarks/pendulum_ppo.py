"""Validate the single-file PPO on a task nobody here wrote: gymnasium's Pendulum-v1.

Trains ``benchbox_plugins.rl.ppo`` for ``--total-timesteps`` (default 200k) on each seed and
records the mean return of the final 10 evaluation episodes (deterministic actions, fresh env).
References: rl-baselines3-zoo (tuned PPO) about -172 after 100k steps; cleanrl's default PPO
about -1142 after 8M steps. Target here: mean >= -250 within 200k steps.

Writes ``benchmarks/results/pendulum_ppo.json`` and ``.md``. Usage::

    python benchmarks/pendulum_ppo.py [--seeds 1 2 3] [--total-timesteps 200000]
    python benchmarks/pendulum_ppo.py --seeds 2 --no-summary   # one seed per process, then:
    python benchmarks/pendulum_ppo.py --seeds --summary-only

Each seed's result is kept in ``benchmarks/results/pendulum_ppo/seed<N>.json``; the summary
covers every seed file present.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from benchbox_plugins.rl.ppo import Args, run

OUT = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=[1, 2, 3])
    parser.add_argument("--total-timesteps", type=int, default=200_000)
    parser.add_argument("--no-summary", action="store_true")
    parser.add_argument("--summary-only", action="store_true")
    opts = parser.parse_args()
    (OUT / "pendulum_ppo").mkdir(parents=True, exist_ok=True)
    for seed in [] if opts.summary_only else opts.seeds:
        t0 = time.time()
        s = run(Args(seed=seed, env_id="Pendulum-v1", total_timesteps=opts.total_timesteps, progress=False,
                     out_dir="/tmp/benchbox_pendulum_ppo"))
        row = {"seed": seed, "eval_mean": s["eval_mean"], "eval_std": s["eval_std"], "eval_returns": s["eval_returns"],
               "steps": s["total_timesteps"], "seconds": round(time.time() - t0, 1)}
        (OUT / "pendulum_ppo" / f"seed{seed}.json").write_text(json.dumps(row, indent=2))
        print(f"seed {seed}: final 10 eval episodes mean {s['eval_mean']:.1f} ({row['seconds']} s)", flush=True)
    if opts.no_summary:
        return
    rows = [json.loads(p.read_text()) for p in sorted((OUT / "pendulum_ppo").glob("seed*.json"))]
    means = [r["eval_mean"] for r in rows]
    summary = {"env_id": "Pendulum-v1", "total_timesteps": rows[0]["steps"], "rows": rows,
               "mean_over_seeds": statistics.mean(means), "std_over_seeds": statistics.stdev(means) if len(means) > 1 else 0.0,
               "target": -250, "args": {k: v for k, v in vars(Args()).items() if k not in ("seed", "out_dir")}}
    (OUT / "pendulum_ppo.json").write_text(json.dumps(summary, indent=2))
    lines = ["# PPO on Pendulum-v1", "", f"{rows[0]['steps']:,} steps per seed; mean return of the final 10 "
             "deterministic evaluation episodes. Target >= -250.", "", "| seed | eval mean | eval std | seconds |",
             "|---|---|---|---|"]
    lines += [f"| {r['seed']} | {r['eval_mean']:.1f} | {r['eval_std']:.1f} | {r['seconds']} |" for r in rows]
    lines += ["", f"**mean over seeds: {summary['mean_over_seeds']:.1f} ± {summary['std_over_seeds']:.1f}** (std over seeds)"]
    (OUT / "pendulum_ppo.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
