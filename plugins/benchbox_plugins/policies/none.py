"""The no-augmentation control."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from benchbox.interfaces import FitContext, Generator, LatentPolicy


class NoAugmentation(LatentPolicy):
    """No augmentation: the detector sees only the real training images (the control)."""

    generates = False

    @dataclass
    class Config:
        pass

    def fit(self, generator: Generator, latents: torch.Tensor, ctx: FitContext) -> None:
        ctx.progress(1, 1)

    def propose(self, z: torch.Tensor, seed: int) -> torch.Tensor:
        return torch.zeros_like(z)
