"""Procedurally drawn shapes under the one-class protocol (nothing to download).

A fixed pool of ``per_shape`` noisy images of each shape (circle, square, triangle; random
position, size, rotation and brightness) is drawn from ``data_seed``. The ``normal_shape`` is
normal, the other two are anomalous. ``load(seed)`` shuffles the normal images with ``seed``:
``test_fraction`` of them go to test (with every anomalous image), ``val_fraction`` of the rest
to validation, the remainder to train.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from benchbox.errors import ConfigError
from benchbox.interfaces import Dataset, LabeledImages, Splits

SHAPES = ("circle", "square", "triangle")


def draw_shapes(shape: str, n: int, size: int, noise: float, gen: torch.Generator) -> torch.Tensor:
    """``n x 1 x size x size`` float32 images in [0, 1] of one shape, soft-edged, with pixel noise."""
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    py, px = torch.meshgrid(coords, coords, indexing="ij")  # H x W
    center = 0.38 + 0.24 * torch.rand(n, 2, generator=gen)
    radius = 0.2 + 0.1 * torch.rand(n, generator=gen)
    angle = 2 * math.pi * torch.rand(n, generator=gen)
    bright = 0.6 + 0.4 * torch.rand(n, generator=gen)
    dy = py[None] - center[:, 0, None, None]  # N x H x W
    dx = px[None] - center[:, 1, None, None]
    r = radius[:, None, None]
    if shape == "circle":
        sd = torch.sqrt(dx**2 + dy**2) - r
    elif shape == "square":
        cos, sin = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
        u, v = cos * dx + sin * dy, -sin * dx + cos * dy
        sd = torch.maximum(u.abs(), v.abs()) - 0.8 * r
    elif shape == "triangle":  # equilateral: the farthest of three edge half-planes
        edges = [angle + 2 * math.pi * k / 3 for k in range(3)]
        sd = torch.stack([torch.cos(a)[:, None, None] * dx + torch.sin(a)[:, None, None] * dy for a in edges]).amax(0)
        sd = sd - 0.55 * r
    else:
        raise ConfigError(f"example-shapes: unknown shape {shape!r}; expected one of {', '.join(SHAPES)}")
    ink = torch.sigmoid(-sd * size * 2.0) * bright[:, None, None]
    ink = ink + noise * torch.randn(ink.shape, generator=gen)
    return ink.clamp(0.0, 1.0).unsqueeze(1).contiguous()


class Shapes(Dataset):
    """Procedural shapes (circle / square / triangle), one normal: a download-free example dataset."""

    @dataclass
    class Config:
        normal_shape: Literal["circle", "square", "triangle"] = "circle"
        """Shape treated as normal; the other two are the anomalies."""
        size: int = 16
        """Image side in pixels."""
        per_shape: int = 120
        """Images drawn per shape (the pool the splits are cut from)."""
        val_fraction: float = 0.1
        """Share of the training normals held out for validation."""
        test_fraction: float = 0.3
        """Share of the normals held out for test (together with every anomalous image)."""
        noise: float = 0.05
        """Standard deviation of the Gaussian pixel noise."""
        data_seed: int = 0
        """Seed of the drawn pool (the run seed only shuffles the splits)."""

    def __init__(self, config: Config | None = None):
        super().__init__(config)
        c = self.config
        if c.normal_shape not in SHAPES:
            raise ConfigError(f"example-shapes: --dataset.normal-shape must be one of {', '.join(SHAPES)}, "
                              f"got {c.normal_shape!r}")
        if not 8 <= c.size <= 256:
            raise ConfigError(f"example-shapes: --dataset.size must be in [8, 256], got {c.size}")
        if c.per_shape < 10:
            raise ConfigError(f"example-shapes: --dataset.per-shape must be >= 10, got {c.per_shape}")
        if not 0.0 <= c.val_fraction < 0.5 or not 0.0 < c.test_fraction < 0.5:
            raise ConfigError("example-shapes: --dataset.val-fraction must be in [0, 0.5) and "
                              f"--dataset.test-fraction in (0, 0.5), got {c.val_fraction} and {c.test_fraction}")
        if c.noise < 0:
            raise ConfigError(f"example-shapes: --dataset.noise must be >= 0, got {c.noise}")

    def load(self, seed: int) -> Splits:
        c = self.config
        gen = torch.Generator().manual_seed(c.data_seed)
        pool = {shape: draw_shapes(shape, c.per_shape, c.size, c.noise, gen) for shape in SHAPES}
        normals = pool[c.normal_shape][torch.randperm(c.per_shape, generator=torch.Generator().manual_seed(seed))]
        n_test = max(1, round(c.test_fraction * c.per_shape))
        n_val = round(c.val_fraction * (c.per_shape - n_test))
        test_normal, val, train = normals[:n_test], normals[n_test : n_test + n_val], normals[n_test + n_val :]
        anomalies = torch.cat([pool[s] for s in SHAPES if s != c.normal_shape])
        test = torch.cat([test_normal, anomalies])
        labels = torch.cat([torch.zeros(len(test_normal)), torch.ones(len(anomalies))]).long()
        return Splits(
            train=train,
            val=LabeledImages(val, torch.zeros(len(val), dtype=torch.int64)),
            test=LabeledImages(test, labels),
            name="example-shapes",
            category=c.normal_shape,
            info={"n_train": len(train), "n_val": len(val), "n_test": len(test), "n_test_anomalous": len(anomalies)},
        )
