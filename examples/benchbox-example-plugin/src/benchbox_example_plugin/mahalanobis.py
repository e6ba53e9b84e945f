"""A Gaussian model of average-pooled pixels; the anomaly score is the Mahalanobis distance.

``fit`` pools every image to ``grid x grid`` (per channel), fits a mean and a covariance shrunk
towards a scaled identity, and keeps per-pixel means and variances at full resolution. ``score``
returns the squared Mahalanobis distance of the pooled image as the image score and the mean
over channels of the per-pixel squared z-score as the anomaly map. No randomness is involved.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from benchbox.errors import ConfigError
from benchbox.interfaces import Detector, FitContext, Scores

NAME = "example-mahalanobis"


class Mahalanobis(Detector):
    """Mahalanobis distance of pooled pixels to the normal images' Gaussian (example plugin)."""

    @dataclass
    class Config:
        grid: int = 8
        """Images are average-pooled to grid x grid before the Gaussian is fitted."""
        shrinkage: float = 0.1
        """Weight of the scaled identity mixed into the covariance, in [0, 1]."""

    def __init__(self, config: Config | None = None):
        super().__init__(config)
        if self.config.grid < 1:
            raise ConfigError(f"{NAME}: --detector.grid must be >= 1, got {self.config.grid}")
        if not 0.0 <= self.config.shrinkage <= 1.0:
            raise ConfigError(f"{NAME}: --detector.shrinkage must be in [0, 1], got {self.config.shrinkage}")
        self.device = torch.device("cpu")
        self.shape: tuple[int, ...] | None = None
        self.mean: torch.Tensor | None = None
        self.precision: torch.Tensor | None = None
        self.pixel_mean: torch.Tensor | None = None
        self.pixel_var: torch.Tensor | None = None

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        side = min(self.config.grid, x.shape[-2], x.shape[-1])
        return F.adaptive_avg_pool2d(x, side).flatten(1)

    def fit(self, images: torch.Tensor, ctx: FitContext, pseudo_anomalies: torch.Tensor | None = None) -> None:
        if pseudo_anomalies is not None:
            raise ValueError(f"{NAME}: cannot use pseudo-anomalies; use a policy with role normal")
        if images.ndim != 4 or images.shape[1] not in (1, 3) or len(images) < 2:
            raise ValueError(f"{NAME}: expected N x C x H x W images with C in (1, 3) and N >= 2, "
                             f"got {tuple(images.shape)}")
        self.device = ctx.device
        x = images.to(ctx.device, torch.float64)
        feats = self._features(x)
        mean = feats.mean(0)
        centered = feats - mean
        cov = centered.T @ centered / (len(feats) - 1)
        d = cov.shape[0]
        s = self.config.shrinkage
        eye = torch.eye(d, dtype=cov.dtype, device=cov.device)
        cov = (1 - s) * cov + (s * torch.trace(cov) / d + 1e-6) * eye
        self.precision = torch.cholesky_inverse(torch.linalg.cholesky(cov))
        self.mean = mean
        self.pixel_mean = x.mean(0)
        self.pixel_var = x.var(0, unbiased=False) + 1e-4
        self.shape = tuple(images.shape[1:])
        ctx.curves.log("train/mean_sq_distance", 0, float(((centered @ self.precision) * centered).sum(1).mean()))
        ctx.progress(1, 1)

    @torch.no_grad()
    def score(self, images: torch.Tensor) -> Scores:
        if self.mean is None or self.precision is None or self.pixel_mean is None or self.pixel_var is None:
            raise RuntimeError(f"{NAME}: call fit() before score()")
        if tuple(images.shape[1:]) != self.shape:
            raise ValueError(f"{NAME}: fitted on images of shape {self.shape}, got {tuple(images.shape[1:])}")
        x = images.to(self.device, torch.float64)
        delta = self._features(x) - self.mean
        image = ((delta @ self.precision) * delta).sum(1)
        maps = ((x - self.pixel_mean) ** 2 / self.pixel_var).mean(1)
        return Scores(image=image.float().cpu(), maps=maps.float().cpu())
