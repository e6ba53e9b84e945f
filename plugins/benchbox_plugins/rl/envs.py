"""Gymnasium environments as the agents see them: batched torch in/out, Box actions in [-1, 1].

* :func:`make_vec_env` -- N copies of an environment in a SAME_STEP-autoreset ``SyncVectorEnv``.
* :class:`TorchVecEnv` / :class:`TorchDiscreteVecEnv` -- that numpy vector env seen through torch,
  with Box actions in [-1, 1] / Discrete action indices.
* :class:`DiscretizeAction` -- a Box action space cut into a grid of ``bins`` values per dimension,
  so a discrete-action agent (DQN) can play Pendulum.
* :func:`box_action` -- an action in [-1, 1] mapped linearly onto a Box's bounds.
* :func:`evaluate_episodes` -- returns of a few episodes of a single numpy env under a fixed policy.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch


def make_vec_env(make: Callable[[], gym.Env], num_envs: int) -> gym.vector.SyncVectorEnv:
    """``num_envs`` environments from ``make`` stepped in one process, SAME_STEP autoreset."""
    from gymnasium.vector import AutoresetMode, SyncVectorEnv

    return SyncVectorEnv([make for _ in range(num_envs)], autoreset_mode=AutoresetMode.SAME_STEP)


def box_action(action: np.ndarray, space: gym.spaces.Box) -> np.ndarray:
    """``action`` in [-1, 1] scaled onto the bounds of ``space`` (float32)."""
    low = np.asarray(space.low, dtype=np.float32)
    high = np.asarray(space.high, dtype=np.float32)
    return low + (action + 1) * 0.5 * (high - low)


class TorchVecEnv:
    """A gymnasium numpy vector env (SAME_STEP autoreset) seen through torch, actions in [-1, 1].

    ``step`` returns torch tensors; where an episode ended, ``info["final_obs"]`` is an N x obs
    tensor holding the last observation on those rows (the current one elsewhere) and
    ``info["_final_obs"]`` the boolean mask.
    """

    def __init__(self, envs: Any, device: torch.device):
        self.envs, self.device = envs, device
        self.num_envs = envs.num_envs
        self.single_observation_space = envs.single_observation_space
        self.single_action_space = space = envs.single_action_space
        self.check_space(space)
        if isinstance(space, gym.spaces.Box):
            self.low = torch.as_tensor(space.low, dtype=torch.float32, device=device)
            self.high = torch.as_tensor(space.high, dtype=torch.float32, device=device)

    def check_space(self, space: gym.Space) -> None:
        if not isinstance(space, gym.spaces.Box):
            raise ValueError(f"TorchVecEnv needs a Box action space, got {space}")

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

    def check_space(self, space: gym.Space) -> None:
        if not isinstance(space, gym.spaces.Discrete):
            raise ValueError(f"TorchDiscreteVecEnv needs a Discrete action space, got {space}")

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
