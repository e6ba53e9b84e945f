"""k-nearest-neighbour distance to the training normals: the no-training reference detector.

``score(x) = mean of the k smallest ||f(x) - f(t)||`` over training images ``t`` (Euclidean,
accumulated in float64 so a score does not depend on the batch). ``f`` is fixed, chosen by
``--detector.features``:

* ``pixels`` -- the flattened image;
* ``infeat`` -- the core's fixed in-domain feature network (:func:`benchbox.features.indomain_extractor`,
  a small conv autoencoder's bottleneck trained once, from a fixed seed, on the training images
  and cached), the space FID is computed in.

The anomaly map is the per-pixel ``|x - t|`` (channel mean) averaged over the k nearest training
images: where the image differs from the normals it resembles most. Nothing is trained besides
the (cached) ``infeat`` network; fitting stores the features, scoring is one batched distance
computation. Pseudo-anomalies are not used (the detector raises ``ValueError``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import torch

from benchbox.interfaces import Detector, FitContext, Scores
from benchbox.options import at_least
from benchbox_plugins.rl.loop_rewards import pairwise_distances

FEATURES = ("pixels", "infeat")


class FixedFeatures:
    """A picklable fixed feature map (``pixels`` or ``infeat``) for images like ``reference``.

    The ``infeat`` network is rebuilt after unpickling from the reference images (a cache hit of
    :func:`benchbox.features.indomain_extractor`), so a fitted policy can go through the stage cache.
    """

    def __init__(self, kind: str, reference: torch.Tensor, device: torch.device | str = "cpu",
                 where: str = "--detector.features"):
        if kind not in FEATURES:
            raise ValueError(f"{where} must be one of {', '.join(FEATURES)}, got {kind!r}")
        self.kind, self.device = kind, str(device)
        self.reference = reference.detach().float().cpu() if kind == "infeat" else None
        self._fn: Any = None

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """The feature rows of ``images``, on the CPU (what the detectors store and compare)."""
        return self.rows(images).cpu()

    def rows(self, images: torch.Tensor) -> torch.Tensor:
        """The same rows left where they were computed (``pixels``: the images' device; ``infeat``: the
        network's), for callers that keep their features on the device (the loop rewards' step)."""
        if self.kind == "pixels":
            return images.detach().float().flatten(1)
        if self._fn is None:
            from benchbox.features import indomain_extractor

            self._fn = indomain_extractor(self.reference, device=self.device)
        return self._fn(images).float()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fn": None}


class KNNDetector(Detector):
    """k-NN distance to the training normals, on raw pixels or fixed in-domain features (no training)."""

    @dataclass
    class Config:
        k: Annotated[int, at_least(1)] = 1
        """Number of nearest training images whose distances are averaged (1 = 1-NN)."""
        features: Literal["pixels", "infeat"] = "pixels"
        """Feature space: raw pixels, or the core's fixed in-domain feature network (benchbox.features)."""
        maps: bool = True
        """Return per-pixel anomaly maps (|x - nearest training images|)."""
        batch_size: Annotated[int, at_least(1)] = 512
        """Test images scored per distance computation."""

    def __init__(self, config: Config | None = None):
        super().__init__(config)
        c = self.config
        if c.k < 1:
            raise ValueError(f"knn: --detector.k must be >= 1, got {c.k}")
        if c.features not in FEATURES:
            raise ValueError(f"knn: --detector.features must be one of {', '.join(FEATURES)}, got {c.features!r}")
        if c.batch_size < 1:
            raise ValueError(f"knn: --detector.batch-size must be >= 1, got {c.batch_size}")
        self.train: torch.Tensor | None = None
        self.memory: torch.Tensor | None = None
        self.features: FixedFeatures | None = None
        self.device = torch.device("cpu")

    def fit(self, images: torch.Tensor, ctx: FitContext, pseudo_anomalies: torch.Tensor | None = None) -> None:
        if pseudo_anomalies is not None:
            raise ValueError("knn: the k-NN detector does not use pseudo-anomalies (use a role 'normal' policy)")
        if images.ndim != 4 or len(images) < self.config.k:
            raise ValueError(f"knn: need at least --detector.k={self.config.k} training images N x C x H x W, "
                             f"got shape {tuple(images.shape)}")
        self.device = ctx.device
        self.features = FixedFeatures(self.config.features, images, ctx.device)
        self.train = images.detach().float().clone()
        self.memory = self.features(self.train).to(self.device)
        ctx.curves.log("memory_size", 0, len(self.memory))
        ctx.progress(1, 1)

    @torch.no_grad()
    def score(self, images: torch.Tensor) -> Scores:
        if self.memory is None or self.train is None or self.features is None:
            raise RuntimeError("knn: call fit() before score()")
        if images.ndim != 4 or images.shape[1:] != self.train.shape[1:]:
            raise ValueError(f"knn: fitted on images of shape {tuple(self.train.shape[1:])}, "
                             f"got {tuple(images.shape[1:]) if images.ndim == 4 else tuple(images.shape)}")
        k, bs = self.config.k, self.config.batch_size
        scores, maps = [], []
        for start in range(0, len(images), bs):
            x = images[start : start + bs]
            dist = pairwise_distances(self.features(x).to(self.device), self.memory)
            near = dist.topk(k, dim=1, largest=False)
            scores.append(near.values.mean(1).cpu())
            if self.config.maps:
                nbrs = self.train[near.indices.cpu()]  # b x k x C x H x W
                maps.append((x.float().unsqueeze(1) - nbrs).abs().mean(dim=(1, 2)))
        if not scores:
            return Scores(image=torch.empty(0), maps=torch.empty(0, *images.shape[-2:]) if self.config.maps else None)
        return Scores(image=torch.cat(scores).float(), maps=torch.cat(maps).float() if self.config.maps else None)
