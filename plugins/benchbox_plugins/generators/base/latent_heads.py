"""The latent heads that sit between the backbone's Encoder and Decoder.

Each head is a small ``nn.Module`` that owns an encoder and a decoder from ``backbone`` (built with
the generator's ``backbone_options``: width, up mode, channels_last, bf16) and
defines three things: ``latent(x)`` (the deterministic latent that ``Generator.encode`` returns),
``reconstruct(x)`` (what the reconstruction-error detector compares with ``x``) and ``loss(x)``
(the training objective, returning the scalar loss and a dict of extra per-batch statistics
that are averaged per epoch into the training curves).

* :class:`PlainHead` -- autoencoder: z = E(x), loss = MSE.
* :class:`GaussianHead` -- VAE: E(x) = (mu, log var), z ~ N(mu, var), loss = MSE + beta KL.
* :class:`MemoryGaussianHead` -- the VAE with a MemAE memory between the posterior and the
  decoder (see ``memory.py``), loss = MSE + beta KL + alpha entropy(addressing).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from benchbox_plugins.generators.base.backbone import Decoder, Encoder
from benchbox_plugins.generators.base.memory import MemoryModule


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, var) || N(0, I)) per sample, summed over latent dimensions."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)


class PlainHead(nn.Module):
    def __init__(self, channels: int, size: int, latent_dim: int, **backbone):
        super().__init__()
        up = backbone.pop("up", "transpose")
        self.encoder = Encoder(channels, size, latent_dim, **backbone)
        self.decoder = Decoder(channels, size, latent_dim, up=up, **backbone)

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.latent(x))

    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return F.mse_loss(self.reconstruct(x), x), {}


class GaussianHead(nn.Module):
    """Encoder outputs 2d numbers (posterior mean and log variance)."""

    def __init__(self, channels: int, size: int, latent_dim: int, beta: float, **backbone):
        super().__init__()
        self.latent_dim, self.beta = latent_dim, beta
        self.n_pixels = channels * size * size
        up = backbone.pop("up", "transpose")
        self.encoder = Encoder(channels, size, 2 * latent_dim, **backbone)
        self.decoder = Decoder(channels, size, latent_dim, up=up, **backbone)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 8.0)

    def sample(self, mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + eps * (0.5 * logvar).exp()

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        return self.posterior(x)[0]

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.latent(x))

    def elbo_terms(self, x: torch.Tensor, z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """Per-pixel MSE plus beta * KL per image spread over the pixels (one common scale)."""
        return F.mse_loss(self.decoder(z), x) + self.beta * gaussian_kl(mu, logvar).mean() / self.n_pixels

    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        mu, logvar = self.posterior(x)
        kl = gaussian_kl(mu, logvar).mean()
        return self.elbo_terms(x, self.sample(mu, logvar), mu, logvar), {"kl": kl}


class MemoryGaussianHead(GaussianHead):
    """VAE whose posterior sample is re-expressed as a sparse mix of memorised normal codes.

    The generator's latent is the memory read-out ``w^T M`` (of the posterior mean), so
    ``decode(encode(x))`` is the memory-constrained reconstruction and a policy's dz moves the
    read-out itself.
    """

    def __init__(self, channels: int, size: int, latent_dim: int, beta: float,
                 slots: int, shrink_threshold: float, temperature: float, entropy_weight: float, **backbone):
        super().__init__(channels, size, latent_dim, beta, **backbone)
        self.memory = MemoryModule(slots, latent_dim, shrink_threshold, temperature)
        self.entropy_weight = entropy_weight

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        return self.memory(self.posterior(x)[0])[0]

    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        mu, logvar = self.posterior(x)
        read, weights = self.memory(self.sample(mu, logvar))
        entropy = MemoryModule.entropy(weights).mean()
        loss = self.elbo_terms(x, read, mu, logvar) + self.entropy_weight * entropy
        return loss, {"kl": gaussian_kl(mu, logvar).mean(), "addressing_entropy": entropy,
                      "addressing_sparsity": (weights == 0).float().mean()}
