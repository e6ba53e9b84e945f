"""The results-row store: one JSON line per finished cell, shared by ``benchbox grid`` and ``leaderboard``.

A row is the dict :func:`benchbox.runner.run_cell` returns (or a ``failed`` row from
:mod:`benchbox.backends`); it is keyed by ``config_hash``, the hash of the cell's resolved config.

* :func:`append_row` appends one line under an exclusive ``fcntl`` lock with ``O_APPEND``, one
  ``write`` and ``fsync``, so several workers or grids writing the same file lose no rows; a torn
  tail left by a killed writer is closed with a newline first.
* :func:`read_rows` returns every parseable row and the count of torn or unreadable lines it skipped.
* :func:`latest_rows` keeps the last row per cell, so a retried failure is superseded by its rerun.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any


def append_row(path: str | os.PathLike, row: dict[str, Any]) -> None:
    """Append one JSON line atomically: O_APPEND, one write, fsync, under an exclusive flock."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(row, default=str, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size:  # a writer killed mid-line left a torn tail: start a fresh line
            with open(path, "rb") as fh:
                fh.seek(size - 1)
                if fh.read(1) != b"\n":
                    line = b"\n" + line
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)  # closing releases the lock


def read_rows(path: str | os.PathLike) -> tuple[list[dict[str, Any]], int]:
    """All parseable rows and the number of torn/unparseable lines that were ignored (no file: none)."""
    rows, bad = [], 0
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or "config_hash" not in row:
                raise ValueError
            rows.append(row)
        except ValueError:
            bad += 1
    return rows, bad


def latest_rows(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last row of each cell (config hash): a retried failure is superseded by its rerun."""
    return {r["config_hash"]: r for r in rows}
