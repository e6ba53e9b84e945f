"""Interface contracts, checked for *every* registered plugin (parametrized over the registry).

The checks themselves live in :mod:`benchbox.testing` -- the same functions a third-party plugin
runs in its own CI. A plugin added later through an entry point is picked up here automatically.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from benchbox import registry
from benchbox.interfaces import Dataset, Detector, FitContext, LabeledImages, LatentPolicy, Scores, Splits
from benchbox.testing import PCAGenerator, check_dataset, check_detector, check_generator, check_policy, toy_images

from conftest import SLOW_PLUGINS, make_distribution, tiny_config

CPU = torch.device("cpu")

# tests/test_folder_datasets.py checks its fixture datasets with this name
check_dataset_contract = check_dataset


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


@pytest.mark.parametrize("name", _names("datasets"))
def test_dataset_contract(name):
    cls = registry.load("datasets", name)
    if getattr(cls, "requires_root", False):
        where = {"cifar10": "test_cifar_emnist.py", "emnist": "test_cifar_emnist.py"}.get(name, "test_folder_datasets.py")
        pytest.skip(f"{name} reads its files from --dataset.root; its contract is checked on fixtures in tests/{where}")
    check_dataset(name)


# The 8 px case fits on real digits twice (same seed: same latents); the others once on noise.
@pytest.mark.parametrize("name", _names("generators"))
@pytest.mark.parametrize("channels,size", [(1, 8), (1, 28), (3, 32)])
def test_generator_contract(name, channels, size, digits_splits):
    cls = registry.load("generators", name)
    if (channels, size) == (1, 8):
        check_generator(name, tiny_config(cls), images=digits_splits.train, seed=3)
    else:
        x = torch.rand(24, channels, size, size, generator=torch.Generator().manual_seed(0))
        check_generator(name, tiny_config(cls), images=x, determinism=False)


@pytest.mark.parametrize("name", _names("policies"))
def test_policy_contract(name, fitted_ae, digits_splits):
    cls = registry.load("policies", name)
    check_policy(name, tiny_config(cls), generator=fitted_ae, latents=fitted_ae.encode(digits_splits.train),
                 val=digits_splits.val)


def test_random_policy_scale(fitted_ae, digits_splits):
    latents = fitted_ae.encode(digits_splits.train)
    pol = registry.create("policies", "random", sigma=0.5)
    pol.fit(fitted_ae, latents, _ctx())
    dz = pol.propose(latents.repeat(50, 1), seed=0)
    ratio = dz.std(0) / latents.std(0)
    assert torch.allclose(ratio, torch.full_like(ratio, 0.5), rtol=0.15)
    assert not torch.equal(dz[:5], pol.propose(latents.repeat(50, 1), seed=1)[:5])


@pytest.mark.parametrize("name", _names("detectors"))
def test_detector_contract(name, digits_splits):
    cls = registry.load("detectors", name)
    check_detector(name, tiny_config(cls), train=digits_splits.train, test=digits_splits.test.images[:64],
                   val=digits_splits.val, seed=5)


# ------------------------------------------------------------------------------------------------
# The checks themselves: a plugin that breaks one property fails with a message naming it
# ------------------------------------------------------------------------------------------------

class GoodDetector(Detector):
    """Squared distance to the mean training image."""

    @dataclass
    class Config:
        power: float = 2.0
        """Exponent of the per-pixel distance."""

    mean = None

    def fit(self, images, ctx, pseudo_anomalies=None):
        if pseudo_anomalies is not None:
            raise ValueError("good: no pseudo-anomalies")
        self.mean = images.mean(0)

    def score(self, images):
        if self.mean is None:
            raise RuntimeError("good: call fit() before score()")
        if images.shape[1:] != self.mean.shape:
            raise ValueError(f"good: fitted on {tuple(self.mean.shape)}, got {tuple(images.shape[1:])}")
        d = (images - self.mean).abs().pow(self.config.power)
        return Scores(image=d.flatten(1).mean(1), maps=d.mean(1))


class MutatesInput(GoodDetector):
    """Clamps its input in place."""

    def score(self, images):
        return super().score(images.clamp_(0, 0.5))


class Unseeded(GoodDetector):
    """Uses the global RNG without seeding it."""

    def fit(self, images, ctx, pseudo_anomalies=None):
        super().fit(images, ctx, pseudo_anomalies)
        self.mean = self.mean + 0.01 * torch.rand(self.mean.shape)


class DoubleScores(GoodDetector):
    """Returns float64 scores."""

    def score(self, images):
        s = super().score(images)
        return Scores(image=s.image.double(), maps=s.maps)


class NoneBeforeFit(GoodDetector):
    """Crashes on None before fit."""

    def score(self, images):
        d = (images - self.mean).abs()
        return Scores(image=d.flatten(1).mean(1))


class BatchDependent(GoodDetector):
    """Normalises scores by the batch."""

    def score(self, images):
        s = super().score(images)
        return Scores(image=s.image / s.image.sum(), maps=None)


class NoDefault(GoodDetector):
    """A Config field without a default."""

    @dataclass
    class Config:
        power: float


class NoDescription(GoodDetector):
    pass


NoDescription.__doc__ = None


class GoodDataset(Dataset):
    """Toy blobs; the inverted ones are anomalous."""

    @dataclass
    class Config:
        size: int = 12

    def load(self, seed):
        x = toy_images(60, 1, self.config.size, seed=100)
        perm = torch.randperm(60, generator=torch.Generator().manual_seed(seed))
        x = x[perm]
        test = torch.cat([x[:10], 1 - x[10:20]])
        labels = torch.cat([torch.zeros(10), torch.ones(10)]).long()
        return Splits(train=x[25:], val=LabeledImages(x[20:25], torch.zeros(5, dtype=torch.int64)),
                      test=LabeledImages(test, labels))


class Overlapping(GoodDataset):
    """Test normals drawn from train."""

    def load(self, seed):
        s = super().load(seed)
        s.test.images[:3] = s.train[:3]
        return s


class FloatLabels(GoodDataset):
    """Labels as floats."""

    def load(self, seed):
        s = super().load(seed)
        s.test.labels = s.test.labels.float()
        return s


class OutOfRange(GoodDataset):
    """Pixel values up to 2."""

    def load(self, seed):
        s = super().load(seed)
        s.train = s.train * 2
        return s


class Unshuffled(GoodDataset):
    """Splits from the global RNG."""

    def load(self, seed):
        return super().load(int(torch.randint(0, 1000, ())))


class Unclamped(PCAGenerator):
    """Decodes outside [0, 1]."""

    def decode(self, latents):
        return super().decode(latents) * 3 - 1


class GoodPolicy(LatentPolicy):
    """Gaussian dz from the seed."""

    @dataclass
    class Config:
        sigma: float = 0.1

    std = None

    def fit(self, generator, latents, ctx):
        self.std = latents.std(0)

    def propose(self, z, seed):
        if self.std is None:
            raise RuntimeError("good policy: call fit() first")
        noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(seed))
        return (noise * self.config.sigma * self.std).to(z)


class IgnoresSeed(GoodPolicy):
    """Draws dz from the global RNG."""

    def propose(self, z, seed):
        super().propose(z, seed)  # the fit() guard
        return (torch.randn(z.shape) * self.std).to(z)


class ClaimsNoImages(GoodPolicy):
    """generates = False, yet proposes dz != 0."""

    generates = False


class DzOnWrongDtype(GoodPolicy):
    """Returns float64 dz."""

    def propose(self, z, seed):
        return super().propose(z, seed).double()


def test_well_behaved_toys_pass():
    check_detector(GoodDetector)
    check_detector(GoodDetector, {"power": 1.0}, train=toy_images(20, 3, 8), test=toy_images(7, 3, 8, seed=2))
    check_dataset(GoodDataset)
    check_generator(PCAGenerator, images=toy_images(30, 3, 12))
    check_policy(GoodPolicy)


@pytest.mark.parametrize("check,plugin,message", [
    (check_detector, MutatesInput, "score() must not modify its input images"),
    (check_detector, Unseeded, "two fits with seed=0 give different scores"),
    (check_detector, DoubleScores, "score(test).image must be torch.float32"),
    (check_detector, NoneBeforeFit, "score() before fit() must raise a clear error"),
    (check_detector, BatchDependent, "scores must not depend on the batch"),
    (check_detector, NoDefault, "Config field 'power' has no default"),
    (check_detector, NoDescription, "has no description"),
    (check_dataset, Overlapping, "train overlaps test"),
    (check_dataset, FloatLabels, "test.labels must be torch.int64"),
    (check_dataset, OutOfRange, "train must lie in [0, 1]"),
    (check_dataset, Unshuffled, "load(0) is not deterministic"),
    (check_generator, Unclamped, "decode(latents) must lie in [0, 1]"),
    (check_policy, IgnoresSeed, "propose() with the same seed must give the same dz"),
    (check_policy, ClaimsNoImages, "a policy with generates = False must propose dz = 0"),
    (check_policy, DzOnWrongDtype, "propose(z, seed=1) must be torch.float32"),
])
def test_checks_name_the_plugin_and_the_broken_property(check, plugin, message):
    with pytest.raises(AssertionError) as exc:
        check(plugin)
    text = str(exc.value)
    assert text.startswith(f"{check.__name__.removeprefix('check_')} {__name__}.{plugin.__qualname__}: ")
    assert message in text and "\n" not in text


def test_check_by_registered_name_and_bad_config(extra_site):
    from benchbox.errors import ConfigError

    make_distribution(extra_site, "bbx-test-checks", {"benchbox.detectors": {"bbx-double": "bbx_test_checks:Det"}},
                      {"bbx_test_checks": '''
                          from dataclasses import dataclass
                          from benchbox.interfaces import Detector, Scores

                          class Det(Detector):
                              """Scores in float64."""
                              @dataclass
                              class Config:
                                  k: int = 1
                              def fit(self, images, ctx, pseudo_anomalies=None):
                                  if pseudo_anomalies is not None:
                                      raise ValueError("no pseudo-anomalies")
                                  self.mean = images.mean(0)
                              def score(self, images):
                                  if not hasattr(self, "mean"):
                                      raise RuntimeError("bbx-double: fit first")
                                  if images.shape[1:] != self.mean.shape:
                                      raise ValueError("bbx-double: wrong shape")
                                  return Scores(image=(images - self.mean).flatten(1).double().mean(1))
                      '''})
    with pytest.raises(AssertionError, match=r"^detector 'bbx-double' \(bbx_test_checks.Det\): score\(test\)"
                                             r".image must be torch.float32 -- got torch.float64$"):
        check_detector("bbx-double", {"k": 2})
    with pytest.raises(ConfigError, match="has no option 'kk'"):
        check_detector("bbx-double", {"kk": 2})
