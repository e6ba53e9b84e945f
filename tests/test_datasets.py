"""The one-class protocol and the MNIST IDX reader on fixtures written in the exact format."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from benchbox import registry
from benchbox.errors import ConfigError, DataError


def write_idx(path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    blob = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(blob) if compress else blob)


def make_mnist_root(root, n_train=60, n_test=30, compress=True, sub="."):
    rng = np.random.default_rng(0)
    folder = root / sub
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if compress else ""
    labels = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        y = np.arange(n) % 10
        x = rng.integers(0, 256, size=(n, 28, 28))
        x[:, 0, 0] = np.arange(n)  # make every image unique
        write_idx(folder / f"{split}-images-idx3-ubyte{ext}", x, compress)
        write_idx(folder / f"{split}-labels-idx1-ubyte{ext}", y, compress)
        labels[split] = (x, y)
    return labels


@pytest.mark.parametrize("compress,sub", [(True, "."), (False, "MNIST/raw")])
def test_mnist_idx_root(tmp_path, compress, sub):
    raw = make_mnist_root(tmp_path, compress=compress, sub=sub)
    s = registry.create("datasets", "mnist", root=str(tmp_path), normal_class=3, val_fraction=0.5).load(0)
    assert len(s.train) + len(s.val) == 6  # the 6 training images of class 3
    assert len(s.test) == 30 and int((s.test.labels == 0).sum()) == 3  # official test split kept whole
    x, y = raw["t10k"]
    expect = torch.from_numpy(x.astype(np.float32) / 255).unsqueeze(1)
    assert torch.allclose(s.test.images, expect)
    assert torch.equal(s.test.labels, torch.from_numpy((y != 3).astype(np.int64)))


def test_mnist_idx_errors_name_the_file(tmp_path):
    make_mnist_root(tmp_path, compress=False)
    bad = tmp_path / "train-images-idx3-ubyte"
    bad.write_bytes(bad.read_bytes()[:-100])
    with pytest.raises(DataError, match="train-images-idx3-ubyte.*truncated"):
        registry.create("datasets", "mnist", root=str(tmp_path)).load(0)
    bad.write_bytes(b"\x00\x00\x09\x03" + bytes(20))
    with pytest.raises(DataError, match="train-images-idx3-ubyte.*magic"):
        registry.create("datasets", "mnist", root=str(tmp_path)).load(0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty holds no MNIST IDX files"):
        registry.create("datasets", "mnist", root=str(tmp_path / "empty")).load(0)
    with pytest.raises(DataError, match="is not a folder"):
        registry.create("datasets", "mnist", root=str(tmp_path / "missing")).load(0)


def test_embedded_mnist_protocol():
    ds = registry.create("datasets", "mnist", normal_class=7)
    s = ds.load(0)
    assert s.train.shape[1:] == (1, 28, 28)
    assert (len(s.train), len(s.val)) == (270, 30)  # 500 sevens: 200 to test, 10% of the rest to val
    assert int((s.test.labels == 0).sum()) == 200 and int(s.test.labels.sum()) == 4500
    other = ds.load(1)
    assert not torch.equal(s.train, other.train)  # seed changes the split
    limited = registry.create("datasets", "mnist", normal_class=7, train_limit=50).load(0)
    assert len(limited.train) == 50 and torch.equal(limited.train, s.train[:50])
    assert torch.equal(limited.test.images, s.test.images)  # same test split in the low-data regime


def test_image_size_option():
    s = registry.create("datasets", "digits", image_size=16).load(0)
    assert s.train.shape[-2:] == (16, 16) and s.train.max() <= 1 and s.train.min() >= 0


@pytest.mark.parametrize("opts,match", [
    ({"normal_class": 11}, "normal-class 11"),
    ({"val_fraction": 1.5}, "option 'val_fraction' expects a number in"),
    ({"train_limit": -1}, "option 'train_limit' expects an integer >= 0"),
])
def test_bad_protocol_options(opts, match):
    with pytest.raises(ConfigError, match=match):
        registry.create("datasets", "digits", **opts).load(0)
