"""The lean convolutional encoder/decoder the conv generators share, 8..256 px, 1 or 3 channels.

Shape of the network (``stage_sizes``: the input size halved, rounded up, until it is at most
4 px, so 28 -> 14 -> 7 -> 4 and 256 -> 128 -> ... -> 4; the decoder retraces the exact sizes):

* **encoder** -- one stride-2 3x3 convolution (+ batch norm + leaky ReLU) per size step, then a
  linear layer from the smallest map to ``out_dim`` numbers.
* **decoder** -- a linear layer to the smallest map, then one 2x up-step per size step: a
  transposed convolution (kernel 4, or 3 where the next size is odd, so sizes come back exactly;
  ``up="transpose"``, the default) or a 3x3 convolution to 4x the channels and a pixel shuffle
  cropped to the size (``up="shuffle"``: sharper reconstructions and about 30 % slower on CPU;
  as a reconstruction-error detector it also reconstructs anomalies better, which costs the
  ``ae`` detector 0.009 mean image AUROC on MNIST-5k -- ``benchmarks/results/backbone.md``).
  The last step writes the image channels directly and ends in a sigmoid, giving images in
  [0, 1]. No convolution runs on the full-size map.
* **widths** (``stage_widths``) shrink as the resolution grows: the smallest map has
  ``4 * width`` channels and every 2x larger map half as many, down to ``max(4, width // 4)``.
  28 px with ``width=32``: 128 @ 4 px, 64 @ 7 px, 32 @ 14 px; 256 px: 128 @ 4 px ... 8 @ 64 px
  and 8 @ 128 px. The cost per image therefore grows about linearly with the pixel count instead
  of with pixels x channels. ``depth`` > 1 adds stride-1 3x3 blocks at every size (tried: slower
  and no better at the default budget).

``channels_last=True`` keeps weights and activations in NHWC (faster convolutions on recent
GPUs); ``bf16=True`` runs the convolutions under bfloat16 autocast when the input is on CUDA
(the CPU path stays float32, so CPU numbers do not depend on the flag). Both return float32.
"""

from __future__ import annotations

import contextlib
from typing import Literal

import torch
from torch import nn
import torch.nn.functional as F

UP_MODES = ("transpose", "shuffle")
MIN_SIZE, MAX_SIZE = 8, 256


def stage_sizes(size: int) -> list[int]:
    """Spatial sizes from the input down to <= 4 px: 28 -> [28, 14, 7, 4]; 256 -> [256, ..., 4]."""
    if size < 4:
        raise ValueError(f"image size {size} is below the 4 px minimum")
    sizes = [size]
    while sizes[-1] > 4:
        sizes.append((sizes[-1] + 1) // 2)
    return sizes


def stage_widths(n_maps: int, width: int) -> list[int]:
    """Channels of ``n_maps`` feature maps, largest map first: ``4 * width`` on the smallest map,
    halving per 2x larger map, never below ``max(4, width // 4)``.

    >>> stage_widths(3, 32)   # 28 px: maps at 14, 7, 4 px
    [32, 64, 128]
    """
    floor = max(4, width // 4)
    return [max(floor, (4 * width) >> (n_maps - 1 - i)) for i in range(n_maps)]


def _norm_act(c: int) -> list[nn.Module]:
    return [nn.BatchNorm2d(c), nn.LeakyReLU(0.2, inplace=True)]


def _same_size(c: int, n: int) -> list[nn.Module]:
    """``n`` extra stride-1 3x3 conv blocks at one size (``depth`` > 1)."""
    return [m for _ in range(n) for m in (nn.Conv2d(c, c, 3, 1, 1), *_norm_act(c))]


class _Precision(nn.Module):
    """channels_last and CUDA bf16 autocast around a module's ``_forward`` (float32 out)."""

    def _setup(self, channels_last: bool, bf16: bool) -> None:
        self.channels_last, self.bf16 = channels_last, bf16
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def _context(self, x: torch.Tensor):
        if self.bf16 and x.is_cuda:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()


class Encoder(_Precision):
    """``N x C x S x S`` images -> ``N x out_dim`` vectors."""

    def __init__(self, channels: int, size: int, out_dim: int, width: int = 32, *, depth: int = 1,
                 channels_last: bool = False, bf16: bool = False):
        super().__init__()
        self.sizes = stage_sizes(size)
        n = max(1, len(self.sizes) - 1)
        widths = stage_widths(n, width)
        layers: list[nn.Module] = []
        c_in = channels
        stride = 2 if len(self.sizes) > 1 else 1  # an input of <= 4 px gets one stride-1 stage
        for c in widths:
            layers += [nn.Conv2d(c_in, c, 3, stride, 1), *_norm_act(c), *_same_size(c, depth - 1)]
            c_in = c
        self.features = nn.Sequential(*layers)
        self.flat = c_in * self.sizes[-1] ** 2
        self.head = nn.Linear(self.flat, out_dim)
        self._setup(channels_last, bf16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with self._context(x):
            h = self.features(x)
        return self.head(h.float().flatten(1))


class _ShuffleUp(nn.Module):
    """3x3 conv to 4x the channels at the small size, pixel shuffle to 2x, crop to ``size``."""

    def __init__(self, c_in: int, c_out: int, size: int):
        super().__init__()
        self.size = size
        self.conv = nn.Conv2d(c_in, 4 * c_out, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.conv(x), 2)[..., : self.size, : self.size]


def up_step(c_in: int, c_out: int, size: int, up: str) -> nn.Module:
    """One 2x up-step from ``ceil(size / 2)`` px to exactly ``size`` px."""
    if up == "transpose":  # kernel 4: 2s; kernel 3: 2s - 1 (odd sizes such as 7 and 4 -> 7)
        return nn.ConvTranspose2d(c_in, c_out, 4 if size % 2 == 0 else 3, 2, 1)
    if up == "shuffle":
        return _ShuffleUp(c_in, c_out, size)
    raise ValueError(f"backbone: unknown up mode {up!r}; expected one of {', '.join(UP_MODES)}")


class Decoder(_Precision):
    """``N x latent_dim`` vectors -> ``N x C x S x S`` images in [0, 1]."""

    def __init__(self, channels: int, size: int, latent_dim: int, width: int = 32, *,
                 up: Literal["transpose", "shuffle"] = "transpose", depth: int = 1, channels_last: bool = False,
                 bf16: bool = False):
        super().__init__()
        self.sizes = stage_sizes(size)
        n = len(self.sizes) - 1
        widths = stage_widths(max(1, n), width)  # largest map first
        self.c0, self.s0 = widths[-1], self.sizes[-1]
        self.fc = nn.Linear(latent_dim, self.c0 * self.s0**2)
        layers: list[nn.Module] = [*_norm_act(self.c0), *_same_size(self.c0, depth - 1)]
        c_in = self.c0
        for i in range(n):  # up to sizes[n - 1 - i]; the last step writes the image channels
            target = self.sizes[n - 1 - i]
            last = i == n - 1
            c_out = channels if last else widths[n - 2 - i]
            layers.append(up_step(c_in, c_out, target, up))
            if not last:
                layers += [*_norm_act(c_out), *_same_size(c_out, depth - 1)]
            c_in = c_out
        if n == 0:  # an image of <= 4 px: one 3x3 conv to the image channels
            layers.append(nn.Conv2d(c_in, channels, 3, 1, 1))
        self.body = nn.Sequential(*layers)
        self._setup(channels_last, bf16)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(-1, self.c0, self.s0, self.s0)
        if self.channels_last:
            h = h.contiguous(memory_format=torch.channels_last)
        with self._context(h):
            h = self.body(h)
        return torch.sigmoid(h.float()).contiguous()


class AutoEncoder(nn.Module):
    """Encoder + decoder with the same sizes and width (a plain autoencoder)."""

    def __init__(self, channels: int, size: int, latent_dim: int, width: int = 32, **kw):
        super().__init__()
        up = kw.pop("up", "transpose")
        self.encoder = Encoder(channels, size, latent_dim, width, **kw)
        self.decoder = Decoder(channels, size, latent_dim, width, up=up, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def check_square(images: torch.Tensor, where: str) -> tuple[int, int]:
    """(channels, size) of an ``N x C x S x S`` batch, or a clear error."""
    if images.ndim != 4 or images.shape[-1] != images.shape[-2] or images.shape[1] not in (1, 3):
        raise ValueError(f"{where}: expected N x C x S x S images with C in (1, 3), got shape {tuple(images.shape)}")
    if not MIN_SIZE <= images.shape[-1] <= MAX_SIZE:
        raise ValueError(f"{where}: image size {images.shape[-1]} px is outside the supported {MIN_SIZE}..{MAX_SIZE} px")
    return int(images.shape[1]), int(images.shape[-1])
