"""The ``dqn`` latent policy: DQN (:mod:`benchbox_plugins.rl.dqn`) over 2K discrete latent moves.

The actions are +/- one step along the top-K principal directions of the training latents
(:mod:`benchbox_plugins.rl.latent_discrete`), with the reward of ``ppo``; ``--policy.noisy`` for
NoisyNet exploration. ``propose`` takes the greedy move, or (with ``--policy.sample``) with
probability ``--policy.propose-epsilon`` a seeded uniformly random one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from benchbox.errors import ConfigError
from benchbox_plugins.policies.latent_rl import OffPolicyOptions, OffPolicyRLPolicy
from benchbox_plugins.rl import dqn
from benchbox_plugins.rl.latent_discrete import LatentDiscreteVecEnv
from benchbox_plugins.rl.latent_env import LatentCore, LatentVectorEnv, RewardConfig


class DQNPolicy(OffPolicyRLPolicy):
    """DQN over 2K discrete latent moves (+/- one step along the top-K principal directions); optional NoisyNet."""

    name = "dqn"
    algorithm = dqn
    positive = OffPolicyRLPolicy.positive + ("directions", "target_network_frequency")
    unit_interval = ("start_e", "end_e", "propose_epsilon", "exploration_fraction")
    curve_keys = ("td_loss", "q_mean", "epsilon", "action_entropy")
    table: torch.Tensor | None = None
    """``2K x d``: row ``j`` is the continuous action of discrete move ``j`` (set by fit)."""

    @dataclass
    class Config(OffPolicyOptions):
        step_size: float = RewardConfig.step_size
        """Length of one step: ||dz / std|| = step_size * sqrt(d), the length of the largest continuous step
        (a corner of [-1, 1]^d) and, like the novelty band, in std units divided by sqrt(d)."""
        directions: int = 8
        """K: the actions are +/- one step along the top-K principal directions of the training latents (2K actions)."""
        target_network_frequency: int = 100
        """Gradient updates between target network copies."""
        start_e: float = 1.0
        end_e: float = 0.05
        exploration_fraction: float = 0.5
        double: bool = True
        noisy: bool = False
        """NoisyNet layers (factorised Gaussian) instead of epsilon-greedy exploration."""
        propose_epsilon: float = 0.05
        """Probability of a seeded uniformly random move in propose with --policy.sample (0 = greedy)."""

    def reward_config(self, latents: torch.Tensor) -> RewardConfig:
        m, d = latents.shape
        if self.config.directions > min(d, m - 1):
            raise ConfigError(f"dqn: --policy.directions must be <= {min(d, m - 1)} (latent dim {d}, "
                              f"{m} training latents), got {self.config.directions}")
        return self.config.reward_config(step_scale=math.sqrt(d))

    def make_env(self, core: LatentCore) -> LatentDiscreteVecEnv:
        env = LatentDiscreteVecEnv(LatentVectorEnv(core, self.config.num_envs), self.config.directions)
        self.table = env.actions
        return env

    def act(self, obs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        n = len(obs)
        idx = self.model(obs).argmax(1)
        if generator is None:
            return self.table[idx]
        explore = (torch.rand(n, generator=generator) < self.config.propose_epsilon).to(obs.device)
        idx = torch.where(explore, torch.randint(0, len(self.table), (n,), generator=generator).to(obs.device), idx)
        return self.table[idx]


if __name__ == "__main__":  # the old standalone path, as documented before the rl/ package
    dqn.main()
