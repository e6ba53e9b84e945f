"""DDPG in one file (cleanrl style).

Standalone, on any gymnasium environment with a Box action space::

    python -m benchbox_plugins.rl.ddpg --env-id Pendulum-v1 --total-timesteps 30000

writes ``<out-dir>/<run>/progress.csv`` (one row every ``--log-every`` steps), ``returns.png`` and
``eval.json`` (the returns of the final evaluation episodes, deterministic actions, fresh env).

What is in it (Lillicrap et al. 2016): a deterministic actor ``mu(s)`` (tanh output in [-1, 1],
mapped linearly onto the environment's action bounds) and a critic ``Q(s, a)``; target copies of
both, moved by Polyak averaging ``theta' <- tau * theta + (1 - tau) * theta'`` after every actor
update; a uniform replay buffer; uniform random actions for the first ``learning_starts``
transitions, then ``mu(s)`` plus Gaussian or Ornstein--Uhlenbeck exploration noise (``--noise``),
clipped to [-1, 1]; the critic regresses onto ``r + gamma * (1 - terminated) * Q'(s', mu'(s'))``
(time-limit truncations bootstrap from the final observation); the actor ascends ``Q(s, mu(s))``.
The defaults are rl-baselines3-zoo's Pendulum settings (lr 1e-3, batch 256, tau 0.005, gamma
0.98, Gaussian noise 0.1, 10k random steps first) with smaller 128-128 networks.

It imports nothing from benchbox; the ``ddpg`` latent policy (:mod:`benchbox_plugins.policies.ddpg`)
runs ``train`` on :class:`benchbox_plugins.rl.latent_env.LatentVectorEnv`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from benchbox_plugins.rl.envs import TorchVecEnv, box_action, evaluate_episodes, make_vec_env
from benchbox_plugins.rl.nets import mlp, polyak_update
from benchbox_plugins.rl.noise import GaussianNoise, OUNoise
from benchbox_plugins.rl.replay import ReplayBuffer, step_into_buffer
from benchbox_plugins.rl.runlog import RunArgs, TrainLog, print_summary, run_standalone


@dataclass
class Args(RunArgs):
    exp_name: str = "ddpg"
    out_dir: str = "runs/ddpg"
    learning_rate: float = 1e-3
    """Adam learning rate of actor and critic."""
    num_envs: int = 1
    buffer_size: int = 200_000
    gamma: float = 0.98
    tau: float = 0.005
    """Polyak coefficient of the target networks."""
    batch_size: int = 256
    learning_starts: int = 10_000
    """Transitions collected with uniform random actions before learning starts."""
    gradient_steps: int = 1
    """Critic updates per vector step once learning has started."""
    policy_frequency: int = 1
    """Actor (and target) update every this many critic updates."""
    noise: Literal["gaussian", "ou"] = "gaussian"
    """Exploration noise added to mu(s): independent Gaussian or Ornstein-Uhlenbeck (per env, reset at episode start)."""
    noise_sigma: float = 0.1
    """Std of the Gaussian noise / sigma of the OU process, in [-1, 1] action units."""
    ou_theta: float = 0.15
    ou_dt: float = 1e-2
    hidden: tuple[int, ...] = (128, 128)
    """Hidden layer widths of actor and critic (rl-zoo uses 400-300; 128-128 learns Pendulum as well at a
    fraction of the CPU time)."""
    log_every: int = 1000
    """Write a progress row every this many environment steps."""


# ------------------------------------------------------------------------------------ networks


class Actor(nn.Module):
    """Deterministic policy: observation -> action in [-1, 1]^act_dim."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...]):
        super().__init__()
        self.net = mlp([obs_dim, *hidden, act_dim], nn.Tanh())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs)


class Critic(nn.Module):
    """Q(s, a)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...]):
        super().__init__()
        self.net = mlp([obs_dim + act_dim, *hidden, 1])

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([obs, action], 1)).squeeze(1)


def make_noise(args: Args, shape: tuple[int, ...], generator: torch.Generator) -> GaussianNoise | OUNoise:
    if args.noise == "gaussian":
        return GaussianNoise(shape, args.noise_sigma, generator)
    if args.noise == "ou":
        return OUNoise(shape, args.noise_sigma, args.ou_theta, args.ou_dt, generator=generator)
    raise ValueError(f"ddpg: --noise must be gaussian or ou, got {args.noise!r}")


# -------------------------------------------------------------------------------------- train


def train(args: Args, envs: Any, on_update: Callable[[dict[str, float]], None] | None = None,
          info_keys: tuple[str, ...] = ()) -> tuple[Actor, Critic, list[dict[str, float]]]:
    """Run DDPG on ``envs`` (torch in/out, actions in [-1, 1], SAME_STEP autoreset).

    Returns the actor, the critic and one log row per ``log_every`` steps. ``info_keys`` names
    per-environment tensors in ``info`` whose mean is logged (reward terms).
    """
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    n = envs.num_envs
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    act_dim = int(np.prod(envs.single_action_space.shape))
    actor = Actor(obs_dim, act_dim, tuple(args.hidden)).to(device)
    critic = Critic(obs_dim, act_dim, tuple(args.hidden)).to(device)
    actor_target = Actor(obs_dim, act_dim, tuple(args.hidden)).to(device)
    critic_target = Critic(obs_dim, act_dim, tuple(args.hidden)).to(device)
    actor_target.load_state_dict(actor.state_dict())
    critic_target.load_state_dict(critic.state_dict())
    actor_opt = torch.optim.Adam(actor.parameters(), lr=args.learning_rate)
    critic_opt = torch.optim.Adam(critic.parameters(), lr=args.learning_rate)
    rb = ReplayBuffer(args.buffer_size, obs_dim, (act_dim,), device=device)
    noise = make_noise(args, (n, act_dim), gen)

    obs, _ = envs.reset(seed=args.seed)
    obs = obs.float().reshape(n, -1)
    log = TrainLog(n, device, info_keys)
    global_step = updates = 0
    start = time.time()
    num_vector_steps = max(1, math.ceil(args.total_timesteps / n))

    for _ in range(num_vector_steps):
        global_step += n
        if len(rb) < args.learning_starts:
            action = (torch.rand((n, act_dim), generator=gen) * 2 - 1).to(device)
        else:
            with torch.no_grad():
                action = (actor(obs) + noise.sample().to(device)).clamp(-1, 1)
        obs, done = step_into_buffer(envs, rb, obs, action, log)
        if bool(done.any()):
            noise.reset(done)

        # ---- learn
        if len(rb) >= args.learning_starts:
            for _g in range(args.gradient_steps):
                b = rb.sample(args.batch_size, gen)
                with torch.no_grad():
                    q_next = critic_target(b.next_obs, actor_target(b.next_obs))
                    target = b.rewards + args.gamma * (1.0 - b.dones) * q_next
                q = critic(b.obs, b.actions)
                qf_loss = F.mse_loss(q, target)
                critic_opt.zero_grad()
                qf_loss.backward()
                critic_opt.step()
                updates += 1
                log.add(qf_loss=float(qf_loss.detach()), q=float(q.detach().mean()))
                if updates % args.policy_frequency == 0:
                    actor_loss = -critic(b.obs, actor(b.obs)).mean()
                    actor_opt.zero_grad()
                    actor_loss.backward()
                    actor_opt.step()
                    polyak_update(actor_target, actor, args.tau)
                    polyak_update(critic_target, critic, args.tau)
                    log.add(actor_loss=float(actor_loss.detach()))

        # ---- log
        if log.due(global_step, n, args.log_every, args.total_timesteps):
            row = {
                "global_step": global_step,
                **log.returns(),
                "updates": updates,
                "qf_loss": log.mean("qf_loss"), "actor_loss": log.mean("actor_loss"), "q_mean": log.mean("q"),
                "action_std": float(action.std(0).mean()) if n > 1 else float("nan"),
                "sps": global_step / max(time.time() - start, 1e-9),
            }
            log.finish(row, on_update, loss="qf_loss", what="DDPG critic loss")
        if global_step >= args.total_timesteps:
            break
    return actor, critic, log.history


@torch.no_grad()
def evaluate(actor: Actor, env: Any, episodes: int, seed: int) -> list[float]:
    """Returns of ``episodes`` episodes with the deterministic action (``env``: one numpy gymnasium env)."""
    device = next(actor.parameters()).device

    def act(obs: np.ndarray) -> np.ndarray:
        a = actor(torch.as_tensor(obs, device=device).reshape(1, -1))[0].cpu().numpy()
        return box_action(a, env.action_space).reshape(env.action_space.shape)

    return evaluate_episodes(act, env, episodes, seed)


def run(args: Args) -> dict[str, Any]:
    """Standalone DDPG on ``args.env_id``: train, evaluate, write CSV / PNG / JSON. Returns the summary."""
    import gymnasium as gym

    if not isinstance(gym.make(args.env_id).action_space, gym.spaces.Box):
        raise ValueError(f"ddpg: --env-id {args.env_id} must have a Box (continuous) action space")
    venv = TorchVecEnv(make_vec_env(lambda: gym.make(args.env_id), args.num_envs), torch.device(args.device))
    score = lambda actor: evaluate(actor, gym.make(args.env_id), args.eval_episodes, seed=10_000 + args.seed)  # noqa: E731
    return run_standalone(args, venv, train, score, title=f"DDPG {args.env_id} seed {args.seed}")


def main() -> None:
    import tyro

    print_summary(run(tyro.cli(Args)))


if __name__ == "__main__":
    main()
