"""A reconstruction-error detector over any generator that can ``reconstruct``.

The detector owns a generator of ``generator_cls`` built from its own config (the detector's
``Config`` *is* the generator's, so ``--detector.epochs`` etc. mean exactly the same thing),
fits it on the normal training images and scores an image by how badly it is reconstructed:
the anomaly map is the per-pixel squared error (mean over channels) and the image score is the
mean of the map. No copy of the network or its training code lives here.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from benchbox.interfaces import Detector, FitContext, Scores
from benchbox_plugins.generators.base.conv_generator import ConvGenerator


class ReconstructionDetector(Detector):
    """Base of reconstruction-error detectors (not registered itself)."""

    generator_cls: ClassVar[type[ConvGenerator]]

    def __init__(self, config=None):
        super().__init__(config)
        try:
            self.generator = self.generator_cls(self.generator_cls.Config(**vars(self.config)))
        except ValueError as exc:  # the generator validates; name the detector's options instead
            raise ValueError(str(exc).replace("--generator.", "--detector.")) from None

    def fit(self, images: torch.Tensor, ctx: FitContext, pseudo_anomalies: torch.Tensor | None = None) -> None:
        if pseudo_anomalies is not None:
            raise ValueError(f"{self.generator.name}: a reconstruction-error detector cannot use pseudo-anomalies")
        self.generator.fit(images, ctx)

    def score(self, images: torch.Tensor) -> Scores:
        if self.generator.shape is not None and tuple(images.shape[1:]) != self.generator.shape:
            raise ValueError(f"{self.generator.name}: fitted on images of shape {self.generator.shape}, "
                             f"got {tuple(images.shape[1:])}")
        error = (self.generator.reconstruct(images) - images).pow(2).mean(1)
        return Scores(image=error.flatten(1).mean(1).float(), maps=error.float())
