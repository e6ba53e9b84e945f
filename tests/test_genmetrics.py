"""Generation-quality metrics on inputs whose answer is known by hand, the feature cache, the runner."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from benchbox import features, registry
from benchbox.config import AugmentConfig, CellSpec, RunOptions
from benchbox.errors import ConfigError, DataError
from benchbox.genmetrics import frechet_distance, frechet_distance_from_stats, pixel_histogram_kl, prdc
from benchbox.runner import run_cell

from conftest import tiny_config


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHBOX_CACHE", str(tmp_path / "cache"))


# ------------------------------------------------------------------------------------------- FID


def _sqrtm_spd(c: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh(c)
    return vecs @ np.diag(np.sqrt(vals)) @ vecs.T


def test_fid_closed_form_diagonal():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    expected = 1.0 + 0.0 + 4.0 + sum(a + b - 2 * np.sqrt(a * b))  # = 5 + (1 + 1 + 4) = 11
    assert math.isclose(expected, 11.0)
    assert math.isclose(frechet_distance_from_stats(mu1, np.diag(a), mu2, np.diag(b)), 11.0, rel_tol=1e-9)


def test_fid_closed_form_scaled_identity_vs_full_covariance():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(4, 4))
    c = q @ q.T + np.eye(4)
    s = 2.5  # cov1 = s I commutes with c: Tr(sI + C - 2 sqrt(s) C^1/2)
    expected = 4 * s + np.trace(c) - 2 * math.sqrt(s) * np.trace(_sqrtm_spd(c))
    assert math.isclose(frechet_distance_from_stats(np.zeros(4), s * np.eye(4), np.zeros(4), c), expected, rel_tol=1e-8)
    assert frechet_distance_from_stats(np.ones(4), c, np.ones(4), c) == pytest.approx(0.0, abs=1e-8)


def test_fid_from_samples_matches_closed_form():
    rng = np.random.default_rng(1)
    a = rng.normal([0.0, 0.0], [1.0, 2.0], size=(40000, 2))
    b = rng.normal([3.0, 0.0], [1.0, 1.0], size=(40000, 2))
    expected = 9.0 + (1 + 1 - 2) + (4 + 1 - 2 * 2)  # = 10
    assert frechet_distance(a, b) == pytest.approx(expected, rel=0.03)


def test_fid_rejects_mismatched_features():
    with pytest.raises(DataError, match="fid"):
        frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))


# ------------------------------------------------------------------------------------------- KL


def test_pixel_kl_known_answers():
    zeros = torch.zeros(10, 1, 4, 4)
    half = torch.cat([torch.zeros(5, 1, 4, 4), torch.ones(5, 1, 4, 4)])
    assert pixel_histogram_kl(half, half) == pytest.approx(0.0, abs=1e-12)
    # real: all mass in bin 0; generated: half in bin 0, half in the last bin -> KL = log 2
    assert pixel_histogram_kl(zeros, half) == pytest.approx(math.log(2), abs=1e-4)
    # reversed, the generated histogram misses a bin the real one has: large (eps-bounded) value
    assert pixel_histogram_kl(half, zeros) > 5.0


# ------------------------------------------------------------------------------------------- PRDC


def test_prdc_hand_computed_1d():
    real = np.arange(6, dtype=float)[:, None]  # 0..5, k = 1: every real radius is 1
    fake = np.array([[0.5], [10.0]])  # fake radii (k = 1 within the fakes): 9.5 each
    out = prdc(real, fake, k=1)
    assert out["precision"] == pytest.approx(0.5)  # 0.5 lies in a real ball, 10 does not
    assert out["density"] == pytest.approx(1.0)  # 0.5 sits in 2 real balls, 10 in none: (2 + 0) / 2 / k
    assert out["coverage"] == pytest.approx(2 / 6)  # only the balls of 0 and 1 hold a fake
    assert out["recall"] == pytest.approx(1.0)  # the ball of 0.5 (radius 9.5) holds every real


def test_prdc_identical_and_disjoint_sets():
    x = np.random.default_rng(2).normal(size=(50, 3))
    same = prdc(x, x, k=5)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    assert same["density"] == pytest.approx(6 / 5)  # each real ball holds itself and its k neighbours
    far = prdc(x, x + 100.0, k=5)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


# ------------------------------------------------------------------------------------- features


def test_indomain_features_are_cached_by_input_hash(digits_splits, tmp_path):
    train = digits_splits.train[:40]
    f1 = features.feature_extractor(train)
    files = list((tmp_path / "cache" / "features").iterdir())
    assert len(files) == 1 and files[0].suffix == ".pt"  # no temporary file left behind
    stamp = files[0].stat().st_mtime_ns
    f2 = features.feature_extractor(train)  # loaded, not retrained
    assert files[0].stat().st_mtime_ns == stamp
    x = digits_splits.val.images
    assert torch.equal(f1(x), f2(x)) and f1(x).shape == (len(x), features.FEATURE_DIM)
    features.feature_extractor(train[:-1])  # other inputs, other network
    assert len(list((tmp_path / "cache" / "features").iterdir())) == 2


def test_feature_cache_dir_argument_beats_env(digits_splits, tmp_path):
    features.feature_extractor(digits_splits.train[:40], cache_dir=tmp_path / "mine")
    assert len(list((tmp_path / "mine" / "features").iterdir())) == 1


def test_inception_is_never_downloaded(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(ConfigError, match="inception"):
        features.feature_extractor(torch.rand(4, 1, 8, 8), kind="inception")
    assert not (tmp_path / "torch").exists()
    with pytest.raises(ConfigError, match="unknown kind"):
        features.feature_extractor(torch.rand(4, 1, 8, 8), kind="clip")


# ----------------------------------------------------------------------------------- runner


def _spec(tmp_path, policy):
    return CellSpec.of(
        dataset="digits", policy=policy,
        generator=("ae", tiny_config(registry.load("generators", "ae"))),
        detector=("ae", tiny_config(registry.load("detectors", "ae"))),
        augment=AugmentConfig(ratio=1.0), run=RunOptions(seed=0, device="cpu", out=str(tmp_path)),
    )


def test_runner_reports_generation_metrics_only_when_augmenting(tmp_path):
    keys = {"gen_fid", "gen_pixel_kl", "gen_precision", "gen_recall", "gen_density", "gen_coverage"}
    r = run_cell(_spec(tmp_path, "random"), write=False)
    assert keys <= set(r["metrics"]) and all(math.isfinite(r["metrics"][k]) for k in keys)
    r_none = run_cell(_spec(tmp_path, "none"), write=False)
    assert not keys & set(r_none["metrics"])
