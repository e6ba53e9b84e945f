"""PPO's generalised advantage estimation against a three-step example worked by hand."""

from __future__ import annotations

import pytest
import torch

from benchbox_plugins.rl.ppo import gae

GAMMA, LAM = 0.9, 0.8  # gamma * lambda = 0.72


def test_gae_three_steps_by_hand():
    # two environments, three steps, the same rewards and values; env 0 runs one episode through
    # all three steps and bootstraps from V(next) = 2; in env 1 an episode ends after step 1
    # (dones[2] = 1: step 2 starts a new one) and the one started at step 2 ends too (next_done = 1)
    rewards = torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]], dtype=torch.float64)
    values = torch.tensor([[0.5, 0.5], [1.0, 1.0], [1.5, 1.5]], dtype=torch.float64)
    dones = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    next_value = torch.tensor([2.0, 2.0], dtype=torch.float64)
    next_done = torch.tensor([0.0, 1.0], dtype=torch.float64)
    adv, ret = gae(rewards, values, dones, next_value, next_done, GAMMA, LAM)
    # env 0: delta_2 = 3 + 0.9 * 2.0 - 1.5 = 3.3; delta_1 = 2 + 0.9 * 1.5 - 1.0 = 2.35; delta_0 = 1 + 0.9 * 1.0 - 0.5 = 1.4
    #        A_2 = 3.3; A_1 = 2.35 + 0.72 * 3.3 = 4.726; A_0 = 1.4 + 0.72 * 4.726 = 4.80272
    # env 1: delta_2 = 3 - 1.5 = 1.5 (terminal); delta_1 = 2 - 1.0 = 1.0 (no bootstrap across the boundary);
    #        delta_0 = 1.4; A_2 = 1.5; A_1 = 1.0 (nothing flows back across it); A_0 = 1.4 + 0.72 * 1.0 = 2.12
    expected = torch.tensor([[4.80272, 2.12], [4.726, 1.0], [3.3, 1.5]], dtype=torch.float64)
    assert torch.allclose(adv, expected, atol=1e-12), adv
    assert torch.allclose(ret, expected + values, atol=1e-12)  # returns = advantages + values
    # lambda = 0: one-step TD errors; lambda = 1, gamma = 1 with a terminal end: Monte-Carlo return - value
    td, _ = gae(rewards, values, dones, next_value, next_done, GAMMA, 0.0)
    assert torch.allclose(td[:, 0], torch.tensor([1.4, 2.35, 3.3], dtype=torch.float64), atol=1e-12)
    mc, _ = gae(rewards, values, torch.zeros_like(dones), next_value, torch.ones(2, dtype=torch.float64), 1.0, 1.0)
    assert mc[:, 0].tolist() == pytest.approx([6 - 0.5, 5 - 1.0, 3 - 1.5])
