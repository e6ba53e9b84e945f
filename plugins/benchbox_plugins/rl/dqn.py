"""DQN (optionally Double DQN and NoisyNet) in one file (cleanrl style).

Standalone, on any gymnasium environment with a Discrete action space, or a Box one cut into
``--bins`` values per dimension by :class:`~benchbox_plugins.rl.envs.DiscretizeAction`::

    python -m benchbox_plugins.rl.dqn --env-id Pendulum-v1 --bins 9      # torques -2, -1.5, ..., 2
    python -m benchbox_plugins.rl.dqn --env-id CartPole-v1 --gamma 0.99
    python -m benchbox_plugins.rl.dqn --env-id Pendulum-v1 --noisy        # NoisyNet exploration

writes ``<out-dir>/<run>/progress.csv``, ``returns.png`` and ``eval.json`` (returns of the final
evaluation episodes with greedy actions on a fresh env).

What is in it (Mnih et al. 2015): an MLP Q-network; a uniform replay buffer; epsilon-greedy
exploration with epsilon decaying linearly from ``start_e`` to ``end_e`` over the first
``exploration_fraction`` of the steps; a target network updated every
``target_network_frequency`` gradient updates (``tau = 1``: hard copy; ``tau < 1``: Polyak);
the Huber loss on ``r + gamma * (1 - terminated) * Q'(s', argmax)`` (``--double``: the argmax is
taken by the online network, van Hasselt et al. 2016; otherwise by the target network); global
gradient-norm clipping; time-limit truncations bootstrap from the final observation.

``--noisy`` (Fortunato et al. 2018) replaces every linear layer by a :class:`NoisyLinear` with
factorised Gaussian noise and turns epsilon-greedy off (``epsilon = 0``): exploration comes from
the learned noise scales. Fresh noise is drawn before every acting step and, independently for the
online and the target network, before every update; evaluation (``eval()`` mode) uses the mean
weights, so greedy actions are deterministic.

The defaults are settings for Pendulum-v1 with 9 torque bins (gamma 0.98, lr 1e-3, batch 128,
target copy every 500 updates, epsilon 1 -> 0.05 over the first 20 % of 30k steps).

It imports nothing from benchbox; the ``dqn`` latent policy (:mod:`benchbox_plugins.policies.dqn`)
runs ``train`` on the discrete form of the latent environment
(:mod:`benchbox_plugins.rl.latent_discrete`): ``2K`` actions, +/- one step along the top-K
principal directions of the training latents.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from benchbox_plugins.rl.envs import DiscretizeAction, TorchDiscreteVecEnv, evaluate_episodes, make_vec_env
from benchbox_plugins.rl.nets import mlp, polyak_update
from benchbox_plugins.rl.noise import linear_schedule
from benchbox_plugins.rl.replay import ReplayBuffer, step_into_buffer
from benchbox_plugins.rl.runlog import RunArgs, TrainLog, print_summary, run_standalone


@dataclass
class Args(RunArgs):
    exp_name: str = "dqn"
    out_dir: str = "runs/dqn"
    env_id: str = "Pendulum-v1"
    """A gymnasium id with a Discrete action space, or a Box one (then cut into --bins values per dimension)."""
    bins: int = 9
    """Values per action dimension when the env's action space is a Box (Pendulum: 9 torques -2, -1.5, ..., 2)."""
    learning_rate: float = 1e-3
    num_envs: int = 1
    buffer_size: int = 50_000
    gamma: float = 0.98
    tau: float = 1.0
    """Target network update coefficient (1 = hard copy)."""
    target_network_frequency: int = 500
    """Update the target network every this many gradient updates."""
    batch_size: int = 128
    start_e: float = 1.0
    end_e: float = 0.05
    exploration_fraction: float = 0.2
    """Fraction of total_timesteps over which epsilon decays from start_e to end_e."""
    learning_starts: int = 1_000
    """Transitions collected before learning starts."""
    train_frequency: int = 1
    """Vector steps between rounds of gradient updates."""
    gradient_steps: int = 1
    """Gradient updates per round."""
    double: bool = True
    """Double DQN target (online argmax, target value)."""
    noisy: bool = False
    """NoisyNet: factorised Gaussian noisy layers instead of epsilon-greedy exploration."""
    noisy_sigma0: float = 0.5
    """Initial noise scale of the noisy layers (sigma = sigma0 / sqrt(fan_in))."""
    max_grad_norm: float = 10.0
    hidden: tuple[int, ...] = (128, 128)
    log_every: int = 1000
    """Write a progress row every this many environment steps."""


# ------------------------------------------------------------------------------------ networks


class NoisyLinear(nn.Module):
    """Linear layer with factorised Gaussian noise: ``w = mu_w + sigma_w * (f(e_out) f(e_in)^T)``,
    ``b = mu_b + sigma_b * f(e_out)``, ``f(x) = sign(x) sqrt(|x|)``, ``e ~ N(0, 1)``.

    In ``train()`` mode the forward pass uses the current noise sample (``reset_noise`` draws a new
    one); in ``eval()`` mode it uses the mean weights only.
    """

    def __init__(self, in_features: int, out_features: int, sigma0: float = 0.5):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features)
        self.weight_mu = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        self.weight_sigma = nn.Parameter(torch.full((out_features, in_features), sigma0 * bound))
        self.bias_mu = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))
        self.bias_sigma = nn.Parameter(torch.full((out_features,), sigma0 * bound))
        self.register_buffer("eps_in", torch.zeros(in_features))
        self.register_buffer("eps_out", torch.zeros(out_features))

    @staticmethod
    def _f(x: torch.Tensor) -> torch.Tensor:
        return x.sign() * x.abs().sqrt()

    @torch.no_grad()
    def reset_noise(self, generator: torch.Generator | None = None) -> None:
        dev = self.eps_in.device
        self.eps_in.copy_(self._f(torch.randn(self.in_features, generator=generator)).to(dev))
        self.eps_out.copy_(self._f(torch.randn(self.out_features, generator=generator)).to(dev))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return F.linear(x, self.weight_mu, self.bias_mu)
        weight = self.weight_mu + self.weight_sigma * torch.outer(self.eps_out, self.eps_in)
        return F.linear(x, weight, self.bias_mu + self.bias_sigma * self.eps_out)


class QNetwork(nn.Module):
    def __init__(self, obs_dim: int, n_actions: int, hidden: tuple[int, ...], noisy: bool = False, sigma0: float = 0.5):
        super().__init__()
        layer = functools.partial(NoisyLinear, sigma0=sigma0) if noisy else nn.Linear
        self.net = mlp([obs_dim, *hidden, n_actions], layer=layer)
        self.noisy = noisy

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs)

    def reset_noise(self, generator: torch.Generator | None = None) -> None:
        for m in self.net:
            if isinstance(m, NoisyLinear):
                m.reset_noise(generator)


# -------------------------------------------------------------------------------------- train


def train(args: Args, envs: Any, on_update: Callable[[dict[str, float]], None] | None = None,
          info_keys: tuple[str, ...] = ()) -> tuple[QNetwork, list[dict[str, float]]]:
    """Run DQN on ``envs`` (torch in/out, int64 action indices, SAME_STEP autoreset).

    Returns the Q-network (in ``eval()`` mode) and one log row per ``log_every`` steps.
    """
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    n = envs.num_envs
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    n_actions = int(envs.single_action_space.n)
    q_net = QNetwork(obs_dim, n_actions, tuple(args.hidden), args.noisy, args.noisy_sigma0).to(device)
    target = QNetwork(obs_dim, n_actions, tuple(args.hidden), args.noisy, args.noisy_sigma0).to(device)
    target.load_state_dict(q_net.state_dict())
    optimizer = torch.optim.Adam(q_net.parameters(), lr=args.learning_rate)
    rb = ReplayBuffer(args.buffer_size, obs_dim, (), torch.long, device=device)

    obs, _ = envs.reset(seed=args.seed)
    obs = obs.float().reshape(n, -1)
    log = TrainLog(n, device, info_keys)
    global_step = updates = 0
    start = time.time()
    num_vector_steps = max(1, math.ceil(args.total_timesteps / n))
    explore_steps = args.exploration_fraction * args.total_timesteps

    for vstep in range(num_vector_steps):
        global_step += n
        epsilon = 0.0 if args.noisy else linear_schedule(args.start_e, args.end_e, explore_steps, global_step)
        with torch.no_grad():
            if args.noisy:
                q_net.reset_noise(gen)
            greedy = q_net(obs).argmax(1)
        explore = (torch.rand(n, generator=gen) < epsilon).to(device)
        random_actions = torch.randint(0, n_actions, (n,), generator=gen).to(device)
        action = torch.where(explore, random_actions, greedy)
        obs, done = step_into_buffer(envs, rb, obs, action, log)

        # ---- learn
        if len(rb) >= args.learning_starts and vstep % args.train_frequency == 0:
            for _g in range(args.gradient_steps):
                b = rb.sample(args.batch_size, gen)
                with torch.no_grad():
                    if args.noisy:
                        target.reset_noise(gen)
                    q_next_all = target(b.next_obs)
                    if args.double:
                        if args.noisy:
                            q_net.reset_noise(gen)
                        best = q_net(b.next_obs).argmax(1, keepdim=True)
                        q_next = q_next_all.gather(1, best).squeeze(1)
                    else:
                        q_next = q_next_all.max(1).values
                    td_target = b.rewards + args.gamma * (1.0 - b.dones) * q_next
                if args.noisy:
                    q_net.reset_noise(gen)
                q = q_net(b.obs).gather(1, b.actions.unsqueeze(1)).squeeze(1)
                loss = F.smooth_l1_loss(q, td_target)
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(q_net.parameters(), args.max_grad_norm)
                optimizer.step()
                updates += 1
                log.add(td_loss=float(loss.detach()), q=float(q.detach().mean()))
                if updates % args.target_network_frequency == 0:
                    polyak_update(target, q_net, args.tau)

        # ---- log
        if log.due(global_step, n, args.log_every, args.total_timesteps):
            row = {
                "global_step": global_step,
                **log.returns(),
                "updates": updates,
                "epsilon": epsilon,
                "td_loss": log.mean("td_loss"), "q_mean": log.mean("q"),
                "action_entropy": _entropy(action, n_actions) if n > 1 else float("nan"),
                "sps": global_step / max(time.time() - start, 1e-9),
            }
            log.finish(row, on_update, loss="td_loss", what="DQN TD loss")
        if global_step >= args.total_timesteps:
            break
    q_net.eval()
    return q_net, log.history


def _entropy(actions: torch.Tensor, n_actions: int) -> float:
    """Entropy (nats) of the empirical distribution of a batch of actions (collapse monitor)."""
    p = torch.bincount(actions.cpu(), minlength=n_actions).float() / len(actions)
    p = p[p > 0]
    return float(-(p * p.log()).sum())


def make_env(env_id: str, bins: int) -> Any:
    """``gym.make(env_id)``, cut into ``bins`` values per dimension if its action space is a Box."""
    import gymnasium as gym

    env = gym.make(env_id)
    if isinstance(env.action_space, gym.spaces.Box):
        return DiscretizeAction(env, bins)
    if not isinstance(env.action_space, gym.spaces.Discrete):
        raise ValueError(f"dqn: --env-id {env_id} must have a Discrete or Box action space, got {env.action_space}")
    return env


@torch.no_grad()
def evaluate(q_net: QNetwork, env: Any, episodes: int, seed: int) -> list[float]:
    """Returns of ``episodes`` episodes with greedy actions (``env``: one numpy env with Discrete actions)."""
    q_net.eval()
    device = next(q_net.parameters()).device
    return evaluate_episodes(lambda o: int(q_net(torch.as_tensor(o, device=device).reshape(1, -1)).argmax(1)),
                             env, episodes, seed)


def run(args: Args) -> dict[str, Any]:
    """Standalone DQN on ``args.env_id``: train, evaluate, write CSV / PNG / JSON. Returns the summary."""
    if args.bins < 2:
        raise ValueError(f"dqn: --bins must be >= 2, got {args.bins}")
    make_env(args.env_id, args.bins)  # fails early on an unsupported action space
    venv = TorchDiscreteVecEnv(make_vec_env(lambda: make_env(args.env_id, args.bins), args.num_envs),
                               torch.device(args.device))
    score = lambda q_net: evaluate(q_net, make_env(args.env_id, args.bins), args.eval_episodes, seed=10_000 + args.seed)  # noqa: E731
    title = f"{'Noisy ' if args.noisy else ''}DQN {args.env_id} seed {args.seed}"
    return run_standalone(args, venv, train, score, title, suffix="-noisy" if args.noisy else "")


def main() -> None:
    import tyro

    print_summary(run(tyro.cli(Args)), "greedy eval episodes")


if __name__ == "__main__":
    main()
