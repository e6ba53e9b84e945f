"""A decode cache: arrays stored as ``.npz`` (never pickled), keyed by what produced them.

The key hashes the file list with each file's size and modification time plus the decoding
options, so any change to the data or the options is a cache miss and a rerun with the same
inputs decodes nothing. Files live in ``$BENCHBOX_CACHE`` (default ``~/.cache/benchbox``) under
``datasets/``; they are written to a temporary name and renamed, so a crash leaves no torn file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from benchbox.io import atomic_write_bytes

FORMAT = 1


def cache_dir() -> Path:
    base = os.environ.get("BENCHBOX_CACHE") or Path.home() / ".cache" / "benchbox"
    return Path(base).expanduser() / "datasets"


def file_key(paths: Iterable[Path | None], options: dict[str, Any]) -> str:
    """Hash of (path, size, mtime) for every file (``None`` entries count too) and the options."""
    entries = []
    for p in paths:
        if p is None:
            entries.append(None)
            continue
        st = p.stat()
        entries.append([str(p.resolve()), st.st_size, st.st_mtime_ns])
    blob = json.dumps({"format": FORMAT, "files": entries, "options": options}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def cached(name: str, key: str, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Load ``<name>-<key>.npz`` if present, else ``build()`` the arrays and store them."""
    path = cache_dir() / f"{name}-{key}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as npz:
                return {k: npz[k] for k in npz.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            pass  # unreadable cache entry: rebuild it
    arrays = build()
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buf.getvalue())  # temp file + rename, removed on any failure
    except OSError:
        pass  # a read-only cache only costs speed
    return arrays
