"""Reader for the IDX format of MNIST, Fashion-MNIST and EMNIST (optionally gzipped)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from benchbox.errors import DataError


def read_idx(path: Path, expect_dims: int) -> np.ndarray:
    """Read an unsigned-byte IDX file (``.gz`` or raw); the shape comes from its header.

    Every malformed case (bad magic, wrong rank, truncated or overlong payload, bad gzip) is a
    :class:`DataError` naming the file.
    """
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot read IDX file ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    if ndim != expect_dims:
        raise DataError(f"{path}: expected an IDX file with {expect_dims} dimensions, found {ndim}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    size = int(np.prod(shape))
    if len(raw) - header != size:
        raise DataError(f"{path}: IDX header promises {size} bytes of data, file holds {len(raw) - header} (truncated?)")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def find_file(root: Path, stem: str) -> Path | None:
    """``stem`` or ``stem.gz`` directly in ``root``."""
    for name in (stem, stem + ".gz"):
        if (root / name).is_file():
            return root / name
    return None


def find_idx_set(root: Path, subdirs: tuple[str, ...], stems: dict[str, str]) -> dict[str, Path] | None:
    """The first of ``root/<sub>`` (in order) that holds every file of ``stems`` (raw or ``.gz``)."""
    for sub in subdirs:
        files = {key: find_file(root / sub, stem) for key, stem in stems.items()}
        if all(files.values()):
            return files  # type: ignore[return-value]
    return None


def read_image_label_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """An ``N x H x W`` images file and its ``N`` labels file; a count mismatch names both files."""
    images, labels = read_idx(images_path, 3), read_idx(labels_path, 1)
    if len(images) != len(labels):
        raise DataError(f"{images_path} has {len(images)} images but {labels_path.name} has {len(labels)} labels")
    return images, labels
