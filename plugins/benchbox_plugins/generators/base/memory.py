"""The memory module of MemAE (Gong et al., ICCV 2019), for latent vectors.

``N`` learnable slots ``M`` (N x d). A query z is addressed by cosine similarity to every slot,
turned into weights with a softmax (divided by ``temperature``; MemAE uses 1), then hard
shrinkage zeroes every weight below ``threshold`` -- written, as in the paper, in the
continuous form ``relu(w - t) * w / (|w - t| + eps)`` so it stays differentiable -- and the
survivors are renormalised to sum to one. The read-out is ``w^T M``. Only a few memorised
normal codes can thus be combined, which is what pulls reconstructions of unfamiliar inputs
towards normal data. Training adds the entropy of ``w`` to the loss, pushing towards sparse
addressing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def hard_shrink(weights: torch.Tensor, threshold: float, eps: float = 1e-12) -> torch.Tensor:
    """Zero every weight below ``threshold`` and renormalise each row to sum to one."""
    if threshold <= 0:
        return weights
    shrunk = F.relu(weights - threshold) * weights / ((weights - threshold).abs() + eps)
    return shrunk / shrunk.sum(-1, keepdim=True).clamp(min=eps)


class MemoryModule(nn.Module):
    def __init__(self, slots: int, dim: int, threshold: float, temperature: float = 1.0):
        super().__init__()
        if slots < 1:
            raise ValueError(f"memory: the number of slots must be >= 1, got {slots}")
        if not 0.0 <= threshold < 1.0:
            raise ValueError(f"memory: the shrinkage threshold must be in [0, 1), got {threshold}")
        if temperature <= 0:
            raise ValueError(f"memory: the addressing temperature must be > 0, got {temperature}")
        self.slots = nn.Parameter(torch.randn(slots, dim) / dim**0.5)
        self.threshold, self.temperature = threshold, temperature

    def address(self, z: torch.Tensor) -> torch.Tensor:
        """N x slots addressing weights (rows sum to one, sparse after shrinkage)."""
        sim = F.normalize(z, dim=1) @ F.normalize(self.slots, dim=1).t()
        weights = torch.softmax(sim / self.temperature, dim=1)
        return hard_shrink(weights, self.threshold)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weights = self.address(z)
        return weights @ self.slots, weights

    @staticmethod
    def entropy(weights: torch.Tensor) -> torch.Tensor:
        """Entropy of each row of addressing weights (0 * log 0 counts as 0)."""
        return -(weights * weights.clamp(min=1e-12).log()).sum(-1)
