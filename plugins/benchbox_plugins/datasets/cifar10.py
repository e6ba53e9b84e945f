"""CIFAR-10 under the one-class protocol, read from the official binary release.

The binary release (``cifar-10-binary.tar.gz``) extracts to ``cifar-10-batches-bin/`` holding
``data_batch_1.bin`` .. ``data_batch_5.bin`` (the 50,000 training images), ``test_batch.bin``
(10,000) and ``batches.meta.txt`` (the ten class names, one per line). Each record is one label
byte (0..9) followed by 3,072 pixel bytes: the red, green and blue 32x32 planes, row-major.

The pickled Python release (``cifar-10-batches-py/``) is never read: unpickling executes code.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from benchbox.errors import ConfigError, DataError
from benchbox.interfaces import Dataset, Splits
from benchbox_plugins.datasets.base.folders import resolve_root
from benchbox_plugins.datasets.base.oneclass import OneClassConfig, one_class_splits

SIDE = 32
RECORD = 1 + 3 * SIDE * SIDE  # 3,073 bytes: label, then the R, G and B planes
FOLDER = "cifar-10-batches-bin"
TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST = "test_batch.bin"
META = "batches.meta.txt"
EXPECTED = f"{FOLDER}/ with {', '.join(TRAIN[:1])} .. {TRAIN[-1]}, {TEST}, {META} (from cifar-10-binary.tar.gz)"
_GET = "get the binary release cifar-10-binary.tar.gz (https://www.cs.toronto.edu/~kriz/cifar.html) and extract it"


def find_folder(root: Path) -> Path:
    """``root/cifar-10-batches-bin`` or ``root`` itself; a pickled or unextracted release is refused."""
    if not root.is_dir():
        raise DataError(f"cifar10: --dataset.root {root} is not a folder")
    for folder in (root / FOLDER, root):
        if (folder / TRAIN[0]).is_file():
            return folder
    for folder in (root / "cifar-10-batches-py", root):
        if (folder / "data_batch_1").is_file() or (folder / "batches.meta").is_file():
            raise DataError(f"cifar10: {folder} is the pickled Python release, which benchbox never reads "
                            f"(unpickling runs code); {_GET} ({FOLDER}/)")
    if (root / "cifar-10-binary.tar.gz").is_file():
        raise DataError(f"cifar10: {root / 'cifar-10-binary.tar.gz'} is not extracted; run "
                        f"'tar xzf cifar-10-binary.tar.gz' in {root} (it creates {FOLDER}/)")
    raise DataError(f"cifar10: {root} holds no CIFAR-10 binary batches; expected {EXPECTED}")


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One ``*.bin`` batch -> ``N x 32 x 32 x 3`` uint8 images (a view) and ``N`` labels."""
    if not path.is_file():
        raise DataError(f"cifar10: {path} is missing; expected {EXPECTED}")
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % RECORD:
        raise DataError(f"cifar10: {path} holds {raw.size} bytes, not a positive multiple of {RECORD:,} "
                        f"(1 label byte + 3,072 pixel bytes per record): truncated, or not the CIFAR-10 binary release")
    records = raw.reshape(-1, RECORD)
    labels = records[:, 0]
    bad = np.flatnonzero(labels > 9)
    if bad.size:
        raise DataError(f"cifar10: {path} record {int(bad[0])} has label byte {int(labels[bad[0]])}, expected 0..9 "
                        f"({bad.size} such records): not a CIFAR-10 binary batch")
    images = records[:, 1:].reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1)
    return images, labels.copy()


def read_class_names(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"cifar10: {path} is missing; expected {EXPECTED}")
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cifar10: cannot read {path} ({exc})") from None
    if len(names) != 10:
        raise DataError(f"cifar10: {path} lists {len(names)} class names, expected 10 (one per line)")
    return names


def read_cifar10(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    names = read_class_names(folder / META)
    batches = [read_batch(folder / name) for name in TRAIN]
    train_x = np.concatenate([x for x, _ in batches])  # N x H x W x C
    train_y = np.concatenate([y for _, y in batches])
    test_x, test_y = read_batch(folder / TEST)
    return train_x, train_y, test_x, test_y, names


class CIFAR10(Dataset):
    """CIFAR-10, one class normal, from the official binary release in --dataset.root."""

    requires_root: ClassVar[bool] = True

    @dataclass
    class Config(OneClassConfig):
        root: str = ""
        """Folder holding cifar-10-batches-bin/ (or that folder itself); empty = $BENCHBOX_DATA/cifar10."""

    def load(self, seed: int) -> Splits:
        root = resolve_root(self.config.root, "cifar10", "cifar10", EXPECTED)
        train_x, train_y, test_x, test_y, names = read_cifar10(find_folder(root))
        k = self.config.normal_class
        if not 0 <= k < len(names):
            classes = ", ".join(f"{i} {n}" for i, n in enumerate(names))
            raise ConfigError(f"cifar10: --dataset.normal-class {k} is not a class; classes: {classes}")
        splits = one_class_splits(self.config, seed, "cifar10", train_x, train_y, 255.0, test_x, test_y)
        return dataclasses.replace(splits, category=names[k])  # the class name from batches.meta.txt
