"""cifar10 (binary release) and emnist (IDX files) on fixtures written in the exact on-disk formats."""

from __future__ import annotations

import gzip
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from benchbox import registry
from benchbox.cli import main
from benchbox.errors import ConfigError, DataError
from test_contracts import check_dataset_contract
from test_datasets import write_idx

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
TINY_RUN = ["--generator.epochs", "1", "--generator.base-channels", "8", "--detector.epochs", "1",
            "--detector.dim", "32", "--detector.depth", "1", "--detector.heads", "2", "--detector.score-rounds", "1",
            "--device", "cpu", "--policy", "none"]


@pytest.fixture(autouse=True)
def private_env(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHBOX_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("BENCHBOX_DATA", raising=False)


def one_line(exc_type, ds) -> str:
    with pytest.raises(exc_type) as info:
        ds.load(0)
    msg = str(info.value)
    assert msg and "\n" not in msg
    return msg


# ------------------------------------------------------------------------------------ CIFAR-10


def cifar_record(label: int, hwc: np.ndarray) -> bytes:
    """One record of the binary release: label byte, then the R, G and B planes (row-major)."""
    return bytes([label]) + b"".join(hwc[:, :, c].astype(np.uint8).tobytes() for c in range(3))


def make_cifar(root: Path, per_batch: int = 10, n_test: int = 20, folder: str = "cifar-10-batches-bin"):
    """The binary layout with ``per_batch`` records per training batch; returns the test images (HWC)."""
    rng = np.random.default_rng(0)
    d = root / folder
    d.mkdir(parents=True, exist_ok=True)
    (d / "batches.meta.txt").write_text("\n".join(NAMES) + "\n\n")  # the release ends in blank lines
    counter = 0
    for name, n in [(f"data_batch_{i}.bin", per_batch) for i in range(1, 6)] + [("test_batch.bin", n_test)]:
        images = rng.integers(0, 256, size=(n, 32, 32, 3))
        images[:, 0, 0, 0] = np.arange(counter, counter + n) % 256  # every image unique
        counter += n
        labels = np.arange(n) % 10
        (d / name).write_bytes(b"".join(cifar_record(int(y), x) for y, x in zip(labels, images)))
        if name == "test_batch.bin":
            return images, labels


def cifar(root: Path, **options):
    return registry.create("datasets", "cifar10", root=str(root), **options)


def test_cifar_contract_and_protocol(tmp_path):
    test_x, test_y = make_cifar(tmp_path)
    ds = cifar(tmp_path, normal_class=3, val_fraction=0.2)
    check_dataset_contract(ds)
    s = ds.load(0)
    assert s.train.shape[1:] == (3, 32, 32) and s.category == "cat"
    assert len(s.train) + len(s.val) == 5  # one "cat" per training batch
    assert len(s.test) == 20 and int((s.test.labels == 0).sum()) == 2  # the official test batch, whole
    expect = torch.from_numpy(test_x.astype(np.float32) / 255).permute(0, 3, 1, 2)
    assert torch.allclose(s.test.images, expect)
    assert torch.equal(s.test.labels, torch.from_numpy((test_y != 3).astype(np.int64)))
    assert not torch.equal(s.train, ds.load(1).train)  # the seed shuffles train/val


def test_cifar_plane_order(tmp_path):
    """Hand-written record: R plane marks (row 0, col 1), G is flat 128, B is empty."""
    make_cifar(tmp_path)
    red = np.zeros((32, 32), np.uint8)
    red[0, 1] = 255
    record = bytes([5]) + red.tobytes() + bytes([128]) * 1024 + bytes(1024)
    test = tmp_path / "cifar-10-batches-bin" / "test_batch.bin"
    test.write_bytes(record + test.read_bytes()[3073:])
    img = cifar(tmp_path).load(0).test.images[0]
    assert img[0, 0, 1] == 1.0 and img[0, 1, 0] == 0.0 and img[0].sum() == 1.0
    assert torch.allclose(img[1], torch.full((32, 32), 128 / 255)) and img[2].sum() == 0


def test_cifar_root_is_the_folder_itself(tmp_path):
    make_cifar(tmp_path)
    a = cifar(tmp_path).load(0)
    b = cifar(tmp_path / "cifar-10-batches-bin").load(0)
    assert torch.equal(a.train, b.train) and torch.equal(a.test.images, b.test.images)


class _Trap:
    """Unpickling this creates a file: proof that a pickled batch is never unpickled."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


@pytest.mark.parametrize("where", ["cifar-10-batches-py", "."])
def test_cifar_pickled_release_refused(tmp_path, where):
    folder = tmp_path / where
    folder.mkdir(exist_ok=True)
    marker = tmp_path / "unpickled"
    batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1], b"trap": _Trap(marker)}
    (folder / "data_batch_1").write_bytes(pickle.dumps(batch))
    msg = one_line(DataError, cifar(tmp_path))
    assert "pickled Python release" in msg and "cifar-10-binary.tar.gz" in msg and str(folder.resolve().name) in msg
    assert not marker.exists()
    make_cifar(tmp_path)  # with the binary release next to it, the binary one is read
    assert len(cifar(tmp_path).load(0).test) == 20 and not marker.exists()


def test_cifar_truncated_and_bad_files(tmp_path):
    make_cifar(tmp_path)
    d = tmp_path / "cifar-10-batches-bin"
    batch = d / "data_batch_3.bin"
    good = batch.read_bytes()
    batch.write_bytes(good[:-100])
    msg = one_line(DataError, cifar(tmp_path))
    assert str(batch) in msg and "multiple of 3,073" in msg
    batch.write_bytes(b"")
    assert str(batch) in one_line(DataError, cifar(tmp_path))
    bad = bytearray(good)
    bad[2 * 3073] = 12  # label byte of record 2
    batch.write_bytes(bytes(bad))
    msg = one_line(DataError, cifar(tmp_path))
    assert str(batch) in msg and "record 2 has label byte 12" in msg
    batch.write_bytes(good)
    (d / "batches.meta.txt").write_text("\n".join(NAMES[:9]))
    assert "lists 9 class names, expected 10" in one_line(DataError, cifar(tmp_path))
    (d / "batches.meta.txt").write_text("\n".join(NAMES))
    (d / "test_batch.bin").unlink()
    assert "test_batch.bin is missing" in one_line(DataError, cifar(tmp_path))


def test_cifar_bad_roots(tmp_path):
    assert "is not a folder" in one_line(DataError, cifar(tmp_path / "nope"))
    assert "holds no CIFAR-10 binary batches" in one_line(DataError, cifar(tmp_path))
    (tmp_path / "cifar-10-binary.tar.gz").write_bytes(b"\x1f\x8b")
    assert "is not extracted" in one_line(DataError, cifar(tmp_path))
    assert "set BENCHBOX_DATA" in one_line(DataError, registry.create("datasets", "cifar10"))
    make_cifar(tmp_path)
    msg = one_line(ConfigError, cifar(tmp_path, normal_class=10))
    assert "normal-class 10" in msg and "3 cat" in msg


def test_cifar_root_from_environment(tmp_path, monkeypatch):
    make_cifar(tmp_path / "cifar10")
    monkeypatch.setenv("BENCHBOX_DATA", str(tmp_path))
    assert len(registry.create("datasets", "cifar10").load(0).test) == 20


# --------------------------------------------------------------------------------------- EMNIST

# an asymmetric upright pattern (an "L" with a dot top right): its transpose differs
UPRIGHT = np.zeros((28, 28), np.uint8)
UPRIGHT[3:22, 5] = 255
UPRIGHT[21, 5:18] = 200
UPRIGHT[2, 24] = 100


def make_emnist(root: Path, split: str = "letters", sub: str = "gzip", compress: bool = True,
                n_train: int = 78, n_test: int = 52, blanks: int = 0):
    """IDX files as released, images stored transposed; returns the upright test images and labels."""
    rng = np.random.default_rng(1)
    folder = root / sub
    folder.mkdir(parents=True, exist_ok=True)
    n_classes, first = (26, 1) if split == "letters" else (10, 0)
    ext = ".gz" if compress else ""
    out = {}
    for part, n in (("train", n_train), ("test", n_test)):
        y = np.arange(n) % n_classes + first
        y[:blanks] = 0  # the N/A class of some redistributions
        x = rng.integers(0, 256, size=(n, 28, 28)).astype(np.uint8)
        x[:, 0, 0] = np.arange(n)  # unique
        if part == "test":
            x[1] = UPRIGHT
        write_idx(folder / f"emnist-{split}-{part}-images-idx3-ubyte{ext}", x.transpose(0, 2, 1), compress)
        write_idx(folder / f"emnist-{split}-{part}-labels-idx1-ubyte{ext}", y, compress)
        out[part] = (x, y)
    return out


def emnist(root: Path, **options):
    return registry.create("datasets", "emnist", root=str(root), **options)


def test_emnist_contract_and_protocol(tmp_path):
    raw = make_emnist(tmp_path)
    ds = emnist(tmp_path, normal_class=2, val_fraction=0.34)
    check_dataset_contract(ds)
    s = ds.load(0)
    assert s.train.shape[1:] == (1, 28, 28) and s.category == "Bb"
    assert (len(s.train), len(s.val)) == (2, 1)  # three "b" training images
    x, y = raw["test"]
    assert torch.allclose(s.test.images[:, 0], torch.from_numpy(x.astype(np.float32) / 255))
    assert torch.equal(s.test.labels, torch.from_numpy((y != 2).astype(np.int64)))


def test_emnist_orientation_upright(tmp_path):
    make_emnist(tmp_path)
    img = emnist(tmp_path, normal_class=2).load(0).test.images[1, 0]  # test image 1 is the pattern
    assert torch.equal(img, torch.from_numpy(UPRIGHT.astype(np.float32) / 255))
    assert not torch.equal(img, img.T)  # the pattern is asymmetric, so a missed transpose would show
    assert img[10, 5] == 1.0 and img[5, 10] == 0.0  # vertical bar on the left, as drawn


@pytest.mark.parametrize("sub,compress", [(".", True), ("gzip", True), ("EMNIST/raw", False)])
def test_emnist_layouts(tmp_path, sub, compress):
    raw = make_emnist(tmp_path, split="digits", sub=sub, compress=compress, n_train=40, n_test=20)
    s = emnist(tmp_path, split="digits", normal_class=0, val_fraction=0.25).load(0)
    assert (len(s.train), len(s.val), len(s.test)) == (3, 1, 20) and s.category == "0"
    assert torch.equal(s.test.images[:, 0], torch.from_numpy(raw["test"][0].astype(np.float32) / 255))


def test_emnist_blank_class(tmp_path):
    make_emnist(tmp_path, blanks=4)
    dropped = emnist(tmp_path, normal_class=5).load(0)
    assert len(dropped.test) == 48  # 52 test images, the 4 blanks dropped
    kept = emnist(tmp_path, normal_class=5, keep_blank=True).load(0)
    assert len(kept.test) == 52 and int(kept.test.labels[:4].sum()) == 4  # blanks are anomalies of class 5
    assert "normal-class 0" in one_line(ConfigError, emnist(tmp_path, normal_class=0))
    assert emnist(tmp_path, normal_class=0, keep_blank=True).load(0).category == "N/A"


def test_emnist_bad_files(tmp_path):
    make_emnist(tmp_path, compress=False, sub=".")
    images = tmp_path / "emnist-letters-train-images-idx3-ubyte"
    good = images.read_bytes()
    images.write_bytes(good[:-50])
    msg = one_line(DataError, emnist(tmp_path))
    assert str(images) in msg and "truncated" in msg
    images.write_bytes(good)
    labels = tmp_path / "emnist-letters-test-labels-idx1-ubyte"
    write_idx(labels, np.full(52, 30), compress=False)
    msg = one_line(DataError, emnist(tmp_path))
    assert str(labels) in msg and "label 30" in msg and "0..26" in msg
    write_idx(labels, np.ones(51), compress=False)
    assert "has 52 images but emnist-letters-test-labels-idx1-ubyte has 51" in one_line(DataError, emnist(tmp_path))


def test_emnist_truncated_gzip(tmp_path):
    make_emnist(tmp_path)
    gz = tmp_path / "gzip" / "emnist-letters-test-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:-30])
    msg = one_line(DataError, emnist(tmp_path))
    assert str(gz) in msg and "cannot read IDX file" in msg


def test_emnist_bad_roots(tmp_path):
    assert "is not a folder" in one_line(DataError, emnist(tmp_path / "nope"))
    make_emnist(tmp_path, split="digits", n_train=20, n_test=10)
    msg = one_line(DataError, emnist(tmp_path))  # letters asked for, only digits there
    assert "no EMNIST 'letters' IDX files" in msg and "holds the splits: digits" in msg
    with pytest.raises(ConfigError, match="option 'split' must be one of 'balanced'"):
        emnist(tmp_path, split="bogus")
    assert "set BENCHBOX_DATA" in one_line(DataError, registry.create("datasets", "emnist"))
    gz = tmp_path / "gzip" / "emnist-digits-train-labels-idx1-ubyte.gz"
    gz.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + bytes(16)))  # a 3-d file where labels belong
    assert "expected an IDX file with 1 dimensions" in one_line(DataError, emnist(tmp_path, split="digits"))


# ----------------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("name", ["cifar10", "emnist"])
def test_full_run(tmp_path, name, capsys):
    if name == "cifar10":
        make_cifar(tmp_path / "data", per_batch=20, n_test=30)
        opts = ["--dataset.normal-class", "3"]
    else:
        make_emnist(tmp_path / "data", n_train=130, n_test=52)
        opts = ["--dataset.normal-class", "1"]
    code = main(["run", "--dataset", name, "--dataset.root", str(tmp_path / "data"), *opts, *TINY_RUN,
                 "--out", str(tmp_path / "runs")])
    assert code == 0, capsys.readouterr().err
    (run,) = list((tmp_path / "runs").iterdir())
    result = json.loads((run / "result.json").read_text())
    # the fixture's noise images carry no anomaly signal (AUROC ~0.35 here): check the split instead --
    # cifar: 10 class-3 training images (9 train + 1 val), 3 of 30 test images normal; emnist: 5 of
    # class 1 (4 + 1), 2 of 52 test images normal
    expected = {"cifar10": (9, 1, 30, 27), "emnist": (4, 1, 52, 50)}[name]
    data = result["data"]
    assert (data["n_train"], data["n_val"], data["n_test"], data["n_test_anomalous"]) == expected, data
    assert isinstance(result["metrics"]["image_auroc"], float)
    assert result["data"]["category"] == ("cat" if name == "cifar10" else "Aa")
    assert result["config"]["dataset"]["root"] == str(tmp_path / "data")


def test_full_run_rejects_pickled_cifar_in_one_line(tmp_path, capsys):
    (tmp_path / "cifar-10-batches-py").mkdir()
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(pickle.dumps({b"labels": [0]}))
    code = main(["run", "--dataset", "cifar10", "--dataset.root", str(tmp_path), *TINY_RUN,
                 "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "cifar-10-binary.tar.gz" in err and "Traceback" not in err
