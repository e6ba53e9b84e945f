"""f-AnoGAN (Schlegl et al., 2019) on the dcgan generator: GAN + izi_f encoder, residual scores.

The detector owns a ``dcgan`` built from its own config (every ``--detector.*`` option is the
generator's: ``--detector.spectral-norm``, ``--detector.arch improved``, ``--detector.kappa``, ...),
fits it on the normal training images (plus any augmented ones), and scores an image by

    A(x) = mean (x - G(E(x)))^2 + kappa * mean (f_D(x) - f_D(G(E(x))))^2

with f_D the discriminator's features; the anomaly map is the per-pixel residual |x - G(E(x))|
(mean over channels).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from benchbox.errors import ConfigError
from benchbox.interfaces import Scores
from benchbox_plugins.detectors.base.recon_detector import ReconstructionDetector
from benchbox_plugins.generators.dcgan import DCGAN


class FAnoGANDetector(ReconstructionDetector):
    """f-AnoGAN: DCGAN + izi_f encoder; score = image residual + kappa * D-feature residual."""

    generator_cls = DCGAN

    @dataclass
    class Config(DCGAN.Config):
        feature_matching: bool = True
        """On by default here: on a few hundred one-class images the plain DCGAN objective collapses
        G to a handful of modes (sample std 0.03 vs 0.18 with feature matching, MNIST class 0), and
        a collapsed G cannot be inverted."""

    def __init__(self, config=None):
        try:
            super().__init__(config)
        except ConfigError as exc:  # the generator validates; name the detector's options instead
            raise ConfigError(str(exc).replace(f"{DCGAN.name}: --generator.", "fanogan: --detector.")) from None

    def score(self, images: torch.Tensor) -> Scores:
        maps, image_residual, feature_residual = self.generator.residuals(images)
        return Scores(image=(image_residual + self.config.kappa * feature_residual).float(), maps=maps.float())
