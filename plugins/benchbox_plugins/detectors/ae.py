"""Autoencoder reconstruction error as the anomaly score (the `ae` generator, reused)."""

from __future__ import annotations

from dataclasses import dataclass

from benchbox_plugins.detectors.base.recon_detector import ReconstructionDetector
from benchbox_plugins.generators.ae import AutoEncoder


class AEDetector(ReconstructionDetector):
    """Convolutional autoencoder, per-pixel reconstruction error as the anomaly map."""

    generator_cls = AutoEncoder

    @dataclass
    class Config(AutoEncoder.Config):
        pass
