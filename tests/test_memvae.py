"""The MemAE memory: hard shrinkage gives sparse addressing; the memvae generator and detector."""

from __future__ import annotations

import math

import pytest
import torch

from benchbox import registry
from benchbox.errors import ConfigError
from benchbox.interfaces import FitContext
from benchbox_plugins.generators.base.memory import MemoryModule, hard_shrink

from conftest import tiny_config


def test_hard_shrink_zeroes_small_weights_and_renormalises():
    w = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    out = hard_shrink(w, 0.1)
    expected = torch.tensor([[0.5, 0.3, 0.15, 0.0]]) / 0.95
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.equal(hard_shrink(w, 0.0), w)


def test_shrinkage_gives_sparse_addressing():
    torch.manual_seed(0)
    z = torch.randn(256, 16)
    dense = MemoryModule(100, 16, threshold=0.0, temperature=0.1).address(z)
    mem = MemoryModule(100, 16, threshold=0.02, temperature=0.1)
    sparse = mem.address(z)
    assert (dense > 0).all()  # softmax alone never gives an exact zero
    assert (sparse >= 0).all() and torch.allclose(sparse.sum(1), torch.ones(256), atol=1e-5)
    zero_share = (sparse == 0).float().mean()
    assert zero_share > 0.8, f"only {zero_share:.2f} of the addressing weights were shrunk to zero"
    assert MemoryModule.entropy(sparse).mean() < MemoryModule.entropy(dense).mean()


def test_addressing_entropy_known_values():
    n = 10
    assert MemoryModule.entropy(torch.eye(n)).abs().max() < 1e-6
    assert torch.allclose(MemoryModule.entropy(torch.full((1, n), 1.0 / n)), torch.tensor([math.log(n)]))


def test_read_out_is_a_convex_mix_of_slots():
    mem = MemoryModule(8, 4, threshold=0.0, temperature=1e-3)
    read, w = mem(mem.slots.detach()[:3] * 5.0)  # queries aligned with slots 0..2
    assert torch.equal(w.argmax(1), torch.arange(3))
    assert torch.allclose(read, mem.slots.detach()[:3], atol=1e-4)


def test_memvae_logs_addressing_entropy_per_epoch(digits_splits):
    cls = registry.load("generators", "memvae")
    gen = cls(tiny_config(cls, epochs=3))
    ctx = FitContext(device=torch.device("cpu"), seed=0, val=digits_splits.val)
    gen.fit(digits_splits.train, ctx)
    entropy = ctx.curves.series["train/addressing_entropy"]
    assert [step for step, _ in entropy] == [1.0, 2.0, 3.0]
    assert all(math.isfinite(v) and v >= 0 for _, v in entropy)
    assert len(ctx.curves.series["train/loss"]) == 3 and len(ctx.curves.series["val/loss"]) == 3


def test_memvae_and_ae_detectors_reuse_the_generators(digits_splits):
    for name, gen_name in (("memvae", "memvae"), ("ae", "ae")):
        cls = registry.load("detectors", name)
        det = cls(tiny_config(cls))
        assert type(det.generator) is registry.load("generators", gen_name)
        det.fit(digits_splits.train, FitContext(device=torch.device("cpu"), seed=0))
        s = det.score(digits_splits.test.images[:6])
        recon = det.generator.reconstruct(digits_splits.test.images[:6])
        err = (recon - digits_splits.test.images[:6]).pow(2).mean(1)
        assert torch.allclose(s.maps, err) and torch.allclose(s.image, err.flatten(1).mean(1))
        with pytest.raises(ValueError, match="pseudo-anomalies"):
            det.fit(digits_splits.train, FitContext(device=torch.device("cpu"), seed=0),
                    pseudo_anomalies=digits_splits.train[:2])


@pytest.mark.parametrize("group,option,value,match", [
    ("detectors", "shrink_threshold", 1.5, r"--detector\.shrink-threshold"),
    ("generators", "slots", 0, r"--generator\.slots"),
    ("generators", "temperature", 0.0, r"--generator\.temperature"),
    ("detectors", "latent_dim", 0, r"detector 'memvae' option 'latent_dim' expects an integer >= 1"),
])
def test_bad_options_name_the_option(group, option, value, match):
    with pytest.raises((ValueError, ConfigError), match=match):
        registry.create(group, "memvae", **{option: value})
