"""Small pieces shared by the RL algorithms (``ppo``, ``ddpg``, ``dqn``).

* :class:`ReplayBuffer` -- a circular buffer of transitions kept as tensors on one device.
* :func:`polyak_update` -- ``target <- tau * source + (1 - tau) * target``.
* :class:`GaussianNoise`, :class:`OUNoise` -- exploration noise for deterministic actors.
* :func:`linear_schedule` -- epsilon decay.
* :class:`TorchVecEnv` / :class:`TorchDiscreteVecEnv` -- a gymnasium numpy vector env seen through
  torch, with Box actions in [-1, 1] / Discrete action indices.
* :func:`cpu_threads` -- torch's CPU thread count for a block, restored afterwards.
* :class:`DiscretizeAction` -- a Box action space cut into a grid of ``bins`` values per dimension,
  so a discrete-action agent (DQN) can play Pendulum.
* :func:`evaluate_episodes` -- returns of a few episodes of a single numpy env under a fixed policy.
* :func:`progress_bar` -- the rich progress bar of the standalone runs (or plain log lines).

Every random draw takes an explicit ``torch.Generator`` (CPU), so a seed fixes the run.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import gymnasium as gym
import numpy as np
import torch
from torch import nn


# ------------------------------------------------------------------------------ replay buffer


@dataclass
class Batch:
    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    dones: torch.Tensor
    """1.0 where the episode *terminated* at this transition (no bootstrapping); truncations are 0."""


class ReplayBuffer:
    """Fixed-capacity circular replay buffer; ``add`` takes a batch of N transitions at once.

    When full, the oldest transitions are overwritten (a batch that crosses the end wraps around
    to the start). ``sample`` draws indices uniformly with replacement from the stored ones.
    """

    def __init__(self, capacity: int, obs_dim: int, action_shape: tuple[int, ...] = (),
                 action_dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"):
        if capacity < 1:
            raise ValueError(f"replay buffer: capacity must be >= 1, got {capacity}")
        self.capacity, self.device = int(capacity), torch.device(device)
        self.obs = torch.zeros((capacity, obs_dim), device=self.device)
        self.next_obs = torch.zeros((capacity, obs_dim), device=self.device)
        self.actions = torch.zeros((capacity, *action_shape), dtype=action_dtype, device=self.device)
        self.rewards = torch.zeros(capacity, device=self.device)
        self.dones = torch.zeros(capacity, device=self.device)
        self.pos = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor, next_obs: torch.Tensor,
            dones: torch.Tensor) -> None:
        n = obs.shape[0]
        if n > self.capacity:  # only the newest `capacity` rows can survive
            obs, actions, rewards, next_obs, dones = (x[-self.capacity:] for x in (obs, actions, rewards, next_obs, dones))
            n = self.capacity
        idx = (self.pos + torch.arange(n, device=self.device)) % self.capacity
        self.obs[idx] = obs.to(self.device, torch.float32).reshape(n, -1)
        self.next_obs[idx] = next_obs.to(self.device, torch.float32).reshape(n, -1)
        self.actions[idx] = actions.to(self.device, self.actions.dtype).reshape(n, *self.actions.shape[1:])
        self.rewards[idx] = rewards.to(self.device, torch.float32).reshape(n)
        self.dones[idx] = dones.to(self.device, torch.float32).reshape(n)
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        if self.size == 0:
            raise RuntimeError("replay buffer: sample() before any add()")
        idx = torch.randint(0, self.size, (batch_size,), generator=generator).to(self.device)
        return Batch(self.obs[idx], self.actions[idx], self.rewards[idx], self.next_obs[idx], self.dones[idx])


# --------------------------------------------------------------------------- target networks


@torch.no_grad()
def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """``target <- tau * source + (1 - tau) * target`` for parameters; buffers are copied."""
    for t, s in zip(target.parameters(), source.parameters(), strict=True):
        t.mul_(1.0 - tau).add_(s, alpha=tau)
    for t, s in zip(target.buffers(), source.buffers(), strict=True):
        t.copy_(s)


def linear_schedule(start: float, end: float, duration: float, t: float) -> float:
    """``start`` at ``t = 0`` moving linearly to ``end`` at ``t = duration``, then ``end``."""
    if duration <= 0 or t >= duration:
        return end
    return start + (end - start) * max(0.0, t / duration)


# ------------------------------------------------------------------------- exploration noise


class GaussianNoise:
    """Independent N(0, sigma^2) noise per step (``reset`` is a no-op, kept for a common interface)."""

    def __init__(self, shape: tuple[int, ...], sigma: float, generator: torch.Generator):
        self.shape, self.sigma, self.gen = tuple(shape), float(sigma), generator

    def sample(self) -> torch.Tensor:
        return self.sigma * torch.randn(self.shape, generator=self.gen)

    def reset(self, mask: torch.Tensor | None = None) -> None:
        return None


class OUNoise:
    """Ornstein--Uhlenbeck noise, one process per row of ``shape`` (Euler--Maruyama step):

    ``x <- x + theta * (mu - x) * dt + sigma * sqrt(dt) * N(0, 1)``.

    Its stationary distribution is ``N(mu, sigma^2 / (2 theta))``; successive samples are
    correlated (lag-one correlation ``1 - theta * dt``), which explores by drifting. ``reset(mask)``
    puts the rows where ``mask`` is true (all rows if ``mask`` is None) back to ``mu``, at the start
    of their episodes.
    """

    def __init__(self, shape: tuple[int, ...], sigma: float = 0.2, theta: float = 0.15, dt: float = 1e-2,
                 mu: float = 0.0, generator: torch.Generator | None = None):
        if theta <= 0 or dt <= 0:
            raise ValueError(f"OU noise: theta and dt must be > 0, got theta={theta}, dt={dt}")
        self.shape, self.sigma, self.theta, self.dt, self.mu = tuple(shape), float(sigma), float(theta), float(dt), float(mu)
        self.gen = generator if generator is not None else torch.Generator().manual_seed(0)
        self.x = torch.full(self.shape, self.mu)

    def sample(self) -> torch.Tensor:
        eps = torch.randn(self.shape, generator=self.gen)
        self.x = self.x + self.theta * (self.mu - self.x) * self.dt + self.sigma * self.dt**0.5 * eps
        return self.x.clone()

    def reset(self, mask: torch.Tensor | None = None) -> None:
        if mask is None:
            self.x = torch.full(self.shape, self.mu)
        else:
            m = mask.cpu().reshape(-1, *([1] * (len(self.shape) - 1)))
            self.x = torch.where(m, torch.full_like(self.x, self.mu), self.x)


# ------------------------------------------------------------------------------ environments


class TorchVecEnv:
    """A gymnasium numpy vector env (SAME_STEP autoreset) seen through torch, actions in [-1, 1].

    ``step`` returns torch tensors; where an episode ended, ``info["final_obs"]`` is an N x obs
    tensor holding the last observation on those rows (the current one elsewhere) and
    ``info["_final_obs"]`` the boolean mask.
    """

    def __init__(self, envs: Any, device: torch.device):
        self.envs, self.device = envs, device
        space = envs.single_action_space
        self.low = torch.as_tensor(space.low, dtype=torch.float32, device=device)
        self.high = torch.as_tensor(space.high, dtype=torch.float32, device=device)
        self.num_envs = envs.num_envs
        self.single_observation_space = envs.single_observation_space
        self.single_action_space = space

    def _t(self, x: Any, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x), dtype=dtype, device=self.device)

    def reset(self, seed: int | None = None):
        obs, info = self.envs.reset(seed=seed)
        return self._t(obs), info

    def env_action(self, action: torch.Tensor) -> np.ndarray:
        """The numpy action the wrapped env takes: [-1, 1] scaled onto the Box bounds."""
        return (self.low + (action.clamp(-1, 1) + 1) * 0.5 * (self.high - self.low)).cpu().numpy()

    def step(self, action: torch.Tensor):
        obs, rew, term, trunc, info = self.envs.step(self.env_action(action))
        if "final_obs" in info:
            mask = np.asarray(info["_final_obs"], dtype=bool)
            final = np.asarray(obs, dtype=np.float32).copy()
            for i in np.flatnonzero(mask):
                final[i] = info["final_obs"][i]
            info["final_obs"], info["_final_obs"] = self._t(final), self._t(mask, torch.bool)
        return self._t(obs), self._t(rew), self._t(term, torch.bool), self._t(trunc, torch.bool), info

    def close(self) -> None:
        self.envs.close()


class TorchDiscreteVecEnv(TorchVecEnv):
    """:class:`TorchVecEnv` for a Discrete action space: ``step`` takes an int64 tensor of N action indices."""

    def __init__(self, envs: Any, device: torch.device):
        if not isinstance(envs.single_action_space, gym.spaces.Discrete):
            raise ValueError(f"TorchDiscreteVecEnv needs a Discrete action space, got {envs.single_action_space}")
        self.envs, self.device = envs, device
        self.num_envs = envs.num_envs
        self.single_observation_space = envs.single_observation_space
        self.single_action_space = envs.single_action_space

    def env_action(self, action: torch.Tensor) -> np.ndarray:
        return action.cpu().numpy().astype(np.int64)


class DiscretizeAction(gym.ActionWrapper):
    """A Box action space cut into ``bins`` evenly spaced values per dimension, both bounds included.

    For a ``d``-dimensional Box the discrete space has ``bins ** d`` actions; index ``i`` is read as
    a ``d``-digit number in base ``bins`` (first dimension most significant) and digit ``j`` maps to
    ``low + j * (high - low) / (bins - 1)``. Pendulum-v1 (one torque in [-2, 2]) with ``bins = 5``
    gives the torques ``[-2, -1, 0, 1, 2]``; an odd ``bins`` keeps 0 (do nothing) among them.
    """

    def __init__(self, env: gym.Env, bins: int):
        super().__init__(env)
        space = env.action_space
        if not isinstance(space, gym.spaces.Box):
            raise ValueError(f"DiscretizeAction needs a Box action space, got {space}")
        if bins < 2:
            raise ValueError(f"DiscretizeAction: bins must be >= 2, got {bins}")
        if not (np.isfinite(space.low).all() and np.isfinite(space.high).all()):
            raise ValueError("DiscretizeAction: the Box action space must be bounded")
        d = int(np.prod(space.shape))
        if bins**d > 4096:
            raise ValueError(f"DiscretizeAction: {bins} bins on {d} dimensions give {bins ** d} actions (max 4096)")
        self.bins = bins
        grids = [np.linspace(lo, hi, bins, dtype=np.float32) for lo, hi in zip(space.low.ravel(), space.high.ravel())]
        self.table = np.array([np.array(c, dtype=np.float32).reshape(space.shape) for c in itertools.product(*grids)])
        self.action_space = gym.spaces.Discrete(len(self.table))

    def action(self, action: Any) -> np.ndarray:
        return self.table[int(action)]


def evaluate_episodes(act: Callable[[np.ndarray], Any], env: gym.Env, episodes: int, seed: int) -> list[float]:
    """Undiscounted returns of ``episodes`` episodes of ``env`` (reset with seeds ``seed + i``)."""
    returns = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        done, total = False, 0.0
        while not done:
            obs, r, term, trunc, _ = env.step(act(np.asarray(obs, dtype=np.float32)))
            total += float(r)
            done = bool(term or trunc)
        returns.append(total)
    return returns


@contextlib.contextmanager
def progress_bar(name: str, env_id: str, total: int, enabled: bool = True,
                 every: int = 5_000) -> Iterator[Callable[[dict[str, float]], None]]:
    """Yields ``on_update(row)``: moves a rich bar to ``row["global_step"]`` showing the last return, or,
    with ``enabled=False``, prints one plain line per ``every`` steps (for logs of background runs)."""
    import math

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


class EpisodeLog:
    """Episode returns and mean reward terms of a batch of envs since the last log row."""

    def __init__(self, num_envs: int, device: torch.device, info_keys: tuple[str, ...] = ()):
        self.info_keys = tuple(info_keys)
        self.ep_return = torch.zeros(num_envs, device=device)
        self.clear()

    def clear(self) -> None:
        self.finished: list[float] = []
        self.sums = {k: 0.0 for k in self.info_keys}
        self.steps = 0

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


def step_into_buffer(envs: Any, rb: "ReplayBuffer", obs: torch.Tensor, action: torch.Tensor,
                     log: EpisodeLog) -> tuple[torch.Tensor, torch.Tensor]:
    """Step the batched env, store (obs, action, reward, true next obs, terminated) in ``rb``.

    With same-step autoreset the env returns the next episode's first observation; the transition
    stores the finished episode's ``final_obs`` instead, and bootstraps through truncations (only
    ``terminated`` ends the value target). Returns (next obs, done).
    """
    n = obs.shape[0]
    next_obs, reward, term, trunc, info = envs.step(action)
    next_obs = next_obs.float().reshape(n, -1)
    reward = reward.float()
    done = term | trunc
    real_next = next_obs
    if "final_obs" in info:
        real_next = torch.where(info["_final_obs"].reshape(n, 1), info["final_obs"].float().reshape(n, -1), next_obs)
    rb.add(obs, action, reward, real_next, term)
    log.record(reward, done, info)
    return next_obs, done


# ------------------------------------------------------------------------------ run outputs


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


@contextlib.contextmanager
def cpu_threads(n: int, device: torch.device) -> Iterator[None]:
    """torch's CPU thread count set to ``n`` for the block (CPU devices, ``n`` > 0), restored afterwards."""
    saved = torch.get_num_threads()
    if n > 0 and device.type == "cpu":
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)
