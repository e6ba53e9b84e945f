"""Generation-quality metrics: how close generated images are to the real training images.

* :func:`frechet_distance` -- FID between two feature sets, ``|mu1 - mu2|^2 + Tr(S1 + S2 -
  2 (S1 S2)^{1/2})``, the matrix square root through ``scipy.linalg.sqrtm``.
* :func:`pixel_histogram_kl` -- KL(real || generated) between the pixel-intensity histograms.
* :func:`prdc` -- precision, recall, density and coverage (Naeem et al., ICML 2020) with
  k-nearest-neighbour balls in feature space.
* :func:`generation_metrics` -- all of them for one cell, on the fixed in-domain features of
  ``benchbox.features``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg
import torch

from .errors import DataError


def _np(x: torch.Tensor | np.ndarray) -> np.ndarray:
    return x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)


def frechet_distance_from_stats(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, cov1) and N(mu2, cov2)."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    cov1, cov2 = np.atleast_2d(cov1).astype(np.float64), np.atleast_2d(cov2).astype(np.float64)
    covmean = scipy.linalg.sqrtm(cov1 @ cov2)
    if not np.isfinite(covmean).all():  # singular product: regularise both covariances slightly
        eye = np.eye(len(cov1)) * 1e-6
        covmean = scipy.linalg.sqrtm((cov1 + eye) @ (cov2 + eye))
    covmean = np.real(covmean)  # numerical noise can leave tiny imaginary parts
    value = float(((mu1 - mu2) ** 2).sum() + np.trace(cov1) + np.trace(cov2) - 2.0 * np.trace(covmean))
    return max(value, 0.0)


def frechet_distance(real: torch.Tensor | np.ndarray, fake: torch.Tensor | np.ndarray) -> float:
    """FID between two ``N x D`` feature sets (each needs at least two rows)."""
    a, b = _np(real), _np(fake)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise DataError(f"fid: expected two N x D feature sets, got shapes {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise DataError("fid: each feature set needs at least 2 samples")
    return frechet_distance_from_stats(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


def pixel_histogram_kl(real: torch.Tensor, fake: torch.Tensor, bins: int = 64, eps: float = 1e-6) -> float:
    """KL(real || generated) between pixel-intensity histograms on ``[0, 1]`` (natural log).

    Both histograms get ``eps`` added per bin before normalising, so an empty generated bin
    gives a large but finite value.
    """
    p = np.histogram(_np(real).ravel(), bins=bins, range=(0.0, 1.0))[0].astype(np.float64) + eps
    q = np.histogram(_np(fake).ravel(), bins=bins, range=(0.0, 1.0))[0].astype(np.float64) + eps
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum(p * np.log(p / q)))


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(d, 0.0))


def prdc(real: torch.Tensor | np.ndarray, fake: torch.Tensor | np.ndarray, k: int = 5) -> dict[str, float]:
    """Precision, recall, density and coverage of ``fake`` against ``real`` (Naeem et al., 2020).

    The radius of each sample is the distance to its k-th nearest neighbour within its own set.
    precision: share of fakes inside some real ball; recall: share of reals inside some fake
    ball; density: mean number of real balls holding a fake, divided by k; coverage: share of
    reals whose ball holds at least one fake.
    """
    a, b = _np(real), _np(fake)
    if len(a) <= k or len(b) <= k:
        raise DataError(f"prdc: need more than k={k} real and generated samples, got {len(a)} and {len(b)}")
    d_rr, d_ff, d_rf = _pairwise(a, a), _pairwise(b, b), _pairwise(a, b)
    r_real = np.sort(d_rr, axis=1)[:, k]  # column 0 is the point itself
    r_fake = np.sort(d_ff, axis=1)[:, k]
    inside_real = d_rf <= r_real[:, None]  # [i, j]: fake j within real i's ball
    return {
        "precision": float(inside_real.any(0).mean()),
        "recall": float((d_rf <= r_fake[None, :]).any(1).mean()),
        "density": float(inside_real.sum(0).mean() / k),
        "coverage": float((d_rf.min(1) <= r_real).mean()),
    }


def generation_metrics(real: torch.Tensor, generated: torch.Tensor, features: Any, k: int = 5,
                       max_samples: int = 2000, seed: int = 0) -> dict[str, float]:
    """FID, pixel KL and PRDC of ``generated`` against ``real`` images (keys prefixed ``gen_``).

    ``features`` maps ``N x C x H x W`` images to ``N x D`` features (``benchbox.features``).
    At most ``max_samples`` images of each set are used (a seeded subset) to bound the cost of
    the pairwise distances.
    """
    gen = torch.Generator().manual_seed(seed)

    def subset(x: torch.Tensor) -> torch.Tensor:
        return x[torch.randperm(len(x), generator=gen)[:max_samples]] if len(x) > max_samples else x

    real, generated = subset(real), subset(generated)
    f_real, f_fake = features(real), features(generated)
    out = {"gen_fid": frechet_distance(f_real, f_fake), "gen_pixel_kl": pixel_histogram_kl(real, generated)}
    kk = min(k, len(real) - 1, len(generated) - 1)
    out.update({f"gen_{name}": v for name, v in prdc(f_real, f_fake, kk).items()} if kk >= 1 else {})
    return out
