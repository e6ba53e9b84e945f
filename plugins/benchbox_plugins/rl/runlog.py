"""What a training run reports: episode returns and reward terms per log row, a progress bar, run files.

* :class:`TrainLog` -- log rows: episode returns, reward terms and update statistics since the last row.
* :func:`progress_bar` -- the rich progress bar of the standalone runs (or plain log lines).
* :class:`RunArgs` -- the options every standalone run takes (each algorithm's ``Args`` extends it).
* :func:`run_standalone` -- train with a progress bar, evaluate, write the run folder.
* :func:`run_folder`, :func:`write_run`, :func:`print_summary` -- a standalone run's folder, its
  ``progress.csv`` / ``returns.png`` / ``eval.json``, and the closing line.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch


class TrainLog:
    """The log rows of a training run: episode returns, mean reward terms and mean update statistics of a
    batch of envs since the last row; ``history`` holds the finished rows."""

    def __init__(self, num_envs: int, device: torch.device, info_keys: tuple[str, ...] = ()):
        self.info_keys = tuple(info_keys)
        self.ep_return = torch.zeros(num_envs, device=device)
        self.history: list[dict[str, float]] = []
        self.clear()

    def clear(self) -> None:
        self.finished: list[float] = []
        self.sums = {k: 0.0 for k in self.info_keys}
        self.steps = 0
        self.stats: dict[str, list[float]] = {}

    def add(self, **values: float) -> None:
        """Record update statistics (losses, Q values); :meth:`mean` averages them over the row."""
        for key, value in values.items():
            self.stats.setdefault(key, []).append(value)

    def mean(self, key: str) -> float:
        values = self.stats.get(key)
        return float(np.mean(values)) if values else float("nan")

    @staticmethod
    def due(global_step: int, num_envs: int, every: int, total: int) -> bool:
        """True when the last vector step crossed a multiple of ``every`` steps, or ended the run."""
        return global_step // every != (global_step - num_envs) // every or global_step >= total

    def finish(self, row: dict[str, float], on_update: Callable[[dict[str, float]], None] | None = None,
               loss: str = "", what: str = "") -> None:
        """Close ``row``: stop with ``FloatingPointError`` if the mean ``loss`` is not finite (the caller
        may turn it into its own error type), add the reward terms, store it, report it, start a new one."""
        if loss and self.stats.get(loss) and not math.isfinite(row[loss]):
            raise FloatingPointError(f"{what} became {row[loss]} at step {row['global_step']}")
        row.update(self.reward_terms())
        self.history.append(row)
        if on_update is not None:
            on_update(row)
        self.clear()

    def record(self, reward: torch.Tensor, done: torch.Tensor, info: dict[str, Any]) -> None:
        self.ep_return += reward
        for k in self.info_keys:
            self.sums[k] += float(info[k].float().mean())
        self.steps += 1
        if bool(done.any()):
            self.finished += self.ep_return[done].tolist()
            self.ep_return = torch.where(done, 0.0, self.ep_return)

    def returns(self) -> dict[str, float]:
        return {"episodic_return": float(np.mean(self.finished)) if self.finished else float("nan"),
                "episodes": len(self.finished)}

    def reward_terms(self) -> dict[str, float]:
        return {f"reward/{k}": v / max(self.steps, 1) for k, v in self.sums.items()}


@contextlib.contextmanager
def progress_bar(name: str, env_id: str, total: int, enabled: bool = True,
                 every: int = 5_000) -> Iterator[Callable[[dict[str, float]], None]]:
    """Yields ``on_update(row)``: moves a rich bar to ``row["global_step"]`` showing the last return, or,
    with ``enabled=False``, prints one plain line per ``every`` steps (for logs of background runs)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    if not enabled:
        last = [0]

        def on_row(row: dict[str, float]) -> None:
            step = int(row["global_step"])
            if step // every != last[0] // every or step >= total:
                ret = row.get("episodic_return", float("nan"))
                print(f"{name} {env_id} step {step:,}/{total:,} return {ret:.1f} sps {row.get('sps', 0):.0f}", flush=True)
            last[0] = step

        yield on_row
        return
    with Progress(TextColumn(f"[bold]{name} {{task.fields[env]}}"), BarColumn(),
                  TextColumn("{task.completed:,.0f}/{task.total:,.0f}"), TextColumn("return {task.fields[ret]}"),
                  TimeRemainingColumn()) as bar:
        task = bar.add_task("train", total=total, env=env_id, ret="?")

        def on_update(row: dict[str, float]) -> None:
            ret = row.get("episodic_return", float("nan"))
            bar.update(task, completed=row["global_step"], ret="?" if math.isnan(ret) else f"{ret:.1f}")

        yield on_update


@dataclass
class RunArgs:
    """The options of every standalone run; each algorithm's ``Args`` derives from this (cleanrl's ``Args``)."""

    exp_name: str = "run"
    """Name of the run folder prefix."""
    seed: int = 1
    env_id: str = "Pendulum-v1"
    """Any gymnasium id with a Box action space (standalone use)."""
    total_timesteps: int = 30_000
    """Environment steps (transitions, summed over the parallel environments)."""
    eval_episodes: int = 10
    """Episodes of the final evaluation (deterministic actions, fresh env)."""
    out_dir: str = "runs"
    device: str = "cpu"
    threads: int = 1
    """torch threads (0 = leave as is)."""
    progress: bool = True
    """Draw a rich progress bar."""


def run_folder(args: RunArgs, suffix: str = "") -> Path:
    """``<out_dir>/<env_id>__<exp_name><suffix>__<seed>__<unix time>``, created."""
    out = Path(args.out_dir) / f"{args.env_id}__{args.exp_name}{suffix}__{args.seed}__{int(time.time())}"
    out.mkdir(parents=True, exist_ok=True)
    return out


def run_standalone(args: RunArgs, venv: Any, train: Callable[..., tuple], evaluate: Callable[[Any], list[float]],
                   title: str, suffix: str = "") -> dict[str, Any]:
    """A standalone run: ``train(args, venv, on_update) -> (model, ..., history)`` under a progress bar,
    ``evaluate(model)`` for the final returns, then the run folder (:func:`write_run`). Returns the summary."""
    if args.threads:
        torch.set_num_threads(args.threads)
    out = run_folder(args, suffix)
    t0 = time.time()
    with progress_bar(args.exp_name, args.env_id, args.total_timesteps, args.progress) as on_update:
        model, *_, history = train(args, venv, on_update)
    train_seconds = time.time() - t0
    venv.close()
    return write_run(out, args, history, evaluate(model), train_seconds, title)


def save_curve(path: Path, history: list[dict[str, float]], key: str = "episodic_return", title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    xs = [r["global_step"] for r in history if not math.isnan(r[key])]
    ax.plot(xs, [r[key] for r in history if not math.isnan(r[key])])
    ax.set_xlabel("environment steps")
    ax.set_ylabel(key.replace("_", " "))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_csv(path: Path, history: list[dict[str, float]]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(history[0]) if history else ["iteration"])
        writer.writeheader()
        writer.writerows(history)


def write_run(out: Path, args: Any, history: list[dict[str, float]], returns: list[float], train_seconds: float,
              title: str) -> dict[str, Any]:
    """A standalone run's outputs in ``out``: progress.csv, returns.png and eval.json (returned as a dict)."""
    summary = {"env_id": args.env_id, "seed": args.seed, "total_timesteps": history[-1]["global_step"] if history else 0,
               "eval_returns": returns, "eval_mean": float(np.mean(returns)), "eval_std": float(np.std(returns)),
               "train_seconds": round(train_seconds, 2), "args": asdict(args), "out": str(out)}
    write_csv(out / "progress.csv", history)
    save_curve(out / "returns.png", history, title=title)
    (out / "eval.json").write_text(json.dumps(summary, indent=2))
    return summary


def print_summary(summary: dict[str, Any], episodes: str = "eval episodes") -> None:
    print(f"{summary['env_id']} seed {summary['seed']}: mean return of {len(summary['eval_returns'])} {episodes} "
          f"{summary['eval_mean']:.1f} +- {summary['eval_std']:.1f} -> {summary['out']}")
