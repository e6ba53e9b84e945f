"""Stage cache: same numbers as an uncached run, reuse across cells, atomic and verified artifacts."""

from __future__ import annotations

import os

import pytest
import torch

from benchbox import registry
from benchbox.cache import MAGIC, StageCache, loads, stage_keys
from benchbox.config import AugmentConfig, CellSpec, RunOptions
from benchbox.runner import run_cell

from conftest import tiny_config


def spec(tmp_path, generator="ae", policy="random", detector="ae", seed=0, ratio=0.5):
    return CellSpec.of(
        dataset="digits",
        generator=(generator, tiny_config(registry.load("generators", generator), epochs=1)),
        policy=(policy, tiny_config(registry.load("policies", policy))),
        detector=(detector, tiny_config(registry.load("detectors", detector), epochs=1)),
        augment=AugmentConfig(ratio=ratio),
        run=RunOptions(seed=seed, device="cpu", out=str(tmp_path / "runs")),
    )


def test_cached_run_gives_the_uncached_numbers(tmp_path):
    cache = StageCache(tmp_path / "cache")
    plain = run_cell(spec(tmp_path), write=False)
    first = run_cell(spec(tmp_path), write=False, cache=cache)
    second = run_cell(spec(tmp_path), write=False, cache=cache)
    assert plain["metrics"] == first["metrics"] == second["metrics"]
    assert {s: v["status"] for s, v in first["cache"].items()} == {"generator": "miss", "policy": "miss", "augment": "miss"}
    assert {s: v["status"] for s, v in second["cache"].items()} == {"generator": "hit", "policy": "hit", "augment": "hit"}
    assert "cache" not in plain


def test_keys_chain_through_inputs(tmp_path):
    a = stage_keys(spec(tmp_path), "cpu")
    b = stage_keys(spec(tmp_path, detector="transformer"), "cpu")
    c = stage_keys(spec(tmp_path, policy="none"), "cpu")
    d = stage_keys(spec(tmp_path, ratio=1.0), "cpu")
    e = stage_keys(spec(tmp_path, seed=1), "cpu")
    assert a == b  # the detector is not part of any cached stage
    assert a["generator"] == c["generator"] and a["policy"] != c["policy"] and a["augment"] != c["augment"]
    assert a["policy"] == d["policy"] and a["augment"] != d["augment"]
    assert all(a[k] != e[k] for k in a)
    assert stage_keys(spec(tmp_path), "cuda")["generator"] != a["generator"]


def test_generator_reused_by_other_policy_and_detector(tmp_path):
    cache = StageCache(tmp_path / "cache")
    run_cell(spec(tmp_path, policy="none"), write=False, cache=cache)
    r = run_cell(spec(tmp_path, policy="random", detector="transformer"), write=False, cache=cache)
    assert r["cache"]["generator"]["status"] == "hit" and r["cache"]["policy"]["status"] == "miss"


def test_truncated_or_tampered_artifact_is_recomputed(tmp_path):
    cache = StageCache(tmp_path / "cache")
    s = spec(tmp_path)
    ref = run_cell(s, write=False, cache=cache)
    path = cache.path("generator", ref["cache"]["generator"]["key"])
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])  # truncated
    r = run_cell(s, write=False, cache=cache)
    assert r["cache"]["generator"]["status"] == "recomputed" and r["metrics"] == ref["metrics"]
    assert path.read_bytes() == blob
    # a flipped payload byte keeps the size but fails the sha256 check
    bad = bytearray(blob)
    bad[-10] ^= 0xFF
    path.write_bytes(bytes(bad))
    value, status = cache.load("generator", ref["cache"]["generator"]["key"])
    assert value is None and status.startswith("bad") and "sha256" in status and not path.exists()
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_load_refuses_arbitrary_code():
    import io

    buf = io.BytesIO()
    torch.save({"x": _Evil()}, buf)
    with pytest.raises(Exception, match="outside the allowed packages"):
        loads(buf.getvalue())
    # a function inside an allowed package is refused too: only classes may be rebuilt
    from benchbox.io import atomic_write_text

    buf = io.BytesIO()
    torch.save({"f": _Call(atomic_write_text, ("/tmp/x", "y"))}, buf)
    with pytest.raises(Exception, match="not a class"):
        loads(buf.getvalue())


class _Call:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


def test_artifact_stored_under_another_key_is_refused(tmp_path):
    cache = StageCache(tmp_path)
    assert cache.save("augment", "a", {"x": torch.ones(3)})
    cache.path("augment", "b").write_bytes(cache.path("augment", "a").read_bytes())
    value, status = cache.load("augment", "b")
    assert value is None and "another artifact" in status
    value, status = cache.load("augment", "a")
    assert status == "hit" and torch.equal(value["x"], torch.ones(3))
    assert cache.path("augment", "a").read_bytes().startswith(MAGIC)


def test_unstorable_value_is_computed_not_cached(tmp_path):
    cache = StageCache(tmp_path / "cache")
    value, status = cache.fetch("policy", "k1", lambda: {"f": _Evil()})
    assert status == "unstorable" and not cache.exists("policy", "k1")
