"""Exploration for the off-policy agents: Gaussian and Ornstein--Uhlenbeck action noise, epsilon decay."""

from __future__ import annotations

import torch


def linear_schedule(start: float, end: float, duration: float, t: float) -> float:
    """``start`` at ``t = 0`` moving linearly to ``end`` at ``t = duration``, then ``end`` (epsilon decay)."""
    if duration <= 0 or t >= duration:
        return end
    return start + (end - start) * max(0.0, t / duration)


class GaussianNoise:
    """Independent N(0, sigma^2) noise per step (``reset`` is a no-op, kept for a common interface)."""

    def __init__(self, shape: tuple[int, ...], sigma: float, generator: torch.Generator):
        self.shape, self.sigma, self.gen = tuple(shape), float(sigma), generator

    def sample(self) -> torch.Tensor:
        return self.sigma * torch.randn(self.shape, generator=self.gen)

    def reset(self, mask: torch.Tensor | None = None) -> None:
        return None


class OUNoise:
    """Ornstein--Uhlenbeck noise, one process per row of ``shape`` (Euler--Maruyama step):

    ``x <- x + theta * (mu - x) * dt + sigma * sqrt(dt) * N(0, 1)``.

    Its stationary distribution is ``N(mu, sigma^2 / (2 theta))``; successive samples are
    correlated (lag-one correlation ``1 - theta * dt``), which explores by drifting. ``reset(mask)``
    puts the rows where ``mask`` is true (all rows if ``mask`` is None) back to ``mu``, at the start
    of their episodes.
    """

    def __init__(self, shape: tuple[int, ...], sigma: float = 0.2, theta: float = 0.15, dt: float = 1e-2,
                 mu: float = 0.0, generator: torch.Generator | None = None):
        if theta <= 0 or dt <= 0:
            raise ValueError(f"OU noise: theta and dt must be > 0, got theta={theta}, dt={dt}")
        self.shape, self.sigma, self.theta, self.dt, self.mu = tuple(shape), float(sigma), float(theta), float(dt), float(mu)
        self.gen = generator if generator is not None else torch.Generator().manual_seed(0)
        self.x = torch.full(self.shape, self.mu)

    def sample(self) -> torch.Tensor:
        eps = torch.randn(self.shape, generator=self.gen)
        self.x = self.x + self.theta * (self.mu - self.x) * self.dt + self.sigma * self.dt**0.5 * eps
        return self.x.clone()

    def reset(self, mask: torch.Tensor | None = None) -> None:
        if mask is None:
            self.x = torch.full(self.shape, self.mu)
        else:
            m = mask.cpu().reshape(-1, *([1] * (len(self.shape) - 1)))
            self.x = torch.where(m, torch.full_like(self.x, self.mu), self.x)
