"""From a scanned :class:`Layout` to :class:`Splits`: decode (cached), resize, split by seed.

Shared by the folder datasets (mvtec, visa, bmad, pku): a plugin only says where its root is
and, unless it is in MVTec's layout, how to scan a category; decoding, the ``.npz`` cache and the
one-class protocol live here.

Protocol: the official training normals are shuffled by the seed and ``val_fraction`` of them
become the validation split, together with any validation split the dataset ships (BMAD's
``valid``, which holds anomalies too). The official test split is kept whole, in file order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar

import numpy as np
import torch

from benchbox.errors import ConfigError, DataError
from benchbox.interfaces import Dataset, LabeledImages, Splits
from benchbox.options import Check, at_least

from .folders import Layout, Sample, resolve_root, scan_mvtec, train_categories
from .imageio import centre_crop_resize, read_image, read_mask
from .npzcache import cached, file_key

_Q = 65535.0  # images are cached as uint16: exact for 8-bit (x * 257) and 16-bit sources


@dataclass
class FolderConfig:
    root: str = ""
    """Dataset folder (empty = $BENCHBOX_DATA/<dataset>)."""
    category: str = ""
    """Category (object / organ / texture) to load."""
    image_size: Annotated[int, at_least(0)] = 256
    """Side in pixels: centre square crop (keeps the aspect), then resize (0 = native size)."""
    val_fraction: Annotated[float, Check(lambda v: 0 <= v < 1, "a number in [0, 1)")] = 0.1
    """Share of the training normals held out for validation (tuning, early stopping)."""
    train_limit: Annotated[int, at_least(0)] = 0
    """Keep only this many normal training images (0 = all): the low-data regime."""


class FolderDataset(Dataset):
    """Base of datasets stored as image files; subclasses implement ``scan``."""

    requires_root: ClassVar[bool] = True
    subdir: ClassVar[str] = ""  # folder under $BENCHBOX_DATA
    expected: ClassVar[str] = ""  # the layout, in words, for error messages
    masks: ClassVar[str] = "required"  # MVTec layout: every anomaly has a mask, or "optional"

    config: FolderConfig

    @property
    def name(self) -> str:
        return self.subdir

    def root(self) -> Path:
        return resolve_root(self.config.root, self.name, self.subdir, self.expected)

    def scan(self, root: Path, category: str) -> Layout:
        """The files of one category; the MVTec layout unless a dataset says otherwise."""
        return scan_mvtec(root, category, self.name, masks=self.masks)

    def categories(self, root: Path) -> list[str]:
        """The categories under ``root``: folders with a ``train/`` folder, unless a dataset says otherwise."""
        return train_categories(root)

    def load(self, seed: int) -> Splits:
        _validate(self.config, self.name)
        layout = self.scan(self.root(), self.config.category)
        layout.raise_first()
        return layout_splits(layout, self.config, seed)


def _validate(cfg: FolderConfig, name: str) -> None:
    if not 0.0 <= cfg.val_fraction < 1.0:
        raise ConfigError(f"{name}: --dataset.val-fraction must be in [0, 1), got {cfg.val_fraction}")
    if cfg.train_limit < 0:
        raise ConfigError(f"{name}: --dataset.train-limit must be >= 0, got {cfg.train_limit}")
    if cfg.image_size and not 8 <= cfg.image_size <= 2048:
        raise ConfigError(f"{name}: --dataset.image-size must be 0 (native) or in [8, 2048], got {cfg.image_size}")
    if not cfg.category:
        raise ConfigError(f"{name}: --dataset.category is empty")


def decode(samples: list[Sample], image_size: int, masks: bool, name: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Images ``N x C x S x S`` float32 and masks ``N x 1 x S x S`` (or None), via the cache."""
    if not samples:
        return torch.empty(0), (torch.empty(0) if masks else None)
    files = [s.image for s in samples] + ([s.mask for s in samples] if masks else [])
    key = file_key(files, {"image_size": image_size, "masks": masks})
    arrays = cached(name, key, lambda: _decode_arrays(samples, image_size, masks))
    images = torch.from_numpy(arrays["images"].astype(np.float32) / _Q)
    return images, (torch.from_numpy(arrays["masks"].astype(np.float32)) if masks else None)


def _decode_arrays(samples: list[Sample], image_size: int, masks: bool) -> dict[str, np.ndarray]:
    decoded = [read_image(s.image) for s in samples]
    colour = any(a.ndim == 3 for a in decoded)
    images, mask_list = [], []
    for s, arr in zip(samples, decoded):
        x = torch.from_numpy(arr)
        x = x.permute(2, 0, 1) if x.ndim == 3 else x.unsqueeze(0)
        if colour and x.shape[0] == 1:
            x = x.expand(3, -1, -1)
        if masks:
            m = torch.from_numpy(read_mask(s.mask)) if s.mask is not None else torch.zeros(arr.shape[:2])
            if tuple(m.shape) != tuple(arr.shape[:2]):
                raise DataError(f"{s.mask}: mask is {m.shape[1]}x{m.shape[0]} but its image {s.image} is "
                                f"{arr.shape[1]}x{arr.shape[0]} (expected the same size)")
            mask_list.append(centre_crop_resize(m[None, None], image_size, mask=True)[0])
        images.append(centre_crop_resize(x[None], image_size)[0])
    shapes = {tuple(t.shape) for t in images}
    if len(shapes) > 1:
        raise DataError(f"{samples[0].image.parent}: images differ in size {sorted(shapes)[:2]}; "
                        "pass --dataset.image-size N to resize them")
    out = {"images": np.round(torch.stack(images).numpy() * _Q).astype(np.uint16)}
    if masks:
        out["masks"] = (torch.stack(mask_list).numpy() > 0.5).astype(np.uint8)
    return out


def layout_splits(layout: Layout, cfg: FolderConfig, seed: int) -> Splits:
    name = f"{layout.name}-{layout.category}"
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(layout.train))
    n_val = int(round(cfg.val_fraction * len(order)))
    if cfg.val_fraction > 0 and len(order) > 1:
        n_val = max(1, n_val)
    n_val = min(n_val, len(order) - 1)
    train_idx, val_idx = order[n_val:], order[:n_val]
    if cfg.train_limit:
        train_idx = train_idx[: cfg.train_limit]
    all_train, _ = decode(layout.train, cfg.image_size, False, name + "-train")
    test_x, test_m = decode(layout.test, cfg.image_size, layout.has_masks, name + "-test")
    shipped_val, _ = decode(layout.val, cfg.image_size, False, name + "-val")
    if len(all_train) and len(test_x) and all_train.shape[2:] != test_x.shape[2:]:
        raise DataError(f"{layout.folder}: training images are {tuple(all_train.shape[1:])} but test images are "
                        f"{tuple(test_x.shape[1:])} (expected one image size)")
    channels = all_train.shape[1]
    val_parts = [all_train[torch.from_numpy(val_idx)]] + ([_channels(shipped_val, channels)] if len(layout.val) else [])
    val_labels = torch.cat([torch.zeros(len(val_idx), dtype=torch.int64),
                            torch.tensor([s.label for s in layout.val], dtype=torch.int64)])
    test_x = _channels(test_x, channels)
    test_y = torch.tensor([s.label for s in layout.test], dtype=torch.int64)
    return Splits(
        train=all_train[torch.from_numpy(train_idx)].contiguous(),
        val=LabeledImages(torch.cat(val_parts).contiguous(), val_labels),
        test=LabeledImages(test_x.contiguous(), test_y, test_m),
        name=layout.name,
        category=layout.category,
        info={"n_train": len(train_idx), "n_val": len(val_labels), "n_test": len(test_y),
              "n_test_anomalous": int(test_y.sum()), "has_masks": layout.has_masks, "folder": str(layout.folder)},
    )


def _channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Match the training split's channel count (a grey image in a colour set, or the reverse)."""
    if x.shape[1] == channels:
        return x
    return x.expand(-1, channels, -1, -1) if x.shape[1] == 1 else x.mean(1, keepdim=True)
