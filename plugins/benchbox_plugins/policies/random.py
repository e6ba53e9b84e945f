"""Random latent perturbations: the baseline a learned policy has to beat."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch

from benchbox.interfaces import FitContext, Generator, LatentPolicy
from benchbox.options import at_least


class RandomDelta(LatentPolicy):
    """Random dz ~ N(0, (sigma * std_z)^2) per latent dimension."""

    @dataclass
    class Config:
        sigma: Annotated[float, at_least(0, "a number")] = 0.5
        """Step size in units of the per-dimension std of the training latents."""

    def __init__(self, config: Config | None = None):
        super().__init__(config)
        if self.config.sigma < 0:
            raise ValueError(f"random: --policy.sigma must be >= 0, got {self.config.sigma}")
        self.std: torch.Tensor | None = None

    def fit(self, generator: Generator, latents: torch.Tensor, ctx: FitContext) -> None:
        self.std = latents.float().std(0) if len(latents) > 1 else torch.ones(latents.shape[1])
        ctx.curves.log("latent_std_mean", 0, float(self.std.mean()))
        ctx.progress(1, 1)

    def propose(self, z: torch.Tensor, seed: int) -> torch.Tensor:
        if self.std is None:
            raise RuntimeError("random: call fit() before propose()")
        noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(seed))
        return (noise * self.config.sigma * self.std).to(device=z.device, dtype=z.dtype)
