"""A circular replay buffer of transitions kept as tensors on one device (DDPG, DQN).

:func:`step_into_buffer` is the off-policy env step: act, store the true transition, record the
episode bookkeeping. Every random draw takes an explicit ``torch.Generator`` (CPU), so a seed
fixes the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from benchbox_plugins.rl.runlog import TrainLog


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


def step_into_buffer(envs: Any, rb: ReplayBuffer, obs: torch.Tensor, action: torch.Tensor,
                     log: TrainLog) -> tuple[torch.Tensor, torch.Tensor]:
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
