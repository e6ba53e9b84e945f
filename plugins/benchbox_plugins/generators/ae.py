"""Convolutional AutoEncoder generator: z = E(x), x' = D(z)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from benchbox.interfaces import FitContext, Generator
from benchbox.training import batched, train_epochs
from benchbox_plugins.common.convnet import ConvAutoEncoder, check_square


class AutoEncoder(Generator):
    """Convolutional AutoEncoder (MSE), any size 8..256 px, 1 or 3 channels."""

    @dataclass
    class Config:
        latent_dim: int = 16
        """Size of the latent vector z."""
        base_channels: int = 32
        """Channels of the first conv stage (doubling per stage, capped at 256)."""
        epochs: int = 40
        batch_size: int = 64
        lr: float = 2e-3

    def __init__(self, config: Config | None = None):
        super().__init__(config)
        if self.config.latent_dim < 1:
            raise ValueError(f"ae: --generator.latent-dim must be >= 1, got {self.config.latent_dim}")
        self.net: ConvAutoEncoder | None = None
        self.device = torch.device("cpu")

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def fit(self, train: torch.Tensor, ctx: FitContext) -> None:
        channels, size = check_square(train, "ae")
        torch.manual_seed(ctx.seed)
        self.net = ConvAutoEncoder(channels, size, self.config.latent_dim, self.config.base_channels)
        self.device = ctx.device
        val = ctx.val.images if ctx.val is not None and ctx.val.labels.eq(0).all() else None
        train_epochs(
            self.net, train, lambda x: F.mse_loss(self.net(x), x), ctx,  # type: ignore[misc]
            epochs=self.config.epochs, batch_size=self.config.batch_size, lr=self.config.lr,
            val=val, name="mse",
        )

    def _net(self) -> ConvAutoEncoder:
        if self.net is None:
            raise RuntimeError("ae: call fit() before encode()/decode()")
        return self.net.eval()

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return batched(self._net().encoder, images, self.device)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return batched(self._net().decoder, latents, self.device)
