"""PNG figures written into a run folder (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _tile(images: torch.Tensor) -> np.ndarray:
    """N x C x H x W in [0, 1] -> H x (N*W) x 3 uint8 strip with 1 px gaps."""
    x = images.detach().float().clamp(0, 1).cpu()
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    x = torch.nn.functional.pad(x, (1, 1, 1, 1), value=1.0)
    return (x.permute(2, 0, 3, 1).reshape(x.shape[2], -1, 3).numpy() * 255).astype(np.uint8)


def save_sample_grid(path: Path, rows: dict[str, torch.Tensor]) -> None:
    """One labelled row per entry (e.g. originals / decode(z) / decode(z + dz))."""
    plt = _plt()
    rows = {k: v for k, v in rows.items() if v is not None and len(v)}
    fig, axes = plt.subplots(len(rows), 1, figsize=(12, 1.6 * len(rows) + 0.3), squeeze=False)
    for ax, (label, imgs) in zip(axes[:, 0], rows.items()):
        ax.imshow(_tile(imgs), interpolation="nearest")
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _panels(curves: dict[str, dict[str, list[list[float]]]]) -> list[tuple[str, dict[str, list[list[float]]], bool]]:
    """(title, series, scaled) per panel. A stage with many series (an RL policy's diagnostics) is
    split into its returns/rewards and its other diagnostics, the latter scaled to max |value| = 1
    so that one large series (entropy) does not flatten the rest."""
    panels = []
    for stage, series in curves.items():
        if not series:
            continue
        if len(series) <= 5:
            panels.append((stage, series, False))
            continue
        rewards = {k: v for k, v in series.items() if "reward" in k or "return" in k}
        other = {k: v for k, v in series.items() if k not in rewards}
        if rewards:
            panels.append((f"{stage}: returns and rewards", rewards, False))
        if other:
            panels.append((f"{stage}: diagnostics (each scaled to max |value| = 1)", other, True))
    return panels or [("(no training curves)", {}, False)]


def save_curves(path: Path, curves: dict[str, dict[str, list[list[float]]]]) -> None:
    """One panel per stage with all its series (train/val losses, rewards, ...)."""
    plt = _plt()
    panels = _panels(curves)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.4), squeeze=False)
    for ax, (title, series, scaled) in zip(axes[0], panels):
        for name, points in series.items():
            xs, ys = zip(*points)
            if scaled:
                peak = max(abs(y) for y in ys) or 1.0
                ys = tuple(y / peak for y in ys)
            if len(points) == 1:
                ax.scatter(xs, ys, label=name, s=12)
            else:
                ax.plot(xs, ys, label=name)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch / update")
        if series:
            ax.legend(fontsize=7)
            values = [p[1] for pts in series.values() for p in pts]
            if not scaled and min(values) > 0 and max(values) / max(min(values), 1e-12) > 50:
                ax.set_yscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
