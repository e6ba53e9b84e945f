"""Small training helpers every network plugin shares: the epoch loop and batched inference."""

from __future__ import annotations

import math
import time
from typing import Callable

import torch
from torch import nn

from .errors import TrainingDiverged
from .interfaces import FitContext

ESTIMATE_AFTER_S = 120.0
"""A training loop that will run longer than this says so before it gets going (``ctx.note``)."""
ESTIMATE_PROBE_S = 2.0
"""How long the first epoch is timed before the estimate (or the whole first epoch, if shorter)."""
AUTO_EPOCHS_SIDE = 64
"""``epochs 0`` (auto) is a plugin's usual number of epochs for images up to this many pixels a side ..."""
AUTO_EPOCHS_VALUES = 2_000_000_000
"""... and above it, at most as many epochs as keep one fit under this many pixel values seen
(images x epochs x C x H x W): about a minute of a 256 px fit on 2 CPU cores, whatever the set's size."""


def duration_text(seconds: float) -> str:
    """``95`` -> ``'1 min 35 s'``; ``3700`` -> ``'1 h 2 min'``."""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


def auto_epochs(epochs: int, usual: int, images: tuple[int, ...], ctx: FitContext | None = None,
                field: str = "epochs") -> int:
    """The epochs a fit runs: ``epochs`` when it is >= 1, and for 0 (auto) the budget that follows the data.

    ``images`` is the training set's shape (N x C x H x W). Up to ``AUTO_EPOCHS_SIDE`` px a side auto is
    ``usual`` (so every small-image default keeps its numbers); above it, ``usual`` capped so the fit sees
    at most ``AUTO_EPOCHS_VALUES`` pixel values, never below one epoch. A capped budget is noted
    on ``ctx`` (naming ``--<kind>.<field>``, the kind from ``ctx.stage``) and logged as its ``auto_<field>`` curve.
    """
    if epochs >= 1:
        return epochs
    n, values = images[0], math.prod(images[1:])
    if max(images[2:]) <= AUTO_EPOCHS_SIDE or n * values * usual <= AUTO_EPOCHS_VALUES:
        return usual
    chosen = max(1, AUTO_EPOCHS_VALUES // (n * values))
    if ctx is not None:
        kind = (ctx.stage or "").split()[-1:] or ["plugin"]
        option = f"--{kind[0]}.{field.replace('_', '-')}"
        ctx.curves.log(f"auto_{field}", 0, chosen)
        ctx.note(f"{option} 0 (auto): {chosen} epochs, not {usual}, for {n} images of "
                 f"{'x'.join(map(str, images[1:]))} (at most {AUTO_EPOCHS_VALUES:.1e} pixel values seen; "
                 f"set {option} to choose)")
    return chosen


class Estimate:
    """Times the first work of a loop and, when the whole loop will take longer than
    ``ESTIMATE_AFTER_S``, notes one line: ``images x epochs at the measured images/s: about T``."""

    def __init__(self, ctx: FitContext, total: float, what: str, unit: str = "images"):
        self.ctx, self.total, self.what, self.unit = ctx, total, what, unit
        self.t0, self.done, self.said = time.perf_counter(), 0.0, False

    def step(self, n: float, end_of_probe: bool = False) -> None:
        if self.said:
            return
        self.done += n
        elapsed = time.perf_counter() - self.t0
        if (elapsed < ESTIMATE_PROBE_S and not end_of_probe) or self.done <= 0 or elapsed <= 0:
            return
        self.said = True
        rate = self.done / elapsed
        seconds = self.total / rate
        if seconds > ESTIMATE_AFTER_S:
            self.ctx.note(f"{self.what} at {rate:.1f} {self.unit}/s (measured on the first {self.done:.0f}): "
                          f"about {duration_text(seconds)}")


def train_epochs(
    model: nn.Module,
    data: torch.Tensor,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    ctx: FitContext,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float = 0.0,
    val: torch.Tensor | None = None,
    name: str = "loss",
) -> None:
    """Adam over shuffled mini-batches of ``data`` (CPU tensor, moved batch by batch).

    ``loss_fn(batch_on_device)`` returns a scalar. Logs ``train/<name>`` (and ``val/<name>``
    when ``val`` is given) per epoch into ``ctx.curves``, advances ``ctx.progress`` per epoch and
    counts every batch's images into ``ctx.processed`` (the images/s of the progress lines).
    A non-finite loss, or weights that became non-finite (checked after every epoch, so the last
    optimiser step of a run is covered too), stops training with :class:`TrainingDiverged` naming
    the stage and the last finite loss.
    """
    if len(data) == 0:
        raise ValueError(f"{ctx.stage or 'training'}: no training images")
    model.to(ctx.device)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    gen = ctx.generator(offset=17)
    last_finite: float | None = None
    bs = max(1, min(batch_size, len(data)))
    estimate = Estimate(ctx, len(data) * epochs, f"{len(data)} images x {epochs} epochs")
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(data), generator=gen)
        total, count = 0.0, 0
        for start in range(0, len(data), bs):
            batch = data[order[start : start + bs]].to(ctx.device, non_blocking=True)
            loss = loss_fn(batch)
            value = float(loss.detach())
            if not math.isfinite(value):
                _diverged(ctx, f"loss became {value} in epoch {epoch + 1}", last_finite)
            last_finite = value
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += value * len(batch)
            count += len(batch)
            ctx.processed(len(batch), "images")
            estimate.step(len(batch), end_of_probe=start + bs >= len(data))
        bad = _non_finite_parameter(model)
        if bad is not None:
            _diverged(ctx, f"weights became non-finite ({bad}) in epoch {epoch + 1}", last_finite)
        ctx.curves.log(f"train/{name}", epoch + 1, total / count)
        if val is not None and len(val):
            val_loss = evaluate_loss(model, val, loss_fn, ctx.device, bs)
            if not math.isfinite(val_loss):
                _diverged(ctx, f"validation loss became {val_loss} after epoch {epoch + 1}", last_finite)
            ctx.curves.log(f"val/{name}", epoch + 1, val_loss)
        elif epoch == epochs - 1:  # the last step is checked by no later loss: probe the trained model once
            with torch.random.fork_rng(devices=_rng_devices(ctx.device)):  # leaves the random streams alone
                probe = evaluate_loss(model, data[:bs], loss_fn, ctx.device, bs)
            if not math.isfinite(probe):
                _diverged(ctx, f"loss of the trained model became {probe} after the last step", last_finite)
        ctx.progress(epoch + 1, epochs)
    model.eval()


def _diverged(ctx: FitContext, what: str, last_finite: float | None) -> None:
    raise TrainingDiverged(
        f"{ctx.stage or 'training'}: {what}; last finite loss {last_finite if last_finite is not None else 'none'}"
        " -- lower the learning rate or check the input data"
    )


def _rng_devices(device: torch.device) -> list[int]:
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


@torch.no_grad()
def _non_finite_parameter(model: nn.Module) -> str | None:
    """Name of the first parameter holding NaN or inf, else ``None``."""
    for name, p in model.named_parameters():
        if not bool(torch.isfinite(p).all()):
            return name
    return None


@torch.no_grad()
def evaluate_loss(
    model: nn.Module, data: torch.Tensor, loss_fn: Callable[[torch.Tensor], torch.Tensor], device: torch.device, bs: int
) -> float:
    model.eval()
    total = 0.0
    for start in range(0, len(data), bs):
        batch = data[start : start + bs].to(device)
        total += float(loss_fn(batch)) * len(batch)
    return total / len(data)


@torch.no_grad()
def batched(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, device: torch.device, batch_size: int = 512) -> torch.Tensor:
    """Apply ``fn`` to ``x`` in batches on ``device``; returns a tensor on ``x``'s device: CPU in, CPU out,
    and a tensor already on ``device`` never leaves it (the latent environment steps on the GPU)."""
    if len(x) == 0:
        return fn(x.to(device)).to(x.device)
    out = [fn(x[i : i + batch_size].to(device)).float().to(x.device) for i in range(0, len(x), batch_size)]
    return torch.cat(out)
