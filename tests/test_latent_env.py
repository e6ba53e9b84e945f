"""The latent augmentation environment: gymnasium checks, vector/single agreement, reward terms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from torch.overrides import TorchFunctionMode

from benchbox import registry
from benchbox.interfaces import FitContext
from benchbox_plugins.rl.latent_env import LatentCore, LatentEnv, LatentVectorEnv, RewardConfig

from conftest import tiny_config


@pytest.fixture(scope="module")
def core_parts(digits_splits):
    gen = registry.create("generators", "ae", tiny_config(registry.load("generators", "ae")))
    gen.fit(digits_splits.train, FitContext(device=torch.device("cpu"), seed=0))
    return gen, gen.encode(digits_splits.train)


def _core(core_parts, **kw) -> LatentCore:
    gen, latents = core_parts
    return LatentCore(gen, latents, RewardConfig(**kw))


def test_check_env_passes(core_parts):
    check_env(LatentEnv(_core(core_parts)), skip_render_check=True)
    check_env(LatentEnv(_core(core_parts, episode_length=3)), skip_render_check=True)


@pytest.mark.parametrize("episode_length", [1, 3])
def test_vector_matches_single_envs(core_parts, episode_length):
    core = _core(core_parts, episode_length=episode_length)
    n, steps = 5, 7
    venv = LatentVectorEnv(core, n)
    singles = [LatentEnv(core) for _ in range(n)]
    obs_v, _ = venv.reset(seed=11)
    obs_s = [env.reset(seed=11 + i)[0] for i, env in enumerate(singles)]
    assert np.allclose(obs_v.numpy(), np.stack(obs_s), atol=1e-6)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        actions = rng.uniform(-1, 1, (n, core.d)).astype(np.float32)
        obs_v, rew_v, term_v, trunc_v, info = venv.step(torch.from_numpy(actions))
        for i, env in enumerate(singles):
            o, r, term, trunc, inf = env.step(actions[i])
            assert abs(float(rew_v[i]) - r) < 1e-4
            assert abs(float(info["realism"][i]) - inf["realism"]) < 1e-4
            assert bool(trunc_v[i]) == trunc and bool(term_v[i]) == term
            if term:
                assert bool(info["_final_obs"][i])
                assert np.allclose(info["final_obs"][i].numpy(), o, atol=1e-5)
                o, _ = env.reset()  # what SAME_STEP autoreset returns
            assert np.allclose(obs_v[i].numpy(), o, atol=1e-5)


def test_reward_terms_and_band(core_parts):
    core = _core(core_parts)
    lo, hi = core.band
    assert 0 < lo < hi
    z = core.latents[:8]
    zero = torch.zeros_like(z)
    total, terms = core.reward(z, zero)
    assert set(terms) == {"realism", "novelty", "size"}
    assert torch.equal(terms["size"], torch.zeros(8))
    # a training latent is at distance 0 from itself: below the band, so novelty is negative
    assert (terms["novelty"] < 0).all()
    far = core.reward(z + 50 * core.sigma, zero)[1]
    assert (far["novelty"] == -core.cfg.novelty_clip).all() and (far["realism"] < terms["realism"]).all()
    anomaly = _core(core_parts, role="anomaly")
    assert anomaly.band[0] > lo


def test_source_draw_is_deterministic(core_parts):
    core = _core(core_parts)
    v1, v2 = LatentVectorEnv(core, 16), LatentVectorEnv(core, 16)
    assert torch.equal(v1.reset(seed=3)[0], v2.reset(seed=3)[0])
    assert not torch.equal(v1.reset(seed=3)[0], v1.reset(seed=4)[0])
    idx = core.source_index(torch.zeros(4000, dtype=torch.long), torch.arange(4000))
    counts = torch.bincount(idx, minlength=len(core.latents)).float()
    assert counts.min() > 0.3 * counts.mean()  # roughly uniform


def test_bad_config_is_one_clear_error(core_parts):
    with pytest.raises(ValueError, match="step_size"):
        _core(core_parts, step_size=0)


class HostReads(TorchFunctionMode):
    """Records every tensor call that reads a value back to the host or moves a tensor to the CPU.

    On a CPU-only machine a move to ``core.device`` cannot be told from a move to the host, so this
    catches what can be caught: ``.cpu()``, ``.to("cpu")``, ``.numpy()``, ``.tolist()``, ``.item()`` and
    the implicit reads of ``bool(t)``, ``float(t)``, ``int(t)`` (each a device sync on a GPU)."""

    HOST = {"cpu", "numpy", "tolist", "item", "__bool__", "__float__", "__int__", "__index__"}

    def __init__(self):
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        device = kwargs.get("device", args[1] if name == "to" and len(args) > 1 else None)
        if name in self.HOST or (isinstance(device, str) and device.startswith("cpu")):
            self.calls.append(name)
        return func(*args, **kwargs)


def test_the_host_read_check_sees_what_it_must_refuse():
    t = torch.ones(3)
    with HostReads() as mode:
        bool(t.any()), t.cpu(), t.to("cpu"), float(t.sum()), t.numpy(), t[0].item(), t.to(torch.float64)
    assert mode.calls == ["__bool__", "cpu", "to", "__float__", "numpy", "item"]


def test_a_vector_step_reads_nothing_back_to_the_host(core_parts):
    """The step path (codec round trip, reward terms, autoreset, info) never leaves the device; the old
    ``consistency()`` (``z.cpu()`` then back) and ``if terminated.any()`` both failed this."""
    core = _core(core_parts, episode_length=2)
    env = LatentVectorEnv(core, 6)
    env.reset(seed=0)
    actions = torch.rand(6, core.d, generator=torch.Generator().manual_seed(0)) * 2 - 1
    infos = []
    with HostReads() as mode:
        for _ in range(3):  # crosses an episode end and its autoreset
            infos.append(env.step(actions))
    assert mode.calls == []
    (_, r1, term1, _, info1), (_, r2, term2, _, info2) = infos[:2]
    assert not term1.any() and not info1["_final_obs"].any() and term2.all()  # keys present, masks say which
    assert torch.allclose(info2["final_info"]["episode"]["r"], r1 + r2)
    assert torch.equal(info2["final_info"]["episode"]["l"], torch.full((6,), 2))


def test_one_step_autoreset_path_equals_the_general_path(core_parts):
    """episode_length = 1 takes a short autoreset path (hashed source blocks, first-observation table):
    bit-identical to the general path over more steps than a block, and after a reseed."""
    core = _core(core_parts)
    fast, general = LatentVectorEnv(core, 5), LatentVectorEnv(core, 5)
    general.one_step = False
    assert fast.one_step
    gen = torch.Generator().manual_seed(1)
    for seed, steps in ((7, LatentVectorEnv.SOURCE_BLOCK + 6), (8, 3)):
        assert torch.equal(fast.reset(seed=seed)[0], general.reset(seed=seed)[0])
        for _ in range(steps):
            a = torch.rand(5, core.d, generator=gen) * 2 - 1
            out_f, out_g = fast.step(a), general.step(a)
            for x, y in zip(out_f[:4], out_g[:4]):
                assert torch.equal(x, y)
            for key in ("final_obs", "_final_obs", *core.terms):
                assert torch.equal(out_f[4][key], out_g[4][key])
            for key in ("r", "l"):
                assert torch.equal(out_f[4]["final_info"]["episode"][key], out_g[4]["final_info"]["episode"][key])
        assert torch.equal(fast.episode, general.episode)
