"""The ``ddpg`` latent policy: DDPG (:mod:`benchbox_plugins.rl.ddpg`) learns dz on the latent environment.

Same reward as ``ppo``. ``propose`` plays one episode from each given z with the deterministic
actor, plus (with ``--policy.sample``) ``--policy.propose-noise`` seeded Gaussian noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from benchbox_plugins.policies.latent_rl import OffPolicyOptions, OffPolicyRLPolicy
from benchbox_plugins.rl import ddpg


class DDPGPolicy(OffPolicyRLPolicy):
    """DDPG-learned dz on a latent environment (same reward as ppo: realism + novelty band - step size)."""

    name = "ddpg"
    algorithm = ddpg
    positive = OffPolicyRLPolicy.positive + ("tau",)
    non_negative = OffPolicyRLPolicy.non_negative + ("noise_sigma", "propose_noise")
    unit_interval = ("tau",)
    curve_keys = ("qf_loss", "actor_loss", "q_mean", "action_std")

    @dataclass
    class Config(OffPolicyOptions):
        tau: float = 0.005
        """Polyak coefficient of the target networks."""
        noise: Literal["gaussian", "ou"] = "gaussian"
        noise_sigma: float = 0.2
        """Exploration noise std (sigma of the OU process), in [-1, 1] action units."""
        propose_noise: float = 0.1
        """Std of the seeded Gaussian noise added to the actor's action in propose with --policy.sample."""

    def act(self, obs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        action = self.model(obs)
        if generator is not None and self.config.propose_noise > 0:
            action = action + self.config.propose_noise * torch.randn(action.shape, generator=generator).to(obs.device)
        return action.clamp(-1, 1)


if __name__ == "__main__":  # the old standalone path, as documented before the rl/ package
    ddpg.main()
