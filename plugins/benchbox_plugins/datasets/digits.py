"""scikit-learn's bundled 8x8 handwritten digits under the one-class protocol."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchbox.interfaces import Dataset, Splits
from benchbox_plugins.datasets.base.oneclass import OneClassConfig, one_class_splits


class Digits(Dataset):
    """scikit-learn's 8x8 digits (1,797 images, ships with scikit-learn): the fast test dataset."""

    @dataclass
    class Config(OneClassConfig):
        pass

    def load(self, seed: int) -> Splits:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images = bunch.images.astype(np.float32)  # values 0..16
        return one_class_splits(self.config, seed, "digits", images, bunch.target, scale=16.0)
