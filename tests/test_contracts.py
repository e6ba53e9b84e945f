"""Interface contracts, checked for *every* registered plugin (parametrized over the registry).

A plugin added later through an entry point is picked up here automatically.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from benchbox import registry
from benchbox.interfaces import Dataset, Detector, FitContext, Generator, LatentPolicy, Scores

from conftest import SLOW_PLUGINS, tiny_config

CPU = torch.device("cpu")


def _names(group: str) -> list:
    """Every working plugin of the group; the few in SLOW_PLUGINS run in the slow (second) CI stage."""
    return [
        pytest.param(p.name, marks=pytest.mark.slow) if p.name in SLOW_PLUGINS else p.name
        for p in registry.list_plugins(group)
        if not p.broken
    ]


def _ctx(seed: int = 0, val=None) -> FitContext:
    return FitContext(device=CPU, seed=seed, stage="test", val=val)


@pytest.fixture(scope="module")
def fitted_ae(digits_splits):
    gen = registry.create("generators", "ae", tiny_config(registry.load("generators", "ae")))
    gen.fit(digits_splits.train, _ctx())
    return gen


# ----------------------------------------------------------------------------------- datasets


def check_dataset_contract(ds: Dataset) -> None:
    """The dataset contract on one configured dataset (reused for the folder-dataset fixtures)."""
    a, b = ds.load(0), ds.load(0)
    for images in (a.train, a.val.images, a.test.images):
        assert images.dtype == torch.float32 and images.ndim == 4 and images.shape[1] in (1, 3)
        assert images.min() >= 0 and images.max() <= 1
        assert images.shape[1:] == a.train.shape[1:]
    assert a.test.labels.dtype == torch.int64 and set(a.test.labels.unique().tolist()) == {0, 1}
    assert len(a.test.labels) == len(a.test.images)
    assert a.val.labels.dtype == torch.int64 and len(a.val.labels) == len(a.val.images)
    if a.test.masks is not None:
        assert a.test.masks.shape == (len(a.test), 1, *a.test.images.shape[-2:])
        assert a.test.masks.dtype == torch.float32 and set(a.test.masks.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(a.train, b.train) and torch.equal(a.test.images, b.test.images)  # deterministic
    # train never overlaps test or val (compare rows exactly)
    train_rows = {tuple(r.tolist()) for r in a.train.flatten(1)[:, ::3]}
    for other in (a.test.images[a.test.labels == 0], a.val.images):
        assert not any(tuple(r.tolist()) in train_rows for r in other.flatten(1)[:, ::3])


@pytest.mark.parametrize("name", _names("datasets"))
def test_dataset_contract(name):
    cls = registry.load("datasets", name)
    assert issubclass(cls, Dataset) and dataclasses.is_dataclass(cls.Config)
    if getattr(cls, "requires_root", False):
        pytest.skip(f"{name} reads its files from --dataset.root; its contract is checked on fixtures "
                    "in tests/test_folder_datasets.py")
    check_dataset_contract(cls(cls.Config()))


# --------------------------------------------------------------------------------- generators


@pytest.mark.parametrize("name", _names("generators"))
@pytest.mark.parametrize("channels,size", [(1, 8), (1, 28), (3, 32)])
def test_generator_contract(name, channels, size):
    cls = registry.load("generators", name)
    assert issubclass(cls, Generator)
    gen = cls(tiny_config(cls))
    x = torch.rand(24, channels, size, size, generator=torch.Generator().manual_seed(0))
    x_before = x.clone()
    gen.fit(x, _ctx())
    assert torch.equal(x, x_before), "fit must not mutate its input"
    z = gen.encode(x)
    assert z.shape == (24, gen.latent_dim) and z.dtype == torch.float32 and z.device == CPU
    y = gen.decode(z)
    assert y.shape == x.shape and y.dtype == torch.float32 and y.min() >= 0 and y.max() <= 1
    assert torch.equal(gen.encode(x), z), "encode must be deterministic"
    assert gen.decode(z[:0]).shape == (0, channels, size, size)


@pytest.mark.parametrize("name", _names("generators"))
def test_generator_same_seed_same_weights(name, digits_splits):
    cls = registry.load("generators", name)
    outs = []
    for _ in range(2):
        gen = cls(tiny_config(cls))
        gen.fit(digits_splits.train, _ctx(seed=3))
        outs.append(gen.encode(digits_splits.train[:8]))
    assert torch.equal(outs[0], outs[1])


# ----------------------------------------------------------------------------------- policies


@pytest.mark.parametrize("name", _names("policies"))
def test_policy_contract(name, fitted_ae, digits_splits):
    cls = registry.load("policies", name)
    assert issubclass(cls, LatentPolicy)
    latents = fitted_ae.encode(digits_splits.train)
    pol = cls(tiny_config(cls))
    pol.fit(fitted_ae, latents, _ctx(val=digits_splits.val))
    z = latents[:16].clone()
    dz = pol.propose(z, seed=1)
    assert dz.shape == z.shape and dz.dtype == z.dtype and dz.device == z.device
    assert torch.isfinite(dz).all()
    assert torch.equal(dz, pol.propose(z, seed=1)), "same seed must give the same dz"
    assert torch.equal(z, latents[:16]), "propose must not mutate z"
    assert pol.role in ("normal", "anomaly")
    if not cls.generates:
        assert torch.count_nonzero(dz) == 0


def test_random_policy_scale(fitted_ae, digits_splits):
    latents = fitted_ae.encode(digits_splits.train)
    pol = registry.create("policies", "random", sigma=0.5)
    pol.fit(fitted_ae, latents, _ctx())
    dz = pol.propose(latents.repeat(50, 1), seed=0)
    ratio = dz.std(0) / latents.std(0)
    assert torch.allclose(ratio, torch.full_like(ratio, 0.5), rtol=0.15)
    assert not torch.equal(dz[:5], pol.propose(latents.repeat(50, 1), seed=1)[:5])


# ---------------------------------------------------------------------------------- detectors


@pytest.mark.parametrize("name", _names("detectors"))
def test_detector_contract(name, digits_splits):
    cls = registry.load("detectors", name)
    assert issubclass(cls, Detector)
    det = cls(tiny_config(cls))
    train = digits_splits.train
    det.fit(train, _ctx(val=digits_splits.val))
    test = digits_splits.test.images[:64]
    before = test.clone()
    s = det.score(test)
    assert isinstance(s, Scores)
    assert s.image.shape == (64,) and s.image.dtype == torch.float32 and torch.isfinite(s.image).all()
    assert torch.equal(test, before), "score must not mutate its input"
    if s.maps is not None:
        assert s.maps.shape == (64, *test.shape[-2:]) and torch.isfinite(s.maps).all()
    assert torch.equal(det.score(test).image, s.image), "scoring must be deterministic"
    # batch independence: scoring a subset gives the same scores as inside a larger batch
    assert torch.allclose(det.score(test[:5]).image, s.image[:5], atol=1e-5)


@pytest.mark.parametrize("name", _names("detectors"))
def test_detector_same_seed_same_scores(name, digits_splits):
    cls = registry.load("detectors", name)
    scores = []
    for _ in range(2):
        det = cls(tiny_config(cls))
        det.fit(digits_splits.train, _ctx(seed=5))
        scores.append(det.score(digits_splits.test.images[:32]).image)
    assert torch.equal(scores[0], scores[1])
