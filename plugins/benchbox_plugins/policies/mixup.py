"""Latent interpolation between training latents: the free heuristic a learned policy must beat.

For a source ``z`` (a training latent ``z_i``, as the runner passes them) ``propose`` picks a
partner ``z_j``, ``j != i``, among the training latents and returns ``dz = (1 - a) (z_j - z)``,
so the decoded latent is ``z + dz = a z_i + (1 - a) z_j``, a point of the segment between two
training latents. ``a ~ U(lo, hi)`` or ``Beta(alpha, alpha)``; the partner is uniform over the
other training latents, or over the ``neighbours`` nearest ones. The budget is the runner's, as
for ``random``: ``--augment.ratio`` x the training set size.

Defaults: ``a ~ U(0, 1)`` with any partner is the plain interpolation control of issue 18 (it
helped 1-NN on 7 of 10 MNIST classes at 50 training normals); the options are for ablations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import torch

from benchbox.interfaces import FitContext, Generator, LatentPolicy
from benchbox.options import above, at_least, between
from benchbox_plugins.rl.loop_rewards import pairwise_distances


def match_rows(z: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
    """Index of the training latent each row of ``z`` equals (to float tolerance), -1 where none."""
    dist = pairwise_distances(z.float(), latents.float())
    best = dist.min(1)
    tol = 1e-5 * (1 + latents.float().norm(dim=1).max())
    return torch.where(best.values <= tol, best.indices, torch.full_like(best.indices, -1))


def draw_partners(src: torch.Tensor, z: torch.Tensor, latents: torch.Tensor, neighbours: int,
                  gen: torch.Generator) -> torch.Tensor:
    """A partner index ``j != src`` per row: uniform over the other latents or over the ``neighbours`` nearest."""
    m = len(latents)
    u = torch.rand(len(z), generator=gen, dtype=torch.float64)
    if neighbours <= 0:
        own = src >= 0
        r = (u * (m - own.long())).long()
        return torch.where(own & (r >= src), r + 1, r)
    dist = pairwise_distances(z.float(), latents.float())
    rows = torch.nonzero(src >= 0).squeeze(1)
    dist[rows, src[rows]] = float("inf")
    k = min(neighbours, m - 1)
    near = dist.topk(k, dim=1, largest=False).indices
    return near.gather(1, (u * k).long().clamp_max(k - 1).unsqueeze(1)).squeeze(1)


class Mixup(LatentPolicy):
    """Interpolation z' = a z_i + (1 - a) z_j between two training latents (a ~ U(lo, hi) or Beta)."""

    @dataclass
    class Config:
        weights: Literal["uniform", "beta"] = "uniform"
        """Distribution of the weight a of the source: uniform on [lo, hi], or Beta(alpha, alpha)."""
        lo: Annotated[float, between(0, 1)] = 0.0
        """Lower end of a (uniform)."""
        hi: Annotated[float, between(0, 1)] = 1.0
        """Upper end of a (uniform)."""
        alpha: Annotated[float, above(0)] = 0.4
        """Beta(alpha, alpha) parameter (weights = beta): < 1 favours points near either end."""
        neighbours: Annotated[int, at_least(0)] = 0
        """Partner drawn among the k nearest training latents (0 = among all of them)."""

    def __init__(self, config: Config | None = None):
        super().__init__(config)
        c = self.config
        if c.weights not in ("uniform", "beta"):
            raise ValueError(f"mixup: --policy.weights must be 'uniform' or 'beta', got {c.weights!r}")
        if not 0.0 <= c.lo <= c.hi <= 1.0:
            raise ValueError(f"mixup: need 0 <= --policy.lo <= --policy.hi <= 1, got lo={c.lo}, hi={c.hi}")
        if c.alpha <= 0:
            raise ValueError(f"mixup: --policy.alpha must be > 0, got {c.alpha}")
        if c.neighbours < 0:
            raise ValueError(f"mixup: --policy.neighbours must be >= 0, got {c.neighbours}")
        self.latents: torch.Tensor | None = None

    def fit(self, generator: Generator, latents: torch.Tensor, ctx: FitContext) -> None:
        if latents.ndim != 2 or len(latents) < 2:
            raise ValueError(f"mixup: needs at least 2 training latents to interpolate, got shape {tuple(latents.shape)}")
        self.latents = latents.detach().float().cpu().clone()
        ctx.progress(1, 1)

    def weights(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """n weights a of the source latent."""
        c = self.config
        if c.weights == "beta":
            seed = int(torch.randint(2**62, (1,), generator=gen))
            with torch.random.fork_rng(devices=[]):  # torch.distributions takes no generator: seed a private stream
                torch.manual_seed(seed)
                return torch.distributions.Beta(c.alpha, c.alpha).sample((n,)).float()
        return (c.lo + (c.hi - c.lo) * torch.rand(n, generator=gen, dtype=torch.float64)).float()

    def interpolate(self, z: torch.Tensor, src: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(dz, partner index) for sources ``z`` whose training indices are ``src`` (-1: not a training latent)."""
        if self.latents is None:
            raise RuntimeError("mixup: call fit() before propose()")
        z = z.detach().float().cpu()
        partner = draw_partners(src, z, self.latents, self.config.neighbours, gen)
        a = self.weights(len(z), gen).unsqueeze(1)
        return (1 - a) * (self.latents[partner] - z), partner

    def propose(self, z: torch.Tensor, seed: int) -> torch.Tensor:
        if self.latents is None:
            raise RuntimeError("mixup: call fit() before propose()")
        gen = torch.Generator().manual_seed(seed)
        dz, _ = self.interpolate(z, match_rows(z.detach().cpu(), self.latents), gen)
        return dz.to(device=z.device, dtype=z.dtype)

