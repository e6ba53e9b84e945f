"""EMNIST under the one-class protocol, from the official IDX files.

Files: ``emnist-<split>-{train,test}-{images-idx3,labels-idx1}-ubyte[.gz]`` for the splits
balanced, byclass, bymerge, digits, letters and mnist, in the root, in the ``gzip/`` folder of the
official ``gzip.zip``, or in torchvision's ``EMNIST/raw``. EMNIST stores every image transposed
(column-major); they are transposed back here, so letters read upright as in MNIST.

``letters`` labels are 1..26 (A/a .. Z/z). Some redistributions add images with label 0, an
N/A "blank" class; they are dropped unless ``--dataset.keep-blank`` (then 0 is one more class).
"""

from __future__ import annotations

import dataclasses
import string
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np

from benchbox.errors import ConfigError, DataError
from benchbox.interfaces import Dataset, Splits
from benchbox_plugins.datasets.base.folders import resolve_root
from benchbox_plugins.datasets.base.idx import find_idx_set, read_image_label_pair
from benchbox_plugins.datasets.base.oneclass import OneClassConfig, one_class_splits

SPLITS = ("balanced", "byclass", "bymerge", "digits", "letters", "mnist")
_SUBDIRS = (".", "gzip", "raw", "EMNIST/raw")
_MERGED_LOWER = "abdefghnqrt"  # lowercase letters kept apart from their capitals in balanced/bymerge


def class_names(split: str) -> list[str]:
    """Label -> character(s), as in the release's ``emnist-<split>-mapping.txt``."""
    digits, upper = list(string.digits), list(string.ascii_uppercase)
    if split in ("digits", "mnist"):
        return digits
    if split == "letters":
        return ["N/A"] + [u + u.lower() for u in upper]
    if split == "byclass":
        return digits + upper + list(string.ascii_lowercase)
    return digits + upper + list(_MERGED_LOWER)  # balanced, bymerge


def stems(split: str) -> dict[str, str]:
    return {f"{part}_{kind}": f"emnist-{split}-{part}-{kind}-ubyte"
            for part in ("train", "test") for kind in ("images-idx3", "labels-idx1")}


def find_files(root: Path, split: str) -> dict[str, Path]:
    if not root.is_dir():
        raise DataError(f"emnist: --dataset.root {root} is not a folder")
    files = find_idx_set(root, _SUBDIRS, stems(split))
    if files is not None:
        return files
    present = [s for s in SPLITS if find_idx_set(root, _SUBDIRS, stems(s))]
    found = f"; it holds the splits: {', '.join(present)} (pick one with --dataset.split)" if present else ""
    expected = ", ".join(f"{s}[.gz]" for s in stems(split).values())
    raise DataError(f"emnist: {root} holds no EMNIST '{split}' IDX files; expected {expected} "
                    f"(in the root, gzip/ or EMNIST/raw){found}")


def read_split(files: dict[str, Path], split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train and test images (upright, ``N x H x W`` views) and labels, with labels checked."""
    n_classes = len(class_names(split))
    out = []
    for part in ("train", "test"):
        images, labels = read_image_label_pair(files[f"{part}_images-idx3"], files[f"{part}_labels-idx1"])
        if labels.size and labels.max() >= n_classes:
            raise DataError(f"emnist: {files[f'{part}_labels-idx1']} holds label {int(labels.max())}, but split "
                            f"'{split}' has labels 0..{n_classes - 1}: files of another split?")
        out += [images.transpose(0, 2, 1), labels]  # stored transposed: swap rows and columns back
    return out[0], out[1], out[2], out[3]


class EMNIST(Dataset):
    """EMNIST letters/digits/balanced/..., one class normal, from the IDX files in --dataset.root."""

    requires_root: ClassVar[bool] = True

    @dataclass
    class Config(OneClassConfig):
        normal_class: int = 1
        """Label treated as normal (letters: 1 = A/a .. 26 = Z/z; digit splits: the digit)."""
        root: str = ""
        """Folder with the EMNIST IDX files (or its gzip/ folder); empty = $BENCHBOX_DATA/emnist."""
        split: Literal["balanced", "byclass", "bymerge", "digits", "letters", "mnist"] = "letters"
        """Which EMNIST split to read."""
        keep_blank: bool = False
        """letters only: keep images labelled 0 (the N/A class of some copies) as a class instead of dropping them."""

    def load(self, seed: int) -> Splits:
        cfg = self.config
        if cfg.split not in SPLITS:
            raise ConfigError(f"emnist: --dataset.split must be one of {', '.join(SPLITS)}, got {cfg.split!r}")
        root = resolve_root(cfg.root, "emnist", "emnist", f"emnist-{cfg.split}-*-ubyte[.gz] files")
        tr_x, tr_y, te_x, te_y = read_split(find_files(root, cfg.split), cfg.split)
        if cfg.split == "letters" and not cfg.keep_blank and (not tr_y.all() or not te_y.all()):
            keep_tr, keep_te = tr_y != 0, te_y != 0
            tr_x, tr_y, te_x, te_y = tr_x[keep_tr], tr_y[keep_tr], te_x[keep_te], te_y[keep_te]
        splits = one_class_splits(cfg, seed, "emnist", tr_x, tr_y, 255.0, te_x, te_y)
        name = class_names(cfg.split)[cfg.normal_class]  # a valid label: checked by one_class_splits
        # category: the class's character(s), e.g. "Aa" for letters label 1 (the label stays in the config)
        return dataclasses.replace(splits, category=name, info={**splits.info, "split": cfg.split})
