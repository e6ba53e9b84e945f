"""The detector-in-the-loop reward terms against brute-force Python loops on toy sets."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from benchbox_plugins.rl.loop_rewards import LoopReference, greedy_coverage, knn_scores, pairwise_distances


def _dist(a, b) -> float:
    return math.sqrt(sum((float(x) - float(y)) ** 2 for x, y in zip(a, b)))


def _toy(seed: int = 0, m: int = 7, h: int = 4, n: int = 9, f: int = 3):
    g = torch.Generator().manual_seed(seed)
    memory = torch.randn(m, f, generator=g)
    held = torch.randn(h, f, generator=g)
    cand = torch.randn(n, f, generator=g) * 0.8
    # candidate sources: single steps, interpolation pairs, and candidates made from nothing known
    sources = torch.tensor([[0, -1], [1, 2], [3, 3], [-1, -1], [6, 0], [5, -1], [2, 4], [1, -1], [4, 5]])[:n]
    return memory, held, cand, sources


def _brute_reference(memory, held):
    """(normals, source, base) by Python loops: held-out then leave-one-out training normals."""
    normals, source, base = [], [], []
    for v in held:
        normals.append(v), source.append(-1), base.append(min(_dist(v, t) for t in memory))
    for j, t in enumerate(memory):
        normals.append(t), source.append(j)
        base.append(min(_dist(t, u) for k, u in enumerate(memory) if k != j))
    return normals, source, base


def _brute_coverage(memory, held, cand, sources):
    normals, source, base = _brute_reference(memory, held)
    dbar = sum(base) / len(base)
    out = []
    for c, src in zip(cand, sources):
        own = {int(s) for s in src if int(s) >= 0}
        total = 0.0
        for n_j, s_j, d_j in zip(normals, source, base):
            if s_j in own:
                continue
            total += max(0.0, d_j - _dist(c, n_j))
        out.append(total / dbar)
    return out


def test_pairwise_distances_exact_and_independent_of_batching():
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(37, 64, generator=g), torch.rand(11, 64, generator=g)
    d = pairwise_distances(a, b, chunk=5)
    brute = torch.tensor([[_dist(x, y) for y in b] for x in a])
    assert torch.allclose(d, brute, atol=1e-5)
    assert torch.equal(d[:3], pairwise_distances(a[:3], b))
    assert float(pairwise_distances(b[:2], b).diagonal().max()) < 1e-5  # a row is at distance 0 from itself


def test_knn_scores_leave_one_out():
    memory, held, _, _ = _toy()
    loo = knn_scores(memory, memory, 1, exclude=torch.arange(len(memory)))
    _, _, base = _brute_reference(memory, held)
    assert torch.allclose(loo, torch.tensor(base[len(held):]), atol=1e-5)
    k2 = knn_scores(held, memory, 2)
    brute = [sum(sorted(_dist(v, t) for t in memory)[:2]) / 2 for v in held]
    assert torch.allclose(k2, torch.tensor(brute), atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coverage_equals_brute_force(seed):
    memory, held, cand, sources = _toy(seed)
    ref = LoopReference.build(memory, held, loo=True)
    cov = ref.coverage(cand, sources)
    brute = _brute_coverage(memory, held, cand, sources)
    assert torch.allclose(cov, torch.tensor(brute), atol=1e-5)
    assert sum(b > 0 for b in brute) >= 3  # the toy exercises the hinge, not only zeros


def test_coverage_excludes_the_candidates_own_sources():
    memory, held, _, _ = _toy()
    ref = LoopReference.build(memory, held, loo=True)
    copies = memory[[2, 5]].clone()
    # a copy of training normal 2 credited for covering itself would earn d_2 / dbar at least
    as_own = ref.coverage(copies, torch.tensor([2, 5]))
    as_foreign = ref.coverage(copies, torch.tensor([-1, -1]))
    dbar = float(ref.base.mean())
    loo_base = ref.base[len(held):]
    assert torch.allclose(as_foreign - as_own, loo_base[[2, 5]] / dbar, atol=1e-5)


def test_plausibility_duplicate_and_adversarial_hand_values():
    # memory on a line; held-out normals at known distances 1, 2, 3, 4 from it (band percentiles 0/100)
    memory = torch.tensor([[0.0, 0.0], [10.0, 0.0], [20.0, 0.0]])
    held = torch.tensor([[0.0, 1.0], [10.0, 2.0], [20.0, 3.0], [0.0, 4.0]])
    ref = LoopReference.build(memory, held, loo=False, band=(0.0, 100.0), dup_fraction=0.5)
    assert ref.band == (1.0, 4.0) and ref.scale == pytest.approx(2.5) and ref.dup_min == pytest.approx(0.5)
    cand = torch.tensor([[0.0, 0.25], [0.0, 2.0], [10.0, 6.0], [20.0, 5.5], [0.0, 12.0]])
    own = ref.own_score(cand)
    assert torch.allclose(own, torch.tensor([0.25, 2.0, 6.0, 5.5, 12.0]), atol=1e-5)
    # -(max(0, 1 - s) + max(0, s - 4)) / 2.5
    assert torch.allclose(ref.plausibility(own), torch.tensor([-0.3, 0.0, -0.8, -0.6, -3.2]), atol=1e-6)
    assert torch.equal(ref.duplicate(own), torch.tensor([-1.0, 0.0, 0.0, 0.0, 0.0]))
    # anomaly band [4, 7]: u = (s - 4) / 3, out = 1 - (2u - 1)^2 clipped at -3; fooled iff detector score <= 0.5
    det = torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0])
    u = (own - 4) / 3
    out = (1 - (2 * u - 1) ** 2).clamp_min(-3)
    expected = torch.tensor([float(out[0]), float(out[1]), float(out[2]), 0.0, -3.0])
    assert float(out[2]) == pytest.approx(1 - (2 * 2 / 3 - 1) ** 2)
    assert torch.allclose(ref.adversarial(own, det, threshold=0.5), expected, atol=1e-6)


def _set_objective(ref, cand, sources, subset) -> float:
    """Brute-force set coverage F(S) with Python loops."""
    normals, source, base = ref.normals, ref.source.tolist(), ref.base.tolist()
    dbar = sum(base) / len(base)
    total = 0.0
    for j, n_j in enumerate(normals):
        best = base[j]
        for i in subset:
            if source[j] in {int(s) for s in sources[i] if int(s) >= 0}:
                continue
            best = min(best, _dist(cand[i], n_j))
        total += base[j] - best
    return total / dbar


def test_greedy_coverage_matches_brute_force_marginals_and_finds_the_best_pair():
    memory, held, cand, sources = _toy(3)
    ref = LoopReference.build(memory, held, loo=True)
    order = greedy_coverage(ref, cand, sources, 4).tolist()
    # each greedy pick has the largest brute-force marginal gain given the earlier picks
    for step, i in enumerate(order):
        prev = order[:step]
        gains = {c: _set_objective(ref, cand, sources, prev + [c]) - _set_objective(ref, cand, sources, prev)
                 for c in range(len(cand)) if c not in prev}
        assert gains[i] == pytest.approx(max(gains.values()), abs=1e-5)
    # toy where greedy is optimal: two far-apart clusters of reference normals, one candidate at each
    memory = torch.tensor([[0.0, 0.0], [100.0, 0.0]])
    held = torch.tensor([[5.0, 5.0], [5.2, 5.0], [50.0, 50.0], [50.0, 50.4]])
    cand = torch.tensor([[5.1, 5.0], [5.1, 5.1], [50.0, 50.2], [30.0, 30.0], [0.0, 1.0]])
    ref = LoopReference.build(memory, held, loo=False)
    src = torch.full((5, 1), -1)
    best = max(itertools.combinations(range(5), 2), key=lambda s: _set_objective(ref, cand, src.tolist(), list(s)))
    assert sorted(greedy_coverage(ref, cand, src, 2).tolist()) == sorted(best) == [0, 2]


def test_bad_inputs_raise_clear_errors():
    memory, held, cand, _ = _toy()
    with pytest.raises(ValueError, match="band percentiles"):
        LoopReference.build(memory, held, band=(90.0, 10.0))
    with pytest.raises(ValueError, match="no reference normals"):
        LoopReference.build(memory, None, loo=False)
    ref = LoopReference.build(memory, held)
    with pytest.raises(ValueError, match="sources must be N or N x S"):
        ref.coverage(cand, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="budget"):
        greedy_coverage(ref, cand, torch.zeros(len(cand), dtype=torch.long), len(cand) + 1)
