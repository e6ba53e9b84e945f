"""Pendulum-v1 reference table: random, PPO, DDPG, DQN and Noisy DQN from this repository's single-file agents.

Every (agent, seed) trains for a fixed step budget, then plays 10 evaluation episodes on a fresh
env (seeds 10000 + seed ...) with deterministic actions (PPO: the Gaussian mean; DDPG: the actor;
DQN: greedy, noisy layers at their mean weights; random: uniform random torques). The final return
of a run is the mean of those 10 episodes; the table gives mean +- std (over seeds) of that, the
steps, the training wall seconds and steps/s, next to the figures of the project's source material
(the average returns it reported for these algorithms on Pendulum, quoted in issue 9 -- not runs of
this repository: DQN -838, Noisy DQN -1368, DDPG -627; a good agent scores -100 to -200).

DQN and Noisy DQN act on 9 torques (-2, -1.5, ..., 2) through
:class:`benchbox_plugins.rl.envs.DiscretizeAction` (``--bins``).

Usage (one run per process keeps partial results; the summary merges every file present)::

    python benchmarks/pendulum.py                                   # everything, then the summary
    python benchmarks/pendulum.py --agents ddpg --seeds 2 --no-summary
    python benchmarks/pendulum.py --summary-only

Per-run results: ``benchmarks/results/pendulum/<agent>-seed<N>.json``; the summary:
``benchmarks/results/pendulum.{md,csv,json}``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from provenance import provenance

from benchbox.io import atomic_write_json, atomic_write_text

OUT = Path(__file__).parent / "results"
RUNS = OUT / "pendulum"
AGENTS = ("random", "ppo", "ddpg", "dqn", "noisy-dqn")
BUDGETS = {"random": 0, "ppo": 200_000, "ddpg": 20_000, "dqn": 30_000, "noisy-dqn": 30_000}
SOURCE = {"dqn": -838.0, "noisy-dqn": -1368.0, "ddpg": -627.0}
TARGETS = {"ddpg": -250.0, "dqn": -400.0}
BINS = 9
EVAL_EPISODES = 10


def run_one(agent: str, seed: int, steps: int) -> dict[str, Any]:
    """Train ``agent`` on Pendulum-v1 for ``steps`` steps and evaluate it; returns the result row."""
    scratch = f"/tmp/benchbox_pendulum/{agent}"
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    if agent == "random":
        import gymnasium as gym

        from benchbox_plugins.rl.envs import evaluate_episodes

        env = gym.make("Pendulum-v1")
        env.action_space.seed(seed)
        returns = evaluate_episodes(lambda _obs: env.action_space.sample(), env, EVAL_EPISODES, 10_000 + seed)
        summary = {"eval_returns": returns, "total_timesteps": 0, "train_seconds": 0.0, "args": {}}
    elif agent == "ppo":
        from benchbox_plugins.rl import ppo

        summary = ppo.run(ppo.Args(seed=seed, env_id="Pendulum-v1", total_timesteps=steps, progress=False,
                                   eval_episodes=EVAL_EPISODES, out_dir=scratch))
    elif agent == "ddpg":
        from benchbox_plugins.rl import ddpg

        summary = ddpg.run(ddpg.Args(seed=seed, env_id="Pendulum-v1", total_timesteps=steps, progress=False,
                                     eval_episodes=EVAL_EPISODES, out_dir=scratch))
    elif agent in ("dqn", "noisy-dqn"):
        from benchbox_plugins.rl import dqn

        summary = dqn.run(dqn.Args(seed=seed, env_id="Pendulum-v1", bins=BINS, total_timesteps=steps,
                                   noisy=agent == "noisy-dqn", progress=False, eval_episodes=EVAL_EPISODES,
                                   out_dir=scratch))
    else:
        raise ValueError(f"pendulum: unknown agent {agent!r}; choose from {', '.join(AGENTS)}")
    returns = summary["eval_returns"]
    train_s = float(summary["train_seconds"])
    n_steps = int(summary["total_timesteps"])
    return {"agent": agent, "seed": seed, "final_return": float(np.mean(returns)), "eval_std": float(np.std(returns)),
            "eval_returns": returns, "steps": n_steps, "train_seconds": round(train_s, 1),
            "steps_per_s": round(n_steps / train_s, 1) if train_s > 0 else None,
            "total_seconds": round(time.perf_counter() - t0, 1), "load_before": round(load_before, 2),
            "load_after": round(os.getloadavg()[0], 2), "args": summary.get("args", {}), **provenance("cpu", t0)}


def _fmt(mean: float, std: float) -> str:
    return f"{mean:.1f} ± {std:.1f}"


def summarise() -> dict[str, Any]:
    rows = [json.loads(p.read_text()) for p in sorted(RUNS.glob("*-seed*.json"))]
    table = []
    for agent in AGENTS:
        mine = sorted((r for r in rows if r["agent"] == agent), key=lambda r: r["seed"])
        if not mine:
            continue
        finals = [r["final_return"] for r in mine]
        secs = [r["train_seconds"] for r in mine]
        sps = [r["steps_per_s"] for r in mine if r["steps_per_s"]]
        table.append({
            "agent": agent, "seeds": [r["seed"] for r in mine], "n_seeds": len(mine),
            "final_return_mean": statistics.mean(finals),
            "final_return_std": statistics.stdev(finals) if len(finals) > 1 else 0.0,
            "per_seed": finals, "steps": sorted({r["steps"] for r in mine}),
            "train_seconds_mean": statistics.mean(secs), "steps_per_s_mean": statistics.mean(sps) if sps else None,
            "source": SOURCE.get(agent), "target": TARGETS.get(agent),
        })
    env = {"torch": torch.__version__, "device": "cpu", "threads_per_run": 1, "cpu_count": os.cpu_count(),
           "platform": platform.platform(), "python": platform.python_version(),
           "load_during_runs": [r["load_before"] for r in rows],
           "runs_without_provenance": [f"{r['agent']}-seed{r['seed']}" for r in rows if "commit" not in r],
           "commits": sorted({str(r.get("commit")) for r in rows if "commit" in r})}
    summary = {"env_id": "Pendulum-v1", "eval_episodes": EVAL_EPISODES, "dqn_torque_bins": BINS,
               "budgets": BUDGETS, "table": table, "runs": rows, "environment": env,
               # wall_seconds here = the sum of the per-run wall times (each run records its own)
               **provenance("cpu", time.perf_counter() - sum(r.get("total_seconds", 0.0) for r in rows))}
    atomic_write_json(OUT / "pendulum.json", summary)

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["agent", "n_seeds", "final_return_mean", "final_return_std", "per_seed", "steps",
                     "train_seconds_mean", "steps_per_s_mean", "source", "target"])
    for t in table:
        writer.writerow([t["agent"], t["n_seeds"], round(t["final_return_mean"], 1), round(t["final_return_std"], 1),
                         " ".join(f"{x:.1f}" for x in t["per_seed"]), " ".join(map(str, t["steps"])),
                         round(t["train_seconds_mean"], 1),
                         "" if t["steps_per_s_mean"] is None else round(t["steps_per_s_mean"], 1),
                         "" if t["source"] is None else t["source"], "" if t["target"] is None else t["target"]])
    atomic_write_text(OUT / "pendulum.csv", buf.getvalue())

    lines = ["# Pendulum-v1: random, PPO, DDPG, DQN, Noisy DQN", "",
             f"Final return = mean of {EVAL_EPISODES} evaluation episodes on a fresh env with deterministic actions "
             "(PPO: Gaussian mean, DDPG: actor, DQN: greedy, NoisyNet at its mean weights; random: uniform torques). "
             "Mean ± std over seeds. A good agent scores -100 to -200. `source figure`: the average return the "
             "project's source material reported for the same algorithm (quoted in issue 9; not a run of this "
             "repository). `target`: the issue's acceptance threshold.", "",
             "| agent | seeds | final return | per seed | steps | train s (mean) | steps/s | source figure | target |",
             "|---|---|---|---|---|---|---|---|---|"]
    for t in table:
        sps = "–" if t["steps_per_s_mean"] is None else f"{t['steps_per_s_mean']:.0f}"
        src = "–" if t["source"] is None else f"{t['source']:.0f}"
        tgt = "–" if t["target"] is None else f"≥ {t['target']:.0f}"
        lines.append(f"| {t['agent']} | {t['n_seeds']} | {_fmt(t['final_return_mean'], t['final_return_std'])} | "
                     f"{', '.join(f'{x:.0f}' for x in t['per_seed'])} | {', '.join(f'{s:,}' for s in t['steps'])} | "
                     f"{t['train_seconds_mean']:.0f} | {sps} | {src} | {tgt} |")
    lines += ["", "Settings (each agent's `Args` defaults unless stated):", "",
              f"- PPO: `benchbox_plugins.rl.ppo` with the settings of `benchmarks/pendulum_ppo.py` (4 envs x 1024 "
              f"steps, 10 epochs, 64 minibatches, lr 1e-3 annealed, gamma 0.9, obs/reward normalisation), "
              f"{BUDGETS['ppo']:,} steps requested (a whole number of 4096-step rollouts is run).",
              "- DDPG: lr 1e-3, batch 256, tau 0.005, gamma 0.98, buffer 200k, 10k uniform-random steps first, "
              "Gaussian noise 0.1, 128-128 ReLU networks (rl-zoo: 400-300), 1 update per step (so "
              f"{BUDGETS['ddpg'] - 10_000:,} updates).",
              f"- DQN: {BINS} torque bins (-2, -1.5, ..., 2), Double DQN target, Huber loss, lr 1e-3, batch 128, "
              "gamma 0.98, buffer 50k, 1k steps before learning, target copy every 500 updates, epsilon 1 -> 0.05 "
              "over the first 20 % of steps, 128-128 ReLU network, 1 update per step, gradient norm clip 10.",
              "- Noisy DQN: the same with `--noisy` (every linear layer factorised-Gaussian NoisyLinear, sigma0 0.5, "
              "epsilon 0).",
              "", f"Environment: CPU, torch {env['torch']}, 1 torch thread per run, runs one at a time, "
              f"{env['cpu_count']} cores shared with other jobs (1-min load at the start of the runs: "
              f"{min(env['load_during_runs'] or [0]):.1f}–{max(env['load_during_runs'] or [0]):.1f}), so seconds and "
              "steps/s are pessimistic.", ""]
    atomic_write_text(OUT / "pendulum.md", "\n".join(lines))
    print("\n".join(lines))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", nargs="*", default=list(AGENTS), choices=AGENTS)
    parser.add_argument("--seeds", type=int, nargs="*", default=[1, 2, 3])
    parser.add_argument("--steps", type=int, default=None, help="override the step budget of every agent run now")
    parser.add_argument("--no-summary", action="store_true")
    parser.add_argument("--summary-only", action="store_true")
    opts = parser.parse_args()
    torch.set_num_threads(1)
    RUNS.mkdir(parents=True, exist_ok=True)
    for agent in [] if opts.summary_only else opts.agents:
        for seed in opts.seeds:
            row = run_one(agent, seed, opts.steps if opts.steps is not None else BUDGETS[agent])
            atomic_write_json(RUNS / f"{agent}-seed{seed}.json", row)
            print(f"{agent} seed {seed}: final return {row['final_return']:.1f} after {row['steps']:,} steps "
                  f"({row['train_seconds']} s)", flush=True)
    if not opts.no_summary:
        summarise()


if __name__ == "__main__":
    main()
