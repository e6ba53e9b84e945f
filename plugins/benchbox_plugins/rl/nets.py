"""Network pieces the value-based agents share: an MLP builder and Polyak-averaged target networks."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn


def mlp(sizes: list[int], out_act: nn.Module | None = None,
        layer: Callable[[int, int], nn.Module] = nn.Linear) -> nn.Sequential:
    """``layer(sizes[0], sizes[1])``, ReLU, ..., ``layer(sizes[-2], sizes[-1])``, then ``out_act`` if given."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(layer(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    if out_act is not None:
        layers.append(out_act)
    return nn.Sequential(*layers)


@torch.no_grad()
def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """``target <- tau * source + (1 - tau) * target`` for parameters; buffers are copied."""
    for t, s in zip(target.parameters(), source.parameters(), strict=True):
        t.mul_(1.0 - tau).add_(s, alpha=tau)
    for t, s in zip(target.buffers(), source.buffers(), strict=True):
        t.copy_(s)
