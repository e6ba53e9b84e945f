"""The one-class protocol shared by labelled image sets (MNIST, digits, ...).

Class ``normal_class`` is normal, every other class anomalous. Train holds normal images only;
a validation split of ``val_fraction`` is carved from the training normals; test holds the
held-out normal images and the anomalies. Splits are a pure function of (data, config, seed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np
import torch
import torch.nn.functional as F

from benchbox.errors import ConfigError
from benchbox.interfaces import LabeledImages, Splits
from benchbox.options import Check, at_least


@dataclass
class OneClassConfig:
    normal_class: Annotated[int, at_least(0)] = 0
    """Class treated as normal; every other class is anomalous."""
    train_limit: Annotated[int, at_least(0)] = 0
    """Keep only this many normal training images (0 = all): the low-data regime."""
    val_fraction: Annotated[float, Check(lambda v: 0 <= v < 1, "a number in [0, 1)")] = 0.1
    """Share of the training normals held out for validation (tuning, early stopping)."""
    test_fraction: Annotated[float, Check(lambda v: 0 < v < 1, "a number in (0, 1)")] = 0.4
    """Share of the normals held out for test when the data has no official test split."""
    image_size: Annotated[int, at_least(0)] = 0
    """Resize images to this many pixels per side (0 = native size)."""


def _validate(cfg: OneClassConfig, classes: np.ndarray, where: str) -> None:
    if cfg.normal_class not in set(classes.tolist()):
        raise ConfigError(
            f"{where}: --dataset.normal-class {cfg.normal_class} is not a class of this data "
            f"(classes: {', '.join(map(str, sorted(set(classes.tolist()))))})"
        )
    if not 0.0 <= cfg.val_fraction < 1.0:
        raise ConfigError(f"{where}: --dataset.val-fraction must be in [0, 1), got {cfg.val_fraction}")
    if not 0.0 < cfg.test_fraction < 1.0:
        raise ConfigError(f"{where}: --dataset.test-fraction must be in (0, 1), got {cfg.test_fraction}")
    if cfg.train_limit < 0:
        raise ConfigError(f"{where}: --dataset.train-limit must be >= 0, got {cfg.train_limit}")
    if cfg.image_size and not 4 <= cfg.image_size <= 1024:
        raise ConfigError(f"{where}: --dataset.image-size must be 0 (native) or in [4, 1024], got {cfg.image_size}")


def to_tensor(images: np.ndarray, scale: float, image_size: int) -> torch.Tensor:
    """uint8/float ``N x H x W`` or ``N x H x W x C`` array -> float32 ``N x C x H x W`` in [0, 1]."""
    x = torch.from_numpy(np.array(images, dtype=np.float32)).div_(scale)  # copies: inputs may be read-only
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()
    if image_size and image_size != x.shape[-1]:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True)
    return x.clamp_(0.0, 1.0)


def one_class_splits(
    cfg: OneClassConfig,
    seed: int,
    name: str,
    images: np.ndarray,
    labels: np.ndarray,
    scale: float,
    test_images: np.ndarray | None = None,
    test_labels: np.ndarray | None = None,
) -> Splits:
    """Split labelled images under the one-class protocol.

    Without an official test split (``test_images is None``) the normals are shuffled by the
    seed and ``test_fraction`` of them go to test, together with every image of the other classes.
    With one, train normals come from ``images`` and the whole official test set is the test split.
    """
    _validate(cfg, labels if test_labels is None else np.concatenate([labels, test_labels]), name)
    rng = np.random.default_rng(seed)
    normal_idx = np.flatnonzero(labels == cfg.normal_class)
    rng.shuffle(normal_idx)
    if test_images is None:
        n_test = int(round(cfg.test_fraction * len(normal_idx)))
        test_normal, pool = normal_idx[:n_test], normal_idx[n_test:]
        anomal = np.flatnonzero(labels != cfg.normal_class)
        test_x = np.concatenate([images[test_normal], images[anomal]])
        test_y = np.concatenate([np.zeros(len(test_normal)), np.ones(len(anomal))])
    else:
        assert test_labels is not None
        pool = normal_idx
        test_x = test_images
        test_y = (test_labels != cfg.normal_class).astype(np.float64)
    n_val = int(round(cfg.val_fraction * len(pool))) if cfg.val_fraction > 0 else 0
    if cfg.val_fraction > 0 and len(pool) > 1:
        n_val = max(1, n_val)
    val_idx, train_idx = pool[:n_val], pool[n_val:]
    if cfg.train_limit:
        train_idx = train_idx[: cfg.train_limit]
    if len(train_idx) == 0:
        raise ConfigError(f"{name}: no normal training images left for class {cfg.normal_class}")
    if test_y.min() == test_y.max():
        raise ConfigError(f"{name}: the test split needs both normal and anomalous images")
    val = to_tensor(images[val_idx], scale, cfg.image_size)
    return Splits(
        train=to_tensor(images[train_idx], scale, cfg.image_size),
        val=LabeledImages(val, torch.zeros(len(val), dtype=torch.int64)),
        test=LabeledImages(to_tensor(test_x, scale, cfg.image_size), torch.from_numpy(test_y).long()),
        name=name,
        category=str(cfg.normal_class),
        info={"n_train": int(len(train_idx)), "n_val": int(len(val_idx)), "n_test": int(len(test_y)),
              "n_test_anomalous": int(test_y.sum())},
    )
