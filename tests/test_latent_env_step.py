"""The vector latent env's step runs under inference_mode: what that allows and what it keeps working."""

from __future__ import annotations

import pytest
import torch

from benchbox_plugins.rl.latent_env import LatentCore, LatentVectorEnv, RewardConfig

from test_latent_env_nn import Codec


@pytest.fixture(scope="module")
def latents():
    return torch.randn(40, 5, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("episode_length", [1, 3])
def test_reseeding_after_steps_restarts_like_a_fresh_env(latents, episode_length):
    """The state a step leaves (inference tensors) is replaced, never changed in place, by reset."""
    core = LatentCore(Codec(5), latents, RewardConfig(episode_length=episode_length))
    used, fresh = LatentVectorEnv(core, 4), LatentVectorEnv(core, 4)
    used.reset(seed=1)
    actions = torch.rand(4, 5, generator=torch.Generator().manual_seed(2)) * 2 - 1
    for _ in range(LatentVectorEnv.SOURCE_BLOCK + 2):  # past the first block of the one-step path
        used.step(actions)
    assert torch.equal(used.reset(seed=9)[0], fresh.reset(seed=9)[0])
    assert torch.equal(used.episode, torch.ones(4, dtype=torch.long))
    for _ in range(4):
        out_u, out_f = used.step(actions), fresh.step(actions)
        for x, y in zip(out_u[:4], out_f[:4]):
            assert torch.equal(x, y)
    assert torch.equal(used.episode, fresh.episode)


def test_step_outputs_feed_networks_and_buffers(latents):
    core = LatentCore(Codec(5), latents)
    env = LatentVectorEnv(core, 3)
    env.reset(seed=0)
    obs, reward, term, _, info = env.step(torch.zeros(3, 5))
    assert obs.is_inference() and not env.reset()[0].is_inference()
    net = torch.nn.Linear(core.obs_dim, 2)
    with torch.no_grad():
        net(obs)  # a rollout's forward pass
    buf = torch.zeros(2, 3, core.obs_dim)
    buf[0] = obs  # a rollout buffer copies it: an ordinary tensor, fit for the update's autograd
    net(buf[0]).sum().backward()
    assert net.weight.grad is not None
    with pytest.raises(RuntimeError, match="[Ii]nference"):
        net(obs).sum().backward()  # autograd cannot save an inference tensor: clone() it first
    net(obs.clone()).sum().backward()
