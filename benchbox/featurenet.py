"""The network of benchbox's fixed in-domain feature extractor (FID, PRDC; see :mod:`benchbox.features`).

A small convolutional autoencoder, frozen here on purpose: its features are what generation
metrics are computed on, so it must not change when a generator plugin's backbone does. The
encoder halves the resolution with stride-2 conv + BatchNorm + LeakyReLU blocks (widths
``base, 2 base, ...`` up to 256) until at most 4 px, then a linear layer gives the
``dim``-dimensional feature; the decoder retraces the same sizes (28 -> 14 -> 7 -> 4 -> ... -> 28)
with nearest upsampling and ends in a sigmoid. Parameter names and creation order are those of
the extractor the cached feature files and published FID numbers were made with.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _sizes(size: int) -> list[int]:
    """28 -> [28, 14, 7, 4]: each stage halves (rounding up) until at most 4 px."""
    sizes = [size]
    while sizes[-1] > 4:
        sizes.append((sizes[-1] + 1) // 2)
    return sizes


def _unit(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, inplace=True))


class _Encoder(nn.Module):
    def __init__(self, channels: int, sizes: list[int], widths: list[int], dim: int):
        super().__init__()
        if len(sizes) > 1:
            units = [_unit(c_in, c_out, 2) for c_in, c_out in zip([channels, *widths], widths)]
        else:  # already 4 px: one stride-1 unit
            units = [_unit(channels, widths[0], 1)]
        self.features = nn.Sequential(*units)
        self.head = nn.Linear(widths[-1] * sizes[-1] ** 2, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


class _Decoder(nn.Module):
    def __init__(self, channels: int, sizes: list[int], widths: list[int], dim: int):
        super().__init__()
        deep = widths[::-1] + [widths[0]] * len(sizes)  # deepest first; the shallowest width repeats
        self.sizes = sizes
        self.fc = nn.Linear(dim, deep[0] * sizes[-1] ** 2)
        self.blocks = nn.ModuleList(_unit(deep[i], deep[i + 1], 1) for i in range(len(sizes) - 1))
        self.out = nn.Conv2d(deep[len(sizes) - 1], channels, 3, 1, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        s = self.sizes[-1]
        h = F.leaky_relu(self.fc(z), 0.2).view(len(z), -1, s, s)
        for block, size in zip(self.blocks, reversed(self.sizes[:-1])):
            h = block(F.interpolate(h, size=(size, size), mode="nearest"))
        return torch.sigmoid(self.out(h))


class FeatureNet(nn.Module):
    """``encoder``: ``N x C x S x S`` images -> ``N x dim`` features; ``forward``: their reconstruction."""

    def __init__(self, channels: int, size: int, dim: int, base: int):
        super().__init__()
        if size < 4:
            raise ValueError(f"features: image size {size} is below the 4 px minimum")
        sizes = _sizes(size)
        widths = [min(base * 2**i, 256) for i in range(max(1, len(sizes) - 1))]
        self.encoder = _Encoder(channels, sizes, widths, dim)
        self.decoder = _Decoder(channels, sizes, widths, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))
