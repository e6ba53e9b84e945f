"""mixup proposes points on segments between training latents; select picks the best set by the loop reward."""

from __future__ import annotations

import pytest
import torch

from benchbox import registry
from benchbox.interfaces import FitContext, Generator, LabeledImages

CPU = torch.device("cpu")


def _ctx(val=None):
    return FitContext(device=CPU, seed=0, stage="test", val=val)


class Identity(Generator):
    """Latent = the flattened 1 x 1 x d image (no clamping needed: toy values stay in [0, 1])."""

    def __init__(self, d: int):
        super().__init__()
        self.d = d

    @property
    def latent_dim(self) -> int:
        return self.d

    def fit(self, train, ctx):
        pass

    def encode(self, images):
        return images.flatten(1).float()

    def decode(self, latents):
        return latents.float().view(-1, 1, 1, self.d)


def _segment_params(z: torch.Tensor, znew: torch.Tensor, latents: torch.Tensor) -> tuple[int, float, float]:
    """(j, a, residual): the training latent j != z and weight a with znew ~ a z + (1 - a) z_j, best fit."""
    best = None
    for j, zj in enumerate(latents):
        v = zj - z
        if float(v.norm()) < 1e-6:
            continue  # z itself
        t = float((znew - z) @ v / (v @ v))
        res = float((znew - z - t * v).norm())
        if best is None or res < best[2]:
            best = (j, 1 - t, res)
    return best


@pytest.mark.parametrize("options", [{}, {"lo": 0.2, "hi": 0.6}, {"weights": "beta", "alpha": 0.5},
                                     {"neighbours": 3}])
def test_mixup_outputs_lie_on_segments_between_two_training_latents(options):
    g = torch.Generator().manual_seed(0)
    latents = torch.randn(12, 5, generator=g)
    pol = registry.create("policies", "mixup", **options)
    pol.fit(Identity(5), latents, _ctx())
    src = torch.randint(12, (40,), generator=g)
    dz = pol.propose(latents[src], seed=3)
    lo, hi = options.get("lo", 0.0), options.get("hi", 1.0)
    weights = []
    for i, row in zip(src.tolist(), latents[src] + dz):
        j, a, res = _segment_params(latents[i], row, latents)
        assert j != i and res < 1e-4 and lo - 1e-5 <= a <= hi + 1e-5
        if "neighbours" in options:  # the partner is one of the 3 nearest other latents
            d = (latents - latents[i]).norm(dim=1)
            d[i] = float("inf")
            assert j in d.topk(3, largest=False).indices.tolist()
        weights.append(a)
    assert max(weights) - min(weights) > 0.2 * (hi - lo)  # the weights are drawn, not constant
    assert torch.equal(dz, pol.propose(latents[src], seed=3))
    assert not torch.equal(dz, pol.propose(latents[src], seed=4))


def test_mixup_bad_options():
    with pytest.raises(ValueError, match=r"mixup: need 0 <= --policy.lo <= --policy.hi <= 1"):
        registry.create("policies", "mixup", lo=0.8, hi=0.2)
    pol = registry.create("policies", "mixup")
    with pytest.raises(RuntimeError, match="mixup: call fit"):
        pol.propose(torch.zeros(2, 3), seed=0)


def test_select_picks_the_argmax_set_on_a_toy_case(monkeypatch):
    """Two clusters of validation normals far from the training latents; the two candidates that sit on them
    are the best pair by coverage, whatever else the candidate pool holds."""
    latents = torch.tensor([[0.1, 0.1], [0.9, 0.1], [0.1, 0.15], [0.85, 0.1]])
    val = LabeledImages(torch.tensor([[0.5, 0.9], [0.52, 0.9], [0.2, 0.6], [0.2, 0.62]]).view(-1, 1, 1, 2),
                        torch.zeros(4, dtype=torch.long))
    pool = torch.tensor([[0.1, 0.12], [0.51, 0.9], [0.3, 0.3], [0.2, 0.61], [0.5, 0.5], [0.88, 0.1],
                         [0.6, 0.7], [0.25, 0.4]])
    sources = torch.tensor([[0, 2], [-1, -1], [0, -1], [-1, -1], [1, 2], [1, 3], [3, -1], [2, -1]])
    cls = registry.load("policies", "select")
    monkeypatch.setattr(cls, "candidates", lambda self, lat, gen: (pool, sources))
    pol = registry.create("policies", "select", reference="val", keep=0.5)  # keep 0.5 x 4 latents = 2
    pol.fit(Identity(2), latents, _ctx(val))
    z = latents[[0, 1, 2]]
    chosen = z + pol.propose(z, seed=0)
    picked = {int((pool - row).norm(dim=1).argmin()) for row in chosen[:2]}
    assert picked == {1, 3} and torch.allclose(chosen[:2].sort(0).values, pool[[1, 3]].sort(0).values, atol=1e-6)
    assert torch.allclose(chosen[2], pool[6], atol=1e-6)  # then by standalone coverage: the next nearest to val


def test_select_on_digits_covers_more_than_its_candidates_on_average(digits_splits):
    gen = registry.create("generators", "ae", epochs=2, latent_dim=8)
    gen.fit(digits_splits.train, _ctx())
    latents = gen.encode(digits_splits.train)
    ctx = _ctx(digits_splits.val)
    pol = registry.create("policies", "select", factor=4.0)
    pol.fit(gen, latents, ctx)
    assert ctx.curves.last("coverage_chosen") > 1.5 * ctx.curves.last("coverage_all")
    dz = pol.propose(latents[:5], seed=0)
    assert dz.shape == (5, latents.shape[1]) and torch.isfinite(dz).all()
    with pytest.raises(ValueError, match=r"select: --policy.reference 'both' needs validation normals"):
        registry.create("policies", "select").fit(gen, latents, _ctx(None))
