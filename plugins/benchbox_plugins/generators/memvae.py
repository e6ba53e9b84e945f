"""Memory-augmented VAE generator (MemAE-style memory between the posterior and the decoder)."""

from __future__ import annotations

from dataclasses import dataclass

from benchbox_plugins.generators.base.latent_heads import MemoryGaussianHead
from benchbox_plugins.generators.base.conv_generator import ConvGenerator
from benchbox_plugins.generators.vae import BetaConfig, check_beta


@dataclass
class MemVAEConfig(BetaConfig):
    slots: int = 100
    """Number of memory slots N."""
    shrink_threshold: float = 0.02
    """Hard-shrinkage threshold on the addressing weights (MemAE suggests 1/N .. 3/N)."""
    temperature: float = 0.1
    """Softmax temperature of the cosine-similarity addressing (MemAE: 1)."""
    entropy_weight: float = 0.0002
    """Weight of the addressing-entropy loss (MemAE: 0.0002)."""


class MemVAE(ConvGenerator):
    """VAE with a MemAE memory (cosine addressing, hard shrinkage, entropy loss); latent = memory read-out."""

    name = "memvae"

    @dataclass
    class Config(MemVAEConfig):
        pass

    def __init__(self, config=None):
        super().__init__(config)
        c = self.config
        check_beta(self.name, c.beta)
        if c.slots < 1:
            raise ValueError(f"{self.name}: --generator.slots must be >= 1, got {c.slots}")
        if not 0.0 <= c.shrink_threshold < 1.0:
            raise ValueError(f"{self.name}: --generator.shrink-threshold must be in [0, 1), got {c.shrink_threshold}")
        if c.temperature <= 0:
            raise ValueError(f"{self.name}: --generator.temperature must be > 0, got {c.temperature}")

    def build_head(self, channels: int, size: int) -> MemoryGaussianHead:
        c = self.config
        return MemoryGaussianHead(channels, size, c.latent_dim, c.beta, c.slots, c.shrink_threshold,
                                  c.temperature, c.entropy_weight, **self.backbone_options)
