"""A discrete-action form of the latent environment: +/- one step along the top-K principal directions.

The continuous latent MDP (:mod:`benchbox_plugins.rl.latent_env`) moves ``z`` by
``dz = step_size * sigma * a`` for an action ``a`` in ``[-1, 1]^d``. Here the action is an index
``j`` in ``[0, 2K)``: direction ``k = j // 2``, sign ``+`` for even ``j`` and ``-`` for odd ``j``,
and the continuous action passed on is ``a = +/- u_k``, where ``u_1 .. u_K`` are the top-K
principal directions of the *normalised* training latents ``(Z - mu) / sigma`` (right singular
vectors of that centred matrix, orthonormal, ordered by explained variance, sign fixed so the
largest-magnitude component is positive). A unit vector has every component in ``[-1, 1]``, so
the base environment never clips it: one step moves ``z`` by exactly ``step_size`` per-dimension
stds along ``u_k`` (``||dz / sigma|| = step_size``). Observations, rewards, terminations and the
autoreset are those of the wrapped :class:`~benchbox_plugins.rl.latent_env.LatentVectorEnv`.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch

from benchbox_plugins.rl.latent_env import LatentCore, LatentVectorEnv


def principal_directions(core: LatentCore, k: int) -> torch.Tensor:
    """``K x d`` orthonormal top-K principal directions of the normalised training latents."""
    m, d = core.zn.shape
    if not 1 <= k <= min(d, m - 1):
        raise ValueError(f"latent discrete env: K must be in [1, {min(d, m - 1)}] "
                         f"(latent dim {d}, {m} training latents), got {k}")
    centred = core.zn - core.zn.mean(0)
    _, _, vh = torch.linalg.svd(centred.double().cpu(), full_matrices=False)
    u = vh[:k]
    flip = torch.sign(u.gather(1, u.abs().argmax(1, keepdim=True)))
    return (u * flip).float().to(core.device)


class LatentDiscreteVecEnv:
    """``2K`` discrete actions over a :class:`LatentVectorEnv` (torch in, torch out)."""

    def __init__(self, env: LatentVectorEnv, k: int):
        self.env = env
        self.core = env.core
        self.directions = principal_directions(env.core, k)
        self.actions = torch.stack([self.directions, -self.directions], dim=1).reshape(2 * k, -1)
        """``2K x d`` table: row ``j`` is the continuous action of discrete action ``j``."""
        self.num_envs = env.num_envs
        self.single_observation_space = env.single_observation_space
        self.single_action_space = gym.spaces.Discrete(2 * k)

    def continuous(self, action: torch.Tensor) -> torch.Tensor:
        """The continuous actions (``N x d``) of ``N`` action indices.

        Indices from the host (numpy, lists, CPU tensors) are range-checked there (ValueError); indices
        already on an accelerator are checked there (``torch._assert_async``), never read back."""
        idx = torch.as_tensor(action, dtype=torch.long).reshape(-1)
        bad = (idx < 0) | (idx >= len(self.actions))
        if idx.device.type == "cpu":
            if bool(bad.any()):
                raise ValueError(f"latent discrete env: actions must be in [0, {len(self.actions)})")
        else:
            torch._assert_async(~bad.any(), f"latent discrete env: actions must be in [0, {len(self.actions)})")
        return self.actions[idx.to(self.core.device)]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        return self.env.reset(seed=seed, options=options)

    def step(self, action: torch.Tensor):
        return self.env.step(self.continuous(action))

    def close(self) -> None:
        return None
