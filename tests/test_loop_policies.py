"""RL latent policies on the detector-in-the-loop reward: learning beats random, no test leakage, caching."""

from __future__ import annotations

import pytest
import torch

from benchbox import cache, registry, runner
from benchbox.config import AugmentConfig, CellSpec, RunOptions
from benchbox.interfaces import FitContext
from benchbox.testing import PCAGenerator

from conftest import tiny_config

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def pca(digits_splits):
    gen = PCAGenerator()
    gen.fit(digits_splits.train, FitContext(device=CPU, seed=0))
    return gen, gen.encode(digits_splits.train)


# Measured (digits class 0, PCA generator, seed 0, 8,192 steps): mean reward of the mean action after
# training 0.46 (loop) / 0.58 (proxy); uniform random actions 0.06..0.09 (loop) / -2.86..-2.57 (proxy).
@pytest.mark.parametrize("reward", ["loop", "proxy"])
def test_ppo_mean_action_beats_random_actions_after_training(pca, digits_splits, reward):
    gen, latents = pca
    pol = registry.create("policies", "ppo", reward=reward, total_timesteps=8192, num_envs=64)
    pol.fit(gen, latents, FitContext(device=CPU, seed=0, val=digits_splits.val))
    core = pol.core
    z = core.latents
    dz = pol.rollout(z, None)
    trained = float(core.reward(z + dz, dz / (core.cfg.step_size * core.sigma), z)[0].mean())
    g = torch.Generator().manual_seed(1)
    random = []
    for _ in range(5):
        a = torch.rand(z.shape, generator=g) * 2 - 1
        random.append(float(core.reward(z + core.delta(a), a, z)[0].mean()))
    assert trained > max(random) + 0.25


@pytest.mark.parametrize("name", ["ppo", "ddpg", "dqn"])
def test_every_rl_policy_takes_the_loop_reward(fitted_tiny, digits_splits, name):
    gen, latents = fitted_tiny
    cls = registry.load("policies", name)
    opts = {**tiny_config(cls).__dict__, "reward": "loop", "w_plausibility": 0.5}
    if name != "ppo":
        opts.update(learning_starts=64, gradient_steps=2)
    pol = registry.create("policies", name, **opts)
    ctx = FitContext(device=CPU, seed=0, val=digits_splits.val)
    pol.fit(gen, latents, ctx)
    for key in ("reward/coverage", "reward/plausibility", "reward/duplicate"):
        assert key in ctx.curves.series, key
    assert "reward/realism" not in ctx.curves.series  # reward = loop: the proxy terms take no part
    assert set(pol.core.terms) == {"coverage", "plausibility", "duplicate"}
    dz = pol.propose(latents[:8], seed=0)
    assert torch.equal(dz, pol.propose(latents[:8], seed=1))  # mean action by default
    # through the stage cache's restricted pickle: same proposals after a round trip
    again = cache.loads(cache.dumps(pol))
    assert torch.equal(again.propose(latents[:8], seed=0), dz)


def test_anomaly_role_rounds_move_the_detector(fitted_tiny, digits_splits, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHBOX_CACHE", str(tmp_path))
    gen, latents = fitted_tiny
    pol = registry.create("policies", "ppo", **{**tiny_config(registry.load("policies", "ppo")).__dict__,
                                                "reward": "loop", "role": "anomaly", "rounds": 2})
    ctx = FitContext(device=CPU, seed=0, val=digits_splits.val)
    pol.fit(gen, latents, ctx)
    assert set(pol.core.terms) == {"adversarial"} and pol.role == "anomaly"
    assert pol.scorer.pseudo is not None and len(pol.scorer.pseudo) == len(latents)
    assert "detector_threshold" in ctx.curves.series


def test_bad_loop_options():
    from benchbox.errors import ConfigError

    with pytest.raises(ConfigError, match=r"--policy.rounds must be 1 unless --policy.role anomaly"):
        registry.create("policies", "ppo", rounds=2)
    with pytest.raises(ConfigError, match="reward"):
        registry.create("policies", "ddpg", reward="detector")


@pytest.fixture(scope="module")
def fitted_tiny(digits_splits):
    gen = registry.create("generators", "ae", epochs=2, latent_dim=8)
    gen.fit(digits_splits.train, FitContext(device=CPU, seed=0))
    return gen, gen.encode(digits_splits.train)


@pytest.mark.parametrize("policy", [("ppo", {"reward": "loop", "total_timesteps": 512, "num_envs": 32}),
                                    ("select", {"factor": 3.0})])
def test_proposals_do_not_depend_on_the_test_split(monkeypatch, tmp_path, policy):
    """Scramble the test split's images and labels: the fitted policy's proposals stay byte-identical."""
    digits = registry.load("datasets", "digits")
    original_load = digits.load
    captured = []

    def record(*args, **kwargs):
        out = real_augment(*args, **kwargs)
        captured.append(out)
        return out

    real_augment = runner.augment
    monkeypatch.setattr(runner, "augment", record)
    spec = CellSpec.of(dataset=("digits", {"normal_class": 3}), generator=("ae", {"epochs": 2, "latent_dim": 8}),
                       policy=policy, detector="knn", augment=AugmentConfig(ratio=1.0),
                       run=RunOptions(seed=1, device="cpu", out=str(tmp_path)))
    aurocs = []
    for scramble in (False, True):
        def load(self, seed, _scramble=scramble):
            s = original_load(self, seed)
            if _scramble:
                g = torch.Generator().manual_seed(99)
                s.test.images = torch.rand(s.test.images.shape, generator=g)
                s.test.labels = s.test.labels[torch.randperm(len(s.test.labels), generator=g)]
            return s

        monkeypatch.setattr(digits, "load", load)
        row = runner.run_cell(spec, write=False)
        aurocs.append(row["metrics"]["image_auroc"])
        assert row["metrics"]["dz_spread"] > 0 and row["metrics"]["gen_spread"] > 0  # every augmenting cell records them
    (img_a, src_a, dz_a), (img_b, src_b, dz_b) = captured
    assert len(dz_a) > 0
    assert torch.equal(dz_a, dz_b) and torch.equal(img_a, img_b) and torch.equal(src_a, src_b)
    assert dz_a.numpy().tobytes() == dz_b.numpy().tobytes()
    assert aurocs[0] > 0.9 and abs(aurocs[1] - 0.5) < 0.2  # the scrambled test split did reach the detector


def test_augment_spread_hand_values():
    latents = torch.tensor([[0.0, 0.0], [2.0, 4.0]])  # per-dimension std: sqrt(2), 2 sqrt(2)
    dz = torch.tensor([[1.0, 1.0], [-1.0, -1.0]]) * 2**0.5  # in std units: [1, 0.5] and [-1, -0.5]
    real = torch.tensor([[[[0.0]]], [[[1.0]]]])  # pixel std sqrt(0.5)
    generated = torch.tensor([[[[0.25]]], [[[0.75]]]])  # pixel std sqrt(0.125)
    out = runner.augment_spread(latents, dz, generated, real)
    assert out["dz_rms"] == pytest.approx(((1 + 0.25 + 1 + 0.25) / 4) ** 0.5, rel=1e-6)
    assert out["dz_spread"] == pytest.approx((2**0.5 + 0.5 * 2**0.5) / 2, rel=1e-6)  # std of (1, -1) and (.5, -.5)
    assert out["gen_spread"] == pytest.approx(0.5, rel=1e-6)
    assert runner.augment_spread(latents, dz[:0], generated[:0], real) == {}
