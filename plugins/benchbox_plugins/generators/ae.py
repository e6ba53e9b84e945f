"""Convolutional AutoEncoder generator: z = E(x), x' = D(z)."""

from __future__ import annotations

from dataclasses import dataclass

from benchbox_plugins.generators.base.conv_generator import ConvGenerator, ConvGeneratorConfig
from benchbox_plugins.generators.base.latent_heads import PlainHead


class AutoEncoder(ConvGenerator):
    """Convolutional AutoEncoder (MSE), any size 8..256 px, 1 or 3 channels."""

    name = "ae"

    @dataclass
    class Config(ConvGeneratorConfig):
        pass

    def build_head(self, channels: int, size: int) -> PlainHead:
        return PlainHead(channels, size, self.config.latent_dim, **self.backbone_options)
