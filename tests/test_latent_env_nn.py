"""The latent env's nearest-neighbour distance is torch.cdist's, bit for bit (it rebuilds cdist's product form)."""

from __future__ import annotations

import math

import pytest
import torch

from benchbox_plugins.rl.latent_env import LatentCore


class Codec:
    """A fixed linear decoder / encoder pair (the distance does not use it; the core's set-up does)."""

    def __init__(self, d: int):
        self.w = torch.randn(d, 12, generator=torch.Generator().manual_seed(d))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(z @ self.w)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.w.T


def _cdist_reference(core: LatentCore, z: torch.Tensor, exclude_self: bool) -> torch.Tensor:
    """What nn_distance computed before: torch.cdist of the normalised rows in blocks of ``core.nn_chunk``
    (a block's size can change the product's rounding, so the blocks are the same), min over the training set."""
    q, out = (z - core.mu) / core.sigma, []
    for start in range(0, len(q), core.nn_chunk):
        dist = torch.cdist(q[start : start + core.nn_chunk], core.zn)
        if exclude_self:
            rows = torch.arange(dist.shape[0])
            dist[rows, rows + start] = float("inf")
        out.append(dist.min(1).values)
    return torch.cat(out) / math.sqrt(core.d)


@pytest.mark.parametrize("m", [12, 26, 300])  # 12: cdist's direct form; 26, 300: its matrix-product form
def test_nn_distance_is_cdist_bit_for_bit(m):
    g = torch.Generator().manual_seed(m)
    latents = torch.randn(m, 7, generator=g) * torch.linspace(0.1, 3, 7) + 2
    core = LatentCore(Codec(7), latents)
    assert (core._nn_rhs is None) == (m <= 25)
    for n in (1, 3, 40, 500):
        z = latents[torch.arange(n) % m] + torch.randn(n, 7, generator=g) * 2
        assert torch.equal(core.nn_distance(z), _cdist_reference(core, z, False))
    near = latents + 1e-4 * torch.randn(latents.shape, generator=g)
    for chunk in (4096, 5):  # one block, and row blocks of 5 (the exclusion then shifts by the block start)
        core.nn_chunk = chunk
        assert torch.equal(core.nn_distance(near, exclude_self=True), _cdist_reference(core, near, True))
        assert torch.equal(core.nn_distance(latents), _cdist_reference(core, latents, False))
        assert torch.equal(core.nn_distance(z), _cdist_reference(core, z, False))
