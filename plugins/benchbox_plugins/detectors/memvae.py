"""Memory-augmented VAE reconstruction error as the anomaly score (the `memvae` generator, reused)."""

from __future__ import annotations

from dataclasses import dataclass

from benchbox_plugins.detectors.base.recon_detector import ReconstructionDetector
from benchbox_plugins.generators.memvae import MemVAE


class MemVAEDetector(ReconstructionDetector):
    """Memory-augmented VAE (MemAE memory), per-pixel reconstruction error as the anomaly map."""

    generator_cls = MemVAE

    @dataclass
    class Config(MemVAE.Config):
        pass
