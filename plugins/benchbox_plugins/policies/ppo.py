"""The ``ppo`` latent policy: PPO (:mod:`benchbox_plugins.rl.ppo`) learns dz on the latent environment.

``fit`` trains on the batched latent environment (reward: realism + novelty band - step size),
``propose`` plays one episode from each given z with the learned Gaussian policy's mean action,
or (``--policy.sample``) with actions sampled from it (a seeded generator: same seed, same dz).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from benchbox_plugins.policies.latent_rl import LatentRLOptions, LatentRLPolicy
from benchbox_plugins.rl import ppo


class PPOPolicy(LatentRLPolicy):
    """PPO-learned dz on a latent environment (realism + novelty band - step size reward)."""

    name = "ppo"
    algorithm = ppo
    positive = ("num_steps", "n_epochs", "num_minibatches")
    arg_names = {"n_epochs": "update_epochs"}
    curve_keys = ("entropy", "approx_kl", "clipfrac", "explained_variance", "action_std")

    @dataclass
    class Config(LatentRLOptions):
        num_steps: int = 4
        """Steps per environment per rollout."""
        n_epochs: int = 4
        """PPO epochs per update."""
        num_minibatches: int = 4
        learning_rate: float = 3e-3
        ent_coef: float = 0.0
        log_std_init: float = -0.5
        """Initial log-std of the Gaussian policy (actions in [-1, 1])."""

    def act(self, obs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        agent = self.model
        mean, log_std = agent.distribution(agent.obs_rms.normalize(obs))
        if generator is None:
            return mean.clamp(-1, 1)
        noise = torch.randn(mean.shape, generator=generator).to(obs.device)
        return (mean + log_std.exp() * noise).clamp(-1, 1)


if __name__ == "__main__":  # the old standalone path, as documented before the rl/ package
    ppo.main()
