"""The single-file PPO: learns a toy task, runs standalone, and works as the ``ppo`` policy plugin."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from benchbox import registry
from benchbox.interfaces import FitContext
from benchbox.errors import ConfigError
from benchbox_plugins.policies.ppo import PPOPolicy
from benchbox_plugins.rl.ppo import Args, run, train

from conftest import tiny_config


class TargetBandit:
    """Torch vector bandit: observation is a random target in [-0.8, 0.8]^2, reward -||a - target||^2."""

    def __init__(self, n: int):
        self.num_envs = n
        self.single_observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
        self.single_action_space = gym.spaces.Box(-1, 1, (2,), np.float32)
        self.gen = torch.Generator().manual_seed(0)

    def _obs(self):
        self.target = torch.rand(self.num_envs, 2, generator=self.gen) * 1.6 - 0.8
        return self.target

    def reset(self, seed=None):
        return self._obs(), {}

    def step(self, action):
        reward = -((action.clamp(-1, 1) - self.target) ** 2).sum(1)
        done = torch.ones(self.num_envs, dtype=torch.bool)
        final = self.target.clone()
        return self._obs(), reward, done, torch.zeros_like(done), {"final_obs": final, "_final_obs": done,
                                                                   "err": -reward}


def test_ppo_learns_a_contextual_bandit():
    args = Args(total_timesteps=64 * 4 * 20, num_envs=64, num_steps=4, num_minibatches=4, update_epochs=4,
                learning_rate=3e-3, progress=False, log_std_init=-0.5)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: threads only add overhead
    try:
        _, history = train(args, TargetBandit(64), info_keys=("err",))
    finally:
        torch.set_num_threads(threads)
    first, last = history[0]["episodic_return"], np.mean([h["episodic_return"] for h in history[-3:]])
    assert last > first + 0.4 and last > -0.4, (first, last)
    for key in ("policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac", "explained_variance", "sps", "reward/err"):
        assert key in history[-1]


def test_standalone_pendulum_writes_outputs(tmp_path):
    summary = run(Args(env_id="Pendulum-v1", total_timesteps=512, num_envs=2, num_steps=128, num_minibatches=4,
                       update_epochs=1, eval_episodes=1, progress=False, out_dir=str(tmp_path)))
    out = tmp_path / next(p.name for p in tmp_path.iterdir())
    assert (out / "progress.csv").read_text().startswith("iteration,global_step,episodic_return")
    assert (out / "returns.png").stat().st_size > 0
    assert json.loads((out / "eval.json").read_text())["eval_returns"] == summary["eval_returns"]
    assert len(summary["eval_returns"]) == 1 and summary["total_timesteps"] == 512


@pytest.fixture(scope="module")
def fitted(digits_splits):
    gen = registry.create("generators", "ae", tiny_config(registry.load("generators", "ae")))
    gen.fit(digits_splits.train, FitContext(device=torch.device("cpu"), seed=0))
    return gen, gen.encode(digits_splits.train)


@pytest.mark.parametrize("role,episode_length", [("normal", 1), ("anomaly", 2)])
def test_plugin_fit_logs_and_proposes(fitted, role, episode_length):
    gen, latents = fitted
    pol = PPOPolicy(tiny_config(PPOPolicy, role=role, episode_length=episode_length))
    ctx = FitContext(device=torch.device("cpu"), seed=0)
    pol.fit(gen, latents, ctx)
    assert pol.role == role
    for key in ("reward/realism", "reward/novelty", "reward/size", "entropy", "approx_kl"):
        assert key in ctx.curves.series, key
    # 256 steps in rollouts of 16 steps x 4 envs: exactly 4 PPO updates, logged at their global steps
    assert [s for s, _ in ctx.curves.series["approx_kl"]] == [64.0, 128.0, 192.0, 256.0]
    assert ctx.curves.series["total_timesteps"] == [(0.0, 256.0)]
    dz = pol.propose(latents[:32], seed=4)
    bound = pol.config.step_size * episode_length * latents.std(0) + 1e-5
    assert (dz.abs() <= bound).all()
    assert torch.equal(dz, pol.propose(latents[:32], seed=4))
    assert torch.equal(dz, pol.propose(latents[:32], seed=5))  # the mean action: no noise, the seed plays no part
    pol.config.sample = True  # --policy.sample: seeded draws from the policy
    drawn = pol.propose(latents[:32], seed=4)
    assert torch.equal(drawn, pol.propose(latents[:32], seed=4))
    assert not torch.equal(drawn, pol.propose(latents[:32], seed=5)) and not torch.equal(drawn, dz)


def test_plugin_same_seed_same_policy(fitted):
    gen, latents = fitted
    outs = []
    for _ in range(2):
        pol = PPOPolicy(tiny_config(PPOPolicy))
        pol.fit(gen, latents, FitContext(device=torch.device("cpu"), seed=3))
        outs.append(pol.propose(latents[:8], seed=0))
    assert torch.equal(outs[0], outs[1])


@pytest.mark.parametrize("option", ["step_size", "num_envs", "learning_rate"])  # total_timesteps 0 = auto
def test_bad_options_name_the_option(option):
    with pytest.raises(ConfigError, match=f"--policy.{option.replace('_', '-')}"):
        PPOPolicy(PPOPolicy.Config(**{option: 0}))


# ---------------------------------------------------- the consumer of the anomaly role


def test_transformer_classify_mode(digits_splits):
    cls = registry.load("detectors", "transformer")
    train = digits_splits.train[:160]
    pseudo = (train[:64] + 0.6 * torch.rand(train[:64].shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    det = cls(tiny_config(cls, mode="classify", epochs=4))
    ctx = FitContext(device=torch.device("cpu"), seed=0)
    det.fit(train, ctx, pseudo_anomalies=pseudo)
    assert "train/bce" in ctx.curves.series
    test = digits_splits.test.images[:40]
    s = det.score(test)
    assert s.image.shape == (40,) and s.image.dtype == torch.float32 and s.maps is None
    assert torch.equal(s.image, det.score(test).image)
    assert torch.allclose(det.score(test[:5]).image, s.image[:5], atol=1e-5)
    noisy = (test + 0.6 * torch.rand(test.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert det.score(noisy).image.mean() > s.image.mean()
    with pytest.raises(ValueError, match="--detector.mode classify"):
        cls(tiny_config(cls)).fit(train, ctx, pseudo_anomalies=pseudo)
    with pytest.raises(ValueError, match="--policy.role anomaly"):
        cls(tiny_config(cls, mode="classify")).fit(train, ctx)


def test_ppo_divergence_names_stage_and_last_finite_loss():
    """A policy whose loss turns non-finite (here a reward weight that overflows the value loss) stops fit with TrainingDiverged."""
    from benchbox.errors import TrainingDiverged
    from benchbox.interfaces import FitContext

    splits = registry.create("datasets", "digits").load(0)
    gen = registry.create("generators", "ae", epochs=1, base_channels=8)
    gen.fit(splits.train[:64], FitContext(device=torch.device("cpu"), seed=0))
    policy = registry.create("policies", "ppo", total_timesteps=256, num_envs=16, num_steps=8, w_size=1e300)
    with pytest.raises(TrainingDiverged, match=r"fit policy: ppo: PPO loss became .* last finite loss"):
        policy.fit(gen, gen.encode(splits.train[:64]), FitContext(device=torch.device("cpu"), seed=0, stage="fit policy"))


def test_auto_timesteps_follow_the_pixels():
    """--policy.total-timesteps 0 (the default): 32,768 up to 64 px a side, then 32,768 x (64 / side)^2,
    never below 2,048 -- hand values."""
    from benchbox_plugins.policies.latent_rl import auto_timesteps

    assert [auto_timesteps(s) for s in (8, 28, 64, 128, 224, 256, 1024)] == [32_768, 32_768, 32_768, 8_192, 2_674,
                                                                           2_048, 2_048]
    assert registry.create("policies", "ppo").config.total_timesteps == 0
    with pytest.raises(ConfigError, match="option 'total_timesteps' expects an integer >= 0, got -1"):
        registry.create("policies", "ppo", total_timesteps=-1)
