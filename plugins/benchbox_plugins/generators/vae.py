"""Convolutional VAE generator: q(z|x) = N(mu, var) from the shared encoder, x' = D(z)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from benchbox.training import batched
from benchbox_plugins.generators.base.conv_generator import ConvGenerator, ConvGeneratorConfig
from benchbox_plugins.generators.base.latent_heads import GaussianHead


@dataclass
class BetaConfig(ConvGeneratorConfig):
    beta: float = 1.0
    """Weight of the KL term (beta-VAE; 1 = the plain ELBO)."""


def check_beta(name: str, beta: float) -> None:
    if beta < 0:
        raise ValueError(f"{name}: --generator.beta must be >= 0, got {beta}")


@dataclass
class VAEConfig(BetaConfig):
    sample_posterior: bool = False
    """encode() returns a posterior sample (fixed seed, so still deterministic) instead of the mean."""


class VAE(ConvGenerator):
    """Convolutional VAE (beta option); encode gives the posterior mean, 8..256 px, 1 or 3 channels."""

    name = "vae"

    @dataclass
    class Config(VAEConfig):
        pass

    def __init__(self, config=None):
        super().__init__(config)
        check_beta(self.name, self.config.beta)

    def build_head(self, channels: int, size: int) -> GaussianHead:
        c = self.config
        return GaussianHead(channels, size, c.latent_dim, c.beta, **self.backbone_options)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        if not self.config.sample_posterior:
            return super().encode(images)
        net = self._net()
        gen = torch.Generator(device=self.device).manual_seed(0)  # same images, same samples

        def sample(x: torch.Tensor) -> torch.Tensor:
            mu, logvar = net.posterior(x)
            return net.sample(mu, logvar, gen)

        return batched(sample, images, self.device)
