"""Determinism, augmentation accounting and atomic run folders."""

from __future__ import annotations

import pytest

from benchbox import registry
from benchbox.config import AugmentConfig, CellSpec, RunOptions
from benchbox.runner import StageFailed, run_cell

from conftest import tiny_config


def spec(tmp_path, policy="random", seed=0, ratio=1.0, **det):
    return CellSpec.of(
        dataset="digits",
        generator=("ae", tiny_config(registry.load("generators", "ae"))),
        policy=policy,
        detector=("transformer", tiny_config(registry.load("detectors", "transformer"), **det)),
        augment=AugmentConfig(ratio=ratio),
        run=RunOptions(seed=seed, device="cpu", out=str(tmp_path)),
    )


def test_same_seed_same_numbers_on_cpu(tmp_path):
    a = run_cell(spec(tmp_path, seed=4), write=False)
    b = run_cell(spec(tmp_path, seed=4), write=False)
    c = run_cell(spec(tmp_path, seed=5), write=False)
    assert a["metrics"] == b["metrics"]
    assert a["metrics"]["image_auroc"] != c["metrics"]["image_auroc"]
    assert a["config_hash"] == b["config_hash"] != c["config_hash"]


def test_none_policy_adds_nothing_and_ratio_is_honoured(tmp_path):
    r_none = run_cell(spec(tmp_path, policy="none"), write=False)
    assert r_none["data"]["n_generated"] == 0
    r_rand = run_cell(spec(tmp_path, ratio=2.0), write=False)
    assert r_rand["data"]["n_generated"] == 2 * r_rand["data"]["n_train"]


def test_failed_stage_leaves_no_folder(tmp_path, monkeypatch):
    cls = registry.load("detectors", "transformer")

    def boom(self, images):
        raise RuntimeError("CUDA error: something deep inside torch\nsecond line")

    monkeypatch.setattr(cls, "score", boom)
    with pytest.raises(StageFailed) as exc:
        run_cell(spec(tmp_path))
    assert str(exc.value) == "stage 'score' failed: RuntimeError: CUDA error: something deep inside torch"
    assert list(tmp_path.iterdir()) == []


def test_diverging_training_names_stage_and_last_loss(tmp_path):
    s = spec(tmp_path)
    s["generator"].config.lr = 1e30
    with pytest.raises(StageFailed, match=r"fit generator.*loss became (nan|inf).*last finite loss"):
        run_cell(s, write=False)


def test_written_run_folder(tmp_path):
    r = run_cell(spec(tmp_path, seed=2))
    folder = tmp_path / r["id"]
    assert folder.is_dir() and (folder / "samples.png").stat().st_size > 1000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
