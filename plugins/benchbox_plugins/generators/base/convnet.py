"""One convolutional encoder/decoder backbone for 8..256 px and 1 or 3 channels.

The encoder halves the resolution with stride-2 convolutions until it is at most 4 px; the
decoder retraces the exact same sizes (so odd sizes such as 28 -> 14 -> 7 -> 4 round-trip) and
ends in a sigmoid, giving images in [0, 1]. Generators (AE, and VAE-style heads) are thin layers
on these two modules.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


def stage_sizes(size: int) -> list[int]:
    """Spatial sizes from the input down to <= 4 px: 28 -> [28, 14, 7, 4]; 256 -> [256, ..., 4]."""
    if size < 4:
        raise ValueError(f"image size {size} is below the 4 px minimum")
    sizes = [size]
    while sizes[-1] > 4:
        sizes.append((sizes[-1] + 1) // 2)
    return sizes


def stage_channels(n_stages: int, base: int, cap: int = 256) -> list[int]:
    return [min(base * 2**i, cap) for i in range(n_stages)]


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, inplace=True))


class ConvEncoder(nn.Module):
    """``N x C x S x S`` images -> ``N x out_dim`` vectors."""

    def __init__(self, channels: int, size: int, out_dim: int, base: int = 32):
        super().__init__()
        self.sizes = stage_sizes(size)
        chans = stage_channels(max(1, len(self.sizes) - 1), base)
        layers, c_in = [], channels
        for c in chans[: len(self.sizes) - 1]:
            layers.append(_block(c_in, c, 2))
            c_in = c
        if not layers:  # already 4 px: one stride-1 block
            layers.append(_block(c_in, chans[0], 1))
            c_in = chans[0]
        self.features = nn.Sequential(*layers)
        self.flat = c_in * self.sizes[-1] ** 2
        self.head = nn.Linear(self.flat, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


class ConvDecoder(nn.Module):
    """``N x latent_dim`` vectors -> ``N x C x S x S`` images in [0, 1]."""

    def __init__(self, channels: int, size: int, latent_dim: int, base: int = 32):
        super().__init__()
        self.sizes = stage_sizes(size)
        n = max(1, len(self.sizes) - 1)
        chans = stage_channels(n, base)[::-1]  # deepest first
        self.c0 = chans[0]
        self.fc = nn.Linear(latent_dim, self.c0 * self.sizes[-1] ** 2)
        self.blocks = nn.ModuleList()
        c_in = self.c0
        for i in range(len(self.sizes) - 1):
            c_out = chans[min(i + 1, len(chans) - 1)]
            self.blocks.append(_block(c_in, c_out, 1))
            c_in = c_out
        self.out = nn.Conv2d(c_in, channels, 3, 1, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        s = self.sizes[-1]
        h = F.leaky_relu(self.fc(z), 0.2).view(-1, self.c0, s, s)
        for block, size in zip(self.blocks, reversed(self.sizes[:-1])):
            h = block(F.interpolate(h, size=(size, size), mode="nearest"))
        return torch.sigmoid(self.out(h))


class ConvAutoEncoder(nn.Module):
    def __init__(self, channels: int, size: int, latent_dim: int, base: int = 32):
        super().__init__()
        self.encoder = ConvEncoder(channels, size, latent_dim, base)
        self.decoder = ConvDecoder(channels, size, latent_dim, base)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def check_square(images: torch.Tensor, where: str) -> tuple[int, int]:
    """(channels, size) of an ``N x C x S x S`` batch, or a clear error."""
    if images.ndim != 4 or images.shape[-1] != images.shape[-2] or images.shape[1] not in (1, 3):
        raise ValueError(f"{where}: expected N x C x S x S images with C in (1, 3), got shape {tuple(images.shape)}")
    if not 8 <= images.shape[-1] <= 256:
        raise ValueError(f"{where}: image size {images.shape[-1]} px is outside the supported 8..256 px")
    return int(images.shape[1]), int(images.shape[-1])
