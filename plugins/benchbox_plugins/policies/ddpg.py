"""The ``ddpg`` latent policy: DDPG (:mod:`benchbox_plugins.rl.ddpg`) learns dz on the latent environment.

Same reward as ``ppo``. ``propose`` plays one episode from each given z with the deterministic
actor plus (``--policy.propose-noise``) seeded Gaussian noise, so the same seed gives the same dz.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

from benchbox_plugins.policies.latent_rl import LatentRLOptions, LatentRLPolicy
from benchbox_plugins.rl import ddpg


class DDPGPolicy(LatentRLPolicy):
    """DDPG-learned dz on a latent environment (same reward as ppo: realism + novelty band - step size)."""

    name = "ddpg"
    algorithm = ddpg
    positive = ("batch_size", "buffer_size", "gradient_steps", "tau")
    non_negative = ("learning_starts", "noise_sigma", "propose_noise")
    unit_interval = ("tau",)
    curve_keys = ("qf_loss", "actor_loss", "q_mean", "action_std")

    @dataclass
    class Config(LatentRLOptions):
        batch_size: int = 256
        learning_rate: float = 1e-3
        gamma: float = 0.9
        tau: float = 0.005
        buffer_size: int = 100_000
        learning_starts: int = 1024
        """Transitions with uniform random actions before learning starts."""
        gradient_steps: int = 16
        """Critic updates per batched environment step."""
        noise: Literal["gaussian", "ou"] = "gaussian"
        noise_sigma: float = 0.2
        """Exploration noise std (sigma of the OU process), in [-1, 1] action units."""
        hidden: int = 64
        """Width of the two hidden layers of actor and critic."""
        propose_noise: float = 0.1
        """Std of the seeded Gaussian noise added to the actor's action in propose (0 = deterministic dz)."""
        threads: int = 1
        """torch CPU threads while DDPG trains (0 = as is)."""

    def args_overrides(self) -> dict[str, Any]:
        return {"hidden": (self.config.hidden, self.config.hidden), "log_every": self.config.num_envs}

    def act(self, obs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        action = self.model(obs)
        if self.config.propose_noise > 0:
            action = action + self.config.propose_noise * torch.randn(action.shape, generator=generator).to(obs.device)
        return action.clamp(-1, 1)


if __name__ == "__main__":  # the old standalone path, as documented before the rl/ package
    ddpg.main()
