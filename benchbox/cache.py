"""Stage cache of a grid: a fitted generator, a fitted policy and an augmented set, each stored once.

Keys
----
Each stage's artifact is keyed by the hash of its own config, the code it ran and the keys of its
inputs::

    generator = H(dataset config, generator config, seed, device type, code: benchbox + dataset + generator)
    policy    = H(generator key, policy config, code: benchbox + policy)
    augment   = H(policy key, augment config, code: benchbox)

(the code fingerprint of :mod:`benchbox.fingerprint`: benchbox's version and the source hash or
release of each plugin), so an edit to a plugin's source makes exactly the stages that ran it
miss, and reverting the edit finds the old artifacts again.

so a generator is trained once per (dataset, generator config, seed) and reused by every policy
and detector cell that shares it; a policy once per (that, policy config); the augmented set
(generated images, their source indices and dz, and the generation metrics) once per (that,
augment config). Detectors are never cached: they are what a cell measures.

What is stored, and why loading is safe
---------------------------------------
The generator and policy artifacts are the fitted plugin objects themselves, written with
``torch.save``: downstream stages need them live (a policy such as PPO decodes through the
generator while it trains; ``augment`` decodes ``z + dz``), so caching only their outputs would
force a generator retrain for every policy. They are read back with ``torch.load(weights_only=True)``
-- torch's restricted unpickler, which rebuilds tensors and plain containers but no arbitrary
objects -- plus an allow-list computed per file: every global the file references must be a
*class* from ``torch``, ``benchbox`` or an installed plugin's package (or ``builtins.getattr``,
which pickle uses for nested ``Config`` classes and which can only fetch attributes, not call
them). A file referencing anything else (``os.system``, a function, a foreign module) is
refused and recomputed. The augmented set is tensors and floats only.

Integrity: an artifact file is ``MAGIC + JSON header (stage, key, size, sha256) + payload``, written
to a temporary file and renamed into place (see :mod:`benchbox.io`). On load the header's key,
size and sha256 are checked; a truncated, corrupt or mismatching file is deleted and recomputed,
never trusted. A ``<key>.lock`` file (``fcntl.flock``) makes a second worker that wants the same
artifact wait for the first instead of computing it twice.

Folder: ``--cache-dir``, else ``$BENCHBOX_CACHE``, else ``~/.cache/benchbox``; grid artifacts live
in its ``stages/`` subfolder (``$BENCHBOX_CACHE`` itself also holds the feature-extractor cache).
For a multi-node Ray cluster, point it at a shared filesystem.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import importlib
import io
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from .config import CellSpec, config_hash, to_dict
from .io import atomic_write_bytes

MAGIC = b"BBXSTAGE1\n"
STAGE_NAMES = ("generator", "policy", "augment")
_ALLOWED_PREFIXES = ("torch.", "benchbox.")  # + the packages of the registered plugins (_plugin_prefixes)
_ALLOWED_EXTRA = {"builtins.getattr"}


def default_root(cache_dir: str | os.PathLike | None = None) -> Path:
    root = cache_dir or os.environ.get("BENCHBOX_CACHE") or Path.home() / ".cache" / "benchbox"
    return Path(root).expanduser() / "stages"


def stage_keys(spec: CellSpec, device_type: str) -> dict[str, str]:
    """The cache keys of a cell's three cached stages (see the module docstring)."""
    from .fingerprint import cell_code, stage_code

    cfg = spec.resolved()
    code = stage_code(cell_code(spec))
    gen = config_hash({"stage": "generator", "dataset": cfg["dataset"], "generator": cfg["generator"],
                       "seed": spec.run.seed, "device": device_type, "code": code["generator"]}, length=24)
    pol = config_hash({"stage": "policy", "generator": gen, "policy": cfg["policy"], "code": code["policy"]}, length=24)
    aug = config_hash({"stage": "augment", "policy": pol, "augment": to_dict(spec.augment), "code": code["augment"]},
                      length=24)
    return {"generator": gen, "policy": pol, "augment": aug}


@functools.lru_cache(maxsize=1)
def _plugin_prefixes() -> tuple[str, ...]:
    """Top-level packages of every registered plugin, first- and third-party alike, from the entry points."""
    from . import registry

    return tuple(f"{package}." for package in registry.plugin_packages())


class UnsafeArtifact(Exception):
    pass


def _allowed_globals(payload: bytes) -> list[Any]:
    from torch.serialization import get_unsafe_globals_in_checkpoint

    names = get_unsafe_globals_in_checkpoint(io.BytesIO(payload))
    prefixes = _ALLOWED_PREFIXES + _plugin_prefixes()
    objs: list[Any] = []
    for name in names:
        if name in _ALLOWED_EXTRA:
            objs.append(getattr(importlib.import_module("builtins"), name.split(".")[1]))
            continue
        if not name.startswith(prefixes):
            raise UnsafeArtifact(f"references {name}, outside the allowed packages")
        module, _, attr = name.rpartition(".")
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        if not isinstance(obj, type):
            raise UnsafeArtifact(f"references {name}, which is not a class")
        objs.append(obj)
        # classes nested in it (a plugin's ``Config``), reached through builtins.getattr
        objs += [v for v in vars(obj).values()
                 if isinstance(v, type) and v.__qualname__.startswith(obj.__qualname__ + ".")]
    return objs


def dumps(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def loads(payload: bytes) -> Any:
    """Restricted load: ``weights_only=True`` with the per-file allow-list described above."""
    with torch.serialization.safe_globals(_allowed_globals(payload)):
        return torch.load(io.BytesIO(payload), weights_only=True, map_location="cpu")


class StageCache:
    """Artifacts of one cache folder. ``fetch`` returns ``(value, status)``; status is
    ``"hit"``, ``"miss"`` (computed and stored), ``"recomputed"`` (a bad artifact was replaced)
    or ``"unstorable"`` (computed, but the value could not be written safely)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.events: list[tuple[str, str, str]] = []  # (stage, key, status), for tests and reports

    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / f"{key}.pt"

    def exists(self, stage: str, key: str) -> bool:
        return self.path(stage, key).is_file()

    @contextlib.contextmanager
    def _locked(self, stage: str, key: str) -> Iterator[None]:
        lock = self.root / stage / f"{key}.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        with open(lock, "a") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def load(self, stage: str, key: str) -> tuple[Any, str]:
        """``(value, "hit")``, ``(None, "absent")`` or ``(None, "bad: why")`` (the bad file is removed)."""
        path = self.path(stage, key)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return None, "absent"
        try:
            if not blob.startswith(MAGIC):
                raise ValueError("bad magic")
            head, sep, payload = blob[len(MAGIC):].partition(b"\n")
            if not sep:
                raise ValueError("no header")
            meta = json.loads(head)
            if meta.get("stage") != stage or meta.get("key") != key:
                raise ValueError("header names another artifact")
            if meta.get("size") != len(payload) or meta.get("sha256") != hashlib.sha256(payload).hexdigest():
                raise ValueError("size or sha256 mismatch (truncated or corrupt)")
            return loads(payload), "hit"
        except Exception as exc:  # never trust a bad artifact: drop it, the caller recomputes
            path.unlink(missing_ok=True)
            return None, f"bad: {type(exc).__name__}: {exc}"

    def save(self, stage: str, key: str, value: Any) -> bool:
        """Write atomically; ``False`` when the value cannot be stored in a safely loadable form."""
        try:
            payload = dumps(value)
            loads(payload)  # only store what load() will accept
        except Exception:
            return False
        head = json.dumps({"stage": stage, "key": key, "size": len(payload),
                           "sha256": hashlib.sha256(payload).hexdigest()}).encode()
        atomic_write_bytes(self.path(stage, key), MAGIC + head + b"\n" + payload)
        return True

    def fetch(self, stage: str, key: str, compute: Callable[[], Any]) -> tuple[Any, str]:
        value, status = self.load(stage, key)
        if status == "hit":
            self.events.append((stage, key, "hit"))
            return value, "hit"
        with self._locked(stage, key):  # another worker may be computing it right now
            value, status2 = self.load(stage, key)
            if status2 == "hit":
                self.events.append((stage, key, "hit"))
                return value, "hit"
            value = compute()
            stored = self.save(stage, key, value)
        result = "unstorable" if not stored else ("recomputed" if status.startswith("bad") else "miss")
        self.events.append((stage, key, result))
        return value, result
