"""Off-policy pieces (replay, Polyak, noise, NoisyNet, discretisation), DDPG and DQN on toy tasks, and the plugins."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from benchbox import registry
from benchbox.errors import ConfigError
from benchbox.interfaces import FitContext
from benchbox_plugins.rl import ddpg, dqn
from benchbox_plugins.rl.envs import DiscretizeAction
from benchbox_plugins.rl.latent_discrete import LatentDiscreteVecEnv, principal_directions
from benchbox_plugins.rl.latent_env import LatentCore, LatentVectorEnv, RewardConfig
from benchbox_plugins.rl.nets import polyak_update
from benchbox_plugins.rl.noise import GaussianNoise, OUNoise, linear_schedule
from benchbox_plugins.rl.replay import ReplayBuffer

from conftest import tiny_config

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: threads only add overhead
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------------------------ building blocks


def test_replay_buffer_wraps_around_and_samples_shapes():
    rb = ReplayBuffer(5, obs_dim=2, action_shape=(3,))
    for start in (0, 3):  # 3 rows, then 3 more: the second batch wraps to the front
        rows = torch.arange(start, start + 3, dtype=torch.float32)
        rb.add(rows[:, None].repeat(1, 2), rows[:, None].repeat(1, 3), rows, rows[:, None].repeat(1, 2) + 100,
               (rows % 2 == 0))
    assert len(rb) == 5 and rb.pos == 1
    assert rb.rewards.tolist() == [5.0, 1.0, 2.0, 3.0, 4.0]  # row 0 overwritten by transition 5
    assert rb.next_obs[0].tolist() == [105.0, 105.0] and rb.dones.tolist() == [0.0, 0.0, 1.0, 0.0, 1.0]
    b = rb.sample(64, torch.Generator().manual_seed(0))
    assert b.obs.shape == (64, 2) and b.actions.shape == (64, 3) and b.rewards.shape == (64,) and b.dones.shape == (64,)
    # each sampled row is one consistent transition, and every stored one shows up
    assert torch.equal(b.obs[:, 0], b.rewards) and torch.equal(b.next_obs[:, 0], b.rewards + 100)
    assert set(b.rewards.tolist()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    b2 = rb.sample(64, torch.Generator().manual_seed(0))
    assert torch.equal(b.rewards, b2.rewards)
    rb.add(torch.zeros(7, 2), torch.zeros(7, 3), torch.arange(7.0), torch.zeros(7, 2), torch.zeros(7))  # > capacity
    assert sorted(rb.rewards.tolist()) == [2.0, 3.0, 4.0, 5.0, 6.0]
    dqn_rb = ReplayBuffer(4, 1, (), torch.long)
    dqn_rb.add(torch.zeros(2, 1), torch.tensor([3, 1]), torch.zeros(2), torch.zeros(2, 1), torch.zeros(2))
    assert dqn_rb.sample(8, torch.Generator().manual_seed(1)).actions.dtype == torch.long


def test_polyak_update_math():
    src, tgt = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    before = [p.detach().clone() for p in tgt.parameters()]
    polyak_update(tgt, src, 0.1)
    for t, s, b in zip(tgt.parameters(), src.parameters(), before):
        assert torch.allclose(t, 0.1 * s + 0.9 * b, atol=1e-6)
    polyak_update(tgt, src, 1.0)
    assert all(torch.equal(t, s) for t, s in zip(tgt.parameters(), src.parameters()))


def test_linear_schedule():
    assert linear_schedule(1.0, 0.1, 100, 0) == 1.0
    assert linear_schedule(1.0, 0.1, 100, 50) == pytest.approx(0.55)
    assert linear_schedule(1.0, 0.1, 100, 500) == 0.1


def test_ou_noise_statistics_and_reset():
    sigma, theta, dt = 0.3, 0.5, 0.1
    ou = OUNoise((2000, 1), sigma=sigma, theta=theta, dt=dt, generator=torch.Generator().manual_seed(0))
    xs = torch.stack([ou.sample() for _ in range(300)])  # 300 steps: theta * dt * 300 = 15 relaxation times
    stationary = xs[-1].flatten()
    # Euler-Maruyama stationary variance sigma^2 dt / (1 - (1 - theta dt)^2), ~ sigma^2 / (2 theta)
    expected = sigma**2 * dt / (1 - (1 - theta * dt) ** 2)
    assert abs(float(stationary.mean())) < 0.03
    assert float(stationary.var()) == pytest.approx(expected, rel=0.12)
    lag = torch.corrcoef(torch.stack([xs[-2].flatten(), xs[-1].flatten()]))[0, 1]
    assert float(lag) == pytest.approx(1 - theta * dt, abs=0.02)  # correlated, unlike Gaussian noise
    mask = torch.zeros(2000, dtype=torch.bool)
    mask[:10] = True
    ou.reset(mask)
    assert torch.count_nonzero(ou.x[:10]) == 0 and torch.count_nonzero(ou.x[10:]) > 0
    ou.reset()
    assert torch.count_nonzero(ou.x) == 0
    g = GaussianNoise((5000,), 0.2, torch.Generator().manual_seed(0))
    a, b = g.sample(), g.sample()
    assert float(a.std()) == pytest.approx(0.2, rel=0.05) and abs(float(torch.corrcoef(torch.stack([a, b]))[0, 1])) < 0.05


def test_noisy_linear_resamples_in_train_and_is_deterministic_in_eval():
    torch.manual_seed(0)
    layer = dqn.NoisyLinear(4, 3, sigma0=0.5)
    x = torch.randn(5, 4)
    gen = torch.Generator().manual_seed(0)
    layer.reset_noise(gen)
    y1 = layer(x)
    assert torch.equal(y1, layer(x))  # same noise sample -> same output
    layer.reset_noise(gen)
    y2 = layer(x)
    assert not torch.allclose(y1, y2)
    layer.eval()
    e1 = layer(x)
    layer.reset_noise(gen)
    assert torch.equal(e1, layer(x))
    assert torch.allclose(e1, x @ layer.weight_mu.T + layer.bias_mu)
    # factorised noise: the weight noise is the rank-one outer product of f(eps_out), f(eps_in)
    layer.train()
    eps_w = torch.outer(layer.eps_out, layer.eps_in)
    assert torch.linalg.matrix_rank(eps_w) == 1
    y = layer(x)
    assert torch.allclose(y, x @ (layer.weight_mu + layer.weight_sigma * eps_w).T + layer.bias_mu
                          + layer.bias_sigma * layer.eps_out, atol=1e-6)
    # gradients reach the noise scales
    y.sum().backward()
    assert layer.weight_sigma.grad is not None and layer.weight_sigma.grad.abs().sum() > 0


def test_discretize_action_maps_indices_to_torques():
    env = DiscretizeAction(gym.make("Pendulum-v1"), bins=5)
    assert env.action_space == gym.spaces.Discrete(5)
    assert [float(env.action(i)[0]) for i in range(5)] == [-2.0, -1.0, 0.0, 1.0, 2.0]
    assert env.action(3).shape == (1,)
    box = gym.Env()
    box.action_space = gym.spaces.Box(np.array([0.0, -1.0], np.float32), np.array([1.0, 1.0], np.float32))
    box.observation_space = gym.spaces.Box(-1, 1, (1,), np.float32)
    grid = DiscretizeAction(box, bins=3)
    assert grid.action_space.n == 9
    assert grid.action(0).tolist() == [0.0, -1.0] and grid.action(5).tolist() == [0.5, 1.0]
    assert grid.action(8).tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="bins must be >= 2"):
        DiscretizeAction(gym.make("Pendulum-v1"), bins=1)
    env.reset(seed=0)  # the wrapped env really receives the torque
    _, r_wrapped, *_ = env.step(0)
    raw = gym.make("Pendulum-v1")
    raw.reset(seed=0)
    _, r_raw, *_ = raw.step(np.array([-2.0], np.float32))
    assert r_wrapped == r_raw


# ------------------------------------------------------------------------------- latent env


class LinearGenerator:
    """decode/encode by a fixed orthogonal map (consistent everywhere), enough for the latent env maths."""

    latent_dim = 6

    def encode(self, images):
        return images.reshape(len(images), -1)[:, :6]

    def decode(self, z):
        return torch.cat([z, torch.zeros(len(z), 10)], 1).reshape(len(z), 1, 4, 4)


def toy_latents(m: int = 200, d: int = 6) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    scales = torch.tensor([5.0, 3.0, 2.0, 1.0, 0.5, 0.2])[:d]
    mix = torch.linalg.qr(torch.randn(d, d, generator=gen))[0]
    return (torch.randn(m, d, generator=gen) * scales) @ mix + 3.0


def test_latent_discrete_actions_are_steps_along_pca_directions():
    latents = toy_latents()
    core = LatentCore(LinearGenerator(), latents, RewardConfig(step_size=0.7))
    env = LatentDiscreteVecEnv(LatentVectorEnv(core, 4), k=3)
    u = env.directions
    assert u.shape == (3, 6) and env.single_action_space.n == 6
    assert torch.allclose(u @ u.T, torch.eye(3), atol=1e-5)  # orthonormal
    zn = (latents - latents.mean(0)) / latents.std(0)
    var = ((zn - zn.mean(0)) @ u.T).var(0)
    eig = torch.linalg.eigvalsh(torch.cov(zn.T)).flip(0)
    assert torch.allclose(var, eig[:3], rtol=1e-3)  # the top-3 principal directions, in order
    step = env.continuous(torch.tensor([0, 1, 4, 5]))
    expected = torch.stack([u[0], -u[0], u[2], -u[2]])
    assert torch.allclose(step, expected)  # +/- u_k, never clipped by the base env (|u_k,i| <= 1)
    assert torch.allclose(core.delta(step) / core.sigma, 0.7 * expected, atol=1e-6)
    with pytest.raises(ValueError, match="K must be in"):
        principal_directions(core, 7)


def test_latent_discrete_step_moves_z_by_the_table():
    latents = toy_latents()
    core = LatentCore(LinearGenerator(), latents, RewardConfig(step_size=0.5, episode_length=2))
    env = LatentDiscreteVecEnv(LatentVectorEnv(core, 3), k=2)
    env.reset(seed=1)
    z0 = env.env.z.clone()
    obs, reward, term, trunc, info = env.step(torch.tensor([0, 3, 2]))
    assert not term.any() and reward.shape == (3,)
    moved = (env.env.z - z0) / core.sigma
    assert torch.allclose(moved, 0.5 * torch.stack([env.directions[0], -env.directions[1], env.directions[1]]), atol=1e-5)
    assert torch.allclose(obs[:, 6:12], moved, atol=1e-5)  # the observation's (z - z0) / sigma block


# ----------------------------------------------------------------------------- learning checks


class ContinuousBandit:
    """Torch vector env, one-step episodes, constant observation, reward -(a - 0.5)^2."""

    def __init__(self, n: int):
        self.num_envs = n
        self.single_observation_space = gym.spaces.Box(-1, 1, (1,), np.float32)
        self.single_action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def reset(self, seed=None):
        return torch.ones(self.num_envs, 1), {}

    def step(self, action):
        reward = -((action.clamp(-1, 1)[:, 0] - 0.5) ** 2)
        done = torch.ones(self.num_envs, dtype=torch.bool)
        obs = torch.ones(self.num_envs, 1)
        return obs, reward, done, torch.zeros_like(done), {"final_obs": obs, "_final_obs": done}


class TwoArmedBandit:
    """Torch vector env with Discrete(2): arm 1 pays 1, arm 0 pays 0 (plus noise), one-step episodes."""

    def __init__(self, n: int):
        self.num_envs = n
        self.single_observation_space = gym.spaces.Box(-1, 1, (1,), np.float32)
        self.single_action_space = gym.spaces.Discrete(2)
        self.gen = torch.Generator().manual_seed(0)

    def reset(self, seed=None):
        return torch.ones(self.num_envs, 1), {}

    def step(self, action):
        reward = action.float() + 0.3 * torch.randn(self.num_envs, generator=self.gen)
        done = torch.ones(self.num_envs, dtype=torch.bool)
        obs = torch.ones(self.num_envs, 1)
        return obs, reward, done, torch.zeros_like(done), {"final_obs": obs, "_final_obs": done}


def test_ddpg_learns_a_continuous_bandit():
    args = ddpg.Args(total_timesteps=600, num_envs=1, learning_starts=50, batch_size=32, hidden=(32, 32),
                     learning_rate=3e-3, tau=0.05, noise_sigma=0.3, log_every=100, progress=False)
    actor, critic, history = ddpg.train(args, ContinuousBandit(1))
    with torch.no_grad():
        a = float(actor(torch.ones(1, 1)))
    assert abs(a - 0.5) < 0.1, a
    assert history[-1]["global_step"] == 600 and history[-1]["updates"] == 551  # one per step from step 50 on
    with torch.no_grad():
        q_best, q_far = critic(torch.ones(1, 1), torch.tensor([[0.5]])), critic(torch.ones(1, 1), torch.tensor([[-0.8]]))
    assert float(q_best) > float(q_far)


@pytest.mark.parametrize("noise", ["gaussian", "ou"])
def test_ddpg_same_seed_same_actor(noise):
    args = ddpg.Args(total_timesteps=120, num_envs=4, learning_starts=40, batch_size=16, hidden=(16,), noise=noise,
                     log_every=40, progress=False)
    a1, _, h1 = ddpg.train(args, ContinuousBandit(4))
    a2, _, h2 = ddpg.train(args, ContinuousBandit(4))
    assert all(torch.equal(p, q) for p, q in zip(a1.parameters(), a2.parameters()))
    assert [r["qf_loss"] for r in h1] == [r["qf_loss"] for r in h2]
    a3, _, _ = ddpg.train(ddpg.Args(**{**args.__dict__, "seed": 2}), ContinuousBandit(4))
    assert not all(torch.equal(p, q) for p, q in zip(a1.parameters(), a3.parameters()))


@pytest.mark.parametrize("noisy", [False, True])
def test_dqn_learns_a_two_armed_bandit(noisy):
    args = dqn.Args(total_timesteps=600, num_envs=4, learning_starts=64, batch_size=32, hidden=(16,),
                    target_network_frequency=20, exploration_fraction=0.3, noisy=noisy, log_every=200, progress=False)
    q_net, history = dqn.train(args, TwoArmedBandit(4))
    with torch.no_grad():
        q = q_net(torch.ones(1, 1))[0]
    assert float(q[1] - q[0]) > 0.5, q
    assert abs(float(q[1]) - 1.0) < 0.3 and abs(float(q[0])) < 0.3  # one-step episodes: Q = expected reward
    assert history[-1]["episodic_return"] > 0.8  # the last 200 steps mostly pull the paying arm
    assert not q_net.training


def test_dqn_same_seed_same_network():
    args = dqn.Args(total_timesteps=200, num_envs=4, learning_starts=32, batch_size=16, hidden=(8,), noisy=True,
                    log_every=100, progress=False)
    n1, _ = dqn.train(args, TwoArmedBandit(4))
    n2, _ = dqn.train(args, TwoArmedBandit(4))
    assert all(torch.equal(p, q) for p, q in zip(n1.parameters(), n2.parameters()))


@pytest.mark.parametrize("env_id,low,high", [("Pendulum-v1", -2000, 0), ("CartPole-v1", 1, 500)])
def test_dqn_standalone_writes_outputs(tmp_path, env_id, low, high):
    def once(out_dir):
        return dqn.run(dqn.Args(env_id=env_id, bins=5, total_timesteps=300, learning_starts=100, batch_size=16,
                                hidden=(16,), eval_episodes=1, log_every=100, progress=False, out_dir=str(out_dir)))

    summary = once(tmp_path / "a")
    out = Path(summary["out"])
    progress = (out / "progress.csv").read_text()
    assert progress.startswith("global_step,episodic_return")
    assert (out / "returns.png").stat().st_size > 0
    assert len(summary["eval_returns"]) == 1 and summary["total_timesteps"] == 300
    assert low <= summary["eval_returns"][0] <= high
    again = once(tmp_path / "b")  # same seed, same device: the same training log and the same evaluation
    assert again["eval_returns"] == summary["eval_returns"]
    assert _steps_and_returns(Path(again["out"]) / "progress.csv") == _steps_and_returns(out / "progress.csv")


def _steps_and_returns(path: Path) -> list[tuple[str, str]]:
    """(global_step, episodic_return) of each progress.csv row (the wall-clock columns differ run to run)."""
    rows = [line.split(",") for line in path.read_text().splitlines()]
    return [(r[0], r[1]) for r in rows]


def test_ddpg_standalone_pendulum_writes_outputs(tmp_path):
    summary = ddpg.run(ddpg.Args(env_id="Pendulum-v1", total_timesteps=300, learning_starts=100, batch_size=16,
                                 hidden=(16,), eval_episodes=1, log_every=100, progress=False, out_dir=str(tmp_path)))
    out = tmp_path / next(p.name for p in tmp_path.iterdir())
    assert (out / "progress.csv").read_text().startswith("global_step,episodic_return")
    assert len(summary["eval_returns"]) == 1 and summary["total_timesteps"] == 300
    with pytest.raises(ValueError, match="Box"):
        ddpg.run(ddpg.Args(env_id="CartPole-v1", progress=False, out_dir=str(tmp_path)))


# ---------------------------------------------------------------------------------- plugins


@pytest.fixture(scope="module")
def fitted(digits_splits):
    gen = registry.create("generators", "ae", tiny_config(registry.load("generators", "ae")))
    gen.fit(digits_splits.train, FitContext(device=CPU, seed=0))
    return gen, gen.encode(digits_splits.train)


@pytest.mark.parametrize("name,overrides", [("ddpg", {}), ("ddpg", {"noise": "ou", "episode_length": 2}),
                                            ("dqn", {}), ("dqn", {"noisy": True, "episode_length": 2})])
def test_plugin_fit_and_propose(fitted, name, overrides):
    gen, latents = fitted
    cls = registry.load("policies", name)
    pol = registry.create("policies", name, **{**tiny_config(cls).__dict__, "learning_starts": 64, "gradient_steps": 2, **overrides})
    ctx = FitContext(device=CPU, seed=0)
    pol.fit(gen, latents, ctx)
    for key in ("reward/realism", "reward/novelty", "episodic_return"):
        assert key in ctx.curves.series, key
    assert ("qf_loss" if name == "ddpg" else "td_loss") in ctx.curves.series
    # 256 steps over 4 envs, logged every vector step (log_every = num_envs): 64 rows, at steps 4, 8, ..., 256
    assert [s for s, _ in ctx.curves.series["reward/realism"]] == [4.0 * i for i in range(1, 65)]
    z = latents[:32]
    dz = pol.propose(z, seed=4)
    assert dz.shape == z.shape and dz.dtype == z.dtype and torch.isfinite(dz).all()
    assert torch.equal(dz, pol.propose(z, seed=4))
    assert torch.equal(dz, pol.propose(z, seed=5))  # deterministic actor / greedy move: the seed plays no part
    pol.config.sample = True  # --policy.sample: seeded propose noise / random moves
    assert not torch.equal(pol.propose(z, seed=4), pol.propose(z, seed=5))
    pol.config.sample = False
    ep = pol.config.episode_length
    sigma = latents.std(0)
    if name == "ddpg":
        assert (dz.abs() <= pol.config.step_size * ep * sigma + 1e-5).all()
    else:  # every step is +/- step_size * sqrt(d) along a principal direction, in std units
        d = latents.shape[1]
        norms = (dz / sigma).norm(dim=1)
        assert (norms <= pol.config.step_size * d**0.5 * ep + 1e-3).all()
        if ep == 1:
            assert torch.allclose(norms, torch.full_like(norms, pol.config.step_size * d**0.5), rtol=1e-3)


@pytest.mark.parametrize("name", ["ddpg", "dqn"])
def test_plugin_same_seed_same_policy(fitted, name):
    gen, latents = fitted
    cls = registry.load("policies", name)
    outs = []
    for _ in range(2):
        pol = cls(tiny_config(cls, learning_starts=64, gradient_steps=2))
        pol.fit(gen, latents, FitContext(device=CPU, seed=3))
        outs.append(pol.propose(latents[:8], seed=0))
    assert torch.equal(outs[0], outs[1])


@pytest.mark.parametrize("name,option,value", [("ddpg", "step_size", 0), ("ddpg", "batch_size", 0),
                                               ("ddpg", "tau", 2.0), ("ddpg", "noise", "pink"),
                                               ("dqn", "directions", 0), ("dqn", "end_e", 1.5),
                                               ("dqn", "total_timesteps", -1)])
def test_bad_options_name_the_option(name, option, value):
    cls = registry.load("policies", name)
    with pytest.raises(ConfigError, match=f"--policy.{option.replace('_', '-')}"):
        cls(cls.Config(**{option: value}))


def test_dqn_too_many_directions_fails_at_fit(fitted):
    gen, latents = fitted
    pol = registry.create("policies", "dqn", directions=latents.shape[1] + 1)
    with pytest.raises(ConfigError, match="--policy.directions must be <="):
        pol.fit(gen, latents, FitContext(device=CPU, seed=0))
