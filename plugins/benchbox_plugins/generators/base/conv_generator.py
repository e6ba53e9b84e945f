"""What the ae, vae and memvae generators share: fitting a latent head, encode/decode/reconstruct.

The encoder and decoder are the lean backbone of ``backbone.py`` (stride-2 down, transposed-conv
or pixel-shuffle up, widths shrinking as the resolution grows); ``--generator.width``,
``--generator.up``, ``--generator.channels-last`` and ``--generator.bf16`` are its options.

A concrete generator sets ``name`` and implements ``build_head(channels, size)`` returning one
of the heads in ``latent_heads``; everything else -- the training loop (``train_epochs``, with
its NaN guard), per-epoch curves of the head's extra statistics, batched inference -- is here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

import torch
from torch import nn

from benchbox.interfaces import FitContext, Generator
from benchbox.options import above, at_least
from benchbox.training import auto_epochs, batched, train_epochs
from benchbox_plugins.generators.base.backbone import check_square


USUAL_EPOCHS = 40
"""--generator.epochs 0 (auto) up to 64 px a side."""


@dataclass
class ConvGeneratorConfig:
    latent_dim: Annotated[int, at_least(1)] = 16
    """Size of the latent vector z."""
    width: Annotated[int, at_least(1)] = 32
    """Backbone width: 4 x width channels on the smallest (4 px) map, halving per 2x larger map, never
    below max(4, width / 4) -- so a 256 px image costs about 16x a 64 px one, not more."""
    base_channels: Annotated[int, at_least(0)] = 0
    """The older name of --width (0: not set); when set it is the width, and a different --width is an error."""
    up: Literal["transpose", "shuffle"] = "transpose"
    """Decoder up-step: transposed conv, or 3x3 conv + pixel shuffle (sharper, ~30 % slower on CPU, and as
    a reconstruction-error detector 0.006 lower mean image AUROC on MNIST-5k: benchmarks/results/backbone.md)."""
    channels_last: bool = False
    """Keep weights and activations in NHWC (faster convolutions on recent GPUs; same numbers up to rounding)."""
    bf16: bool = False
    """bfloat16 autocast for the convolutions when the device is CUDA; on CPU the flag does nothing (float32)."""
    epochs: Annotated[int, at_least(0)] = 0
    """Training epochs; 0 = auto: 40, and above 64 px a side at most as many as keep one fit under 2e9 pixel
    values seen (benchbox.training.auto_epochs)."""
    batch_size: Annotated[int, at_least(1)] = 64
    lr: Annotated[float, above(0)] = 2e-3


class ConvGenerator(Generator):
    """Base of the generators built on the shared conv backbone (not registered itself)."""

    name: ClassVar[str] = "conv"

    def __init__(self, config=None):
        super().__init__(config)
        c = self.config
        for opt in ("latent_dim", "width", "batch_size"):
            if getattr(c, opt) < 1:
                raise ValueError(f"{self.name}: --generator.{opt.replace('_', '-')} must be >= 1, got {getattr(c, opt)}")
        if c.epochs < 0:
            raise ValueError(f"{self.name}: --generator.epochs must be >= 0 (0: auto), got {c.epochs}")
        if c.base_channels < 0:
            raise ValueError(f"{self.name}: --generator.base-channels must be >= 0, got {c.base_channels}")
        default_width = type(c).__dataclass_fields__["width"].default
        if c.base_channels and c.width not in (default_width, c.base_channels):
            raise ValueError(f"{self.name}: --generator.base-channels {c.base_channels} and --generator.width "
                              f"{c.width} disagree; base-channels is the older name of width, set only --generator.width")
        if c.lr <= 0:
            raise ValueError(f"{self.name}: --generator.lr must be > 0, got {c.lr}")
        self.net: nn.Module | None = None
        self.device = torch.device("cpu")
        self.shape: tuple[int, int, int] | None = None

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def backbone_options(self) -> dict:
        """Keyword arguments of the backbone's Encoder/Decoder from this config (width, up, precision)."""
        c = self.config
        return {"width": c.base_channels or c.width, "up": c.up, "channels_last": c.channels_last, "bf16": c.bf16}

    def build_head(self, channels: int, size: int) -> nn.Module:
        raise NotImplementedError

    def fit(self, train: torch.Tensor, ctx: FitContext) -> None:
        channels, size = check_square(train, self.name)
        torch.manual_seed(ctx.seed)
        net = self.net = self.build_head(channels, size)
        self.device, self.shape = ctx.device, (channels, size, size)
        extras: dict[str, list[float]] = {}

        def loss_fn(x: torch.Tensor) -> torch.Tensor:
            loss, stats = net.loss(x)
            if net.training:  # validation passes do not count towards the epoch statistics
                for key, value in stats.items():
                    extras.setdefault(key, []).append(float(value.detach()))
            return loss

        def progress(done: float, total: float | None = None) -> None:
            for key, values in extras.items():  # one point per epoch for every extra statistic
                if values:
                    ctx.curves.log(f"train/{key}", done, sum(values) / len(values))
                values.clear()
            ctx.progress(done, total)

        val = ctx.val.images if ctx.val is not None and len(ctx.val) and ctx.val.labels.eq(0).all() else None
        c = self.config
        epochs = auto_epochs(c.epochs, USUAL_EPOCHS, tuple(train.shape), ctx)
        train_epochs(net, train, loss_fn, dataclasses.replace(ctx, progress=progress), epochs=epochs,
                     batch_size=c.batch_size, lr=c.lr, val=val, name="loss")

    def _net(self) -> nn.Module:
        if self.net is None:
            raise RuntimeError(f"{self.name}: call fit() before encode()/decode()")
        return self.net.eval()

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return batched(self._net().latent, images, self.device)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return batched(self._net().decoder, latents, self.device)

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """The model's reconstruction of ``images`` (CPU, same shape), e.g. for error scores."""
        return batched(self._net().reconstruct, images, self.device)
