"""PPO for continuous actions in one file (cleanrl style).

Standalone, on any gymnasium environment with a Box action space::

    python -m benchbox_plugins.rl.ppo --env-id Pendulum-v1 --total-timesteps 200000

writes ``<out-dir>/<run>/progress.csv`` (one row per update), ``returns.png`` and ``eval.json``
(the returns of the final evaluation episodes, deterministic actions).

What is in it: GAE; clipped surrogate; clipped value loss; entropy bonus; per-minibatch advantage
normalisation; linear learning-rate annealing; global gradient-norm clipping; running observation
normalisation and reward scaling by the std of the discounted return; bootstrapping through
time-limit truncations (the value of the final observation is added to the last reward); a
Gaussian policy with a state-independent (or, optionally, state-dependent) log-std whose samples
are clipped to ``[-1, 1]`` and mapped linearly onto the environment's action bounds.

It imports nothing from benchbox: ``train`` takes any batched torch environment, such as
:class:`benchbox_plugins.rl.latent_env.LatentVectorEnv` (the ``ppo`` latent policy,
:mod:`benchbox_plugins.policies.ppo`, drives it that way).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from benchbox_plugins.rl.envs import TorchVecEnv, box_action, evaluate_episodes, make_vec_env
from benchbox_plugins.rl.runlog import RunArgs, TrainLog, print_summary, run_standalone


@dataclass
class Args(RunArgs):
    exp_name: str = "ppo"
    out_dir: str = "runs/ppo"
    total_timesteps: int = 200_000
    learning_rate: float = 1e-3
    num_envs: int = 4
    num_steps: int = 1024
    """Steps per environment per rollout (batch = num_envs * num_steps)."""
    anneal_lr: bool = True
    gamma: float = 0.9
    gae_lambda: float = 0.95
    num_minibatches: int = 64
    update_epochs: int = 10
    norm_adv: bool = True
    clip_coef: float = 0.2
    clip_vloss: bool = True
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    target_kl: float | None = None
    """Stop the epochs of an update early once the approximate KL passes this (None = never)."""
    norm_obs: bool = True
    norm_reward: bool = True
    hidden: int = 64
    log_std_init: float = 0.0
    state_dependent_std: bool = False


# ------------------------------------------------------------------------------------ helpers


class RunningMeanStd(nn.Module):
    """Running mean / variance over batches (parallel algorithm), kept as buffers."""

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4):
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("var", torch.ones(shape))
        self.register_buffer("count", torch.tensor(epsilon))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        b_mean, b_var, b_count = x.mean(0), x.var(0, unbiased=False), x.shape[0]
        delta = b_mean - self.mean
        total = self.count + b_count
        self.mean += delta * b_count / total
        m2 = self.var * self.count + b_var * b_count + delta**2 * self.count * b_count / total
        self.var.copy_(m2 / total)
        self.count.copy_(total)

    def normalize(self, x: torch.Tensor, clip: float = 10.0) -> torch.Tensor:
        return ((x - self.mean) / torch.sqrt(self.var + 1e-8)).clamp(-clip, clip)


def layer_init(layer: nn.Linear, std: float = math.sqrt(2), bias: float = 0.0) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)
    return layer


class Agent(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 64, log_std_init: float = 0.0,
                 state_dependent_std: bool = False):
        super().__init__()
        self.critic = nn.Sequential(
            layer_init(nn.Linear(obs_dim, hidden)), nn.Tanh(),
            layer_init(nn.Linear(hidden, hidden)), nn.Tanh(),
            layer_init(nn.Linear(hidden, 1), std=1.0),
        )
        self.actor_body = nn.Sequential(
            layer_init(nn.Linear(obs_dim, hidden)), nn.Tanh(),
            layer_init(nn.Linear(hidden, hidden)), nn.Tanh(),
        )
        self.actor_mean = layer_init(nn.Linear(hidden, act_dim), std=0.01)
        self.state_dependent_std = state_dependent_std
        if state_dependent_std:
            self.actor_logstd = layer_init(nn.Linear(hidden, act_dim), std=0.01, bias=log_std_init)
        else:
            self.actor_logstd = nn.Parameter(torch.full((1, act_dim), float(log_std_init)))
        self.obs_rms = RunningMeanStd((obs_dim,))

    def get_value(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(x)

    def distribution(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.actor_body(x)
        mean = self.actor_mean(h)
        log_std = self.actor_logstd(h) if self.state_dependent_std else self.actor_logstd.expand_as(mean)
        return mean, log_std.clamp(-5.0, 2.0)

    def get_action_and_value(self, x: torch.Tensor, action: torch.Tensor | None = None):
        mean, log_std = self.distribution(x)
        probs = torch.distributions.Normal(mean, log_std.exp())
        if action is None:
            action = probs.sample()
        return action, probs.log_prob(action).sum(1), probs.entropy().sum(1), self.critic(x)


# -------------------------------------------------------------------------------------- train


def gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, next_value: torch.Tensor,
        next_done: torch.Tensor, gamma: float, gae_lambda: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimates and value targets of a ``T x N`` rollout.

    ``dones[t]`` is 1 where an episode ended before step ``t`` (so ``values[t]`` starts a new one);
    ``next_value`` / ``next_done`` describe the state after the last step. Returns (advantages, returns).
    """
    t_steps = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    lastgaelam = torch.zeros(rewards.shape[1:], device=rewards.device)
    for t in reversed(range(t_steps)):
        if t == t_steps - 1:
            nextnonterminal, nextvalues = 1.0 - next_done, next_value
        else:
            nextnonterminal, nextvalues = 1.0 - dones[t + 1], values[t + 1]
        delta = rewards[t] + gamma * nextvalues * nextnonterminal - values[t]
        lastgaelam = delta + gamma * gae_lambda * nextnonterminal * lastgaelam
        advantages[t] = lastgaelam
    return advantages, advantages + values


def train(args: Args, envs: Any, on_update: Callable[[dict[str, float]], None] | None = None,
          info_keys: tuple[str, ...] = ()) -> tuple[Agent, list[dict[str, float]]]:
    """Run PPO on ``envs`` (torch in/out, actions in [-1, 1], SAME_STEP autoreset).

    Returns the agent (with its observation statistics) and one log row per update. ``info_keys``
    names per-environment tensors in ``info`` whose batch mean is logged (reward terms).
    """
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    act_dim = int(np.prod(envs.single_action_space.shape))
    agent = Agent(obs_dim, act_dim, args.hidden, args.log_std_init, args.state_dependent_std).to(device)
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)
    n, t_steps = args.num_envs, args.num_steps
    batch_size = n * t_steps
    minibatch_size = max(1, batch_size // args.num_minibatches)
    num_iterations = max(1, args.total_timesteps // batch_size)

    obs_buf = torch.zeros((t_steps, n, obs_dim), device=device)
    act_buf = torch.zeros((t_steps, n, act_dim), device=device)
    logp_buf = torch.zeros((t_steps, n), device=device)
    rew_buf = torch.zeros((t_steps, n), device=device)
    done_buf = torch.zeros((t_steps, n), device=device)
    val_buf = torch.zeros((t_steps, n), device=device)
    ret_rms = RunningMeanStd(()).to(device)
    disc_return = torch.zeros(n, device=device)
    log = TrainLog(n, device, info_keys)

    global_step, start = 0, time.time()
    next_obs_raw, _ = envs.reset(seed=args.seed)
    next_obs_raw = next_obs_raw.float().reshape(n, -1)
    next_done = torch.zeros(n, device=device)

    last_finite_loss: float | None = None  # named in the error if the loss turns NaN/inf
    for iteration in range(1, num_iterations + 1):
        if args.anneal_lr:
            optimizer.param_groups[0]["lr"] = (1.0 - (iteration - 1.0) / num_iterations) * args.learning_rate

        # ---- rollout
        for step in range(t_steps):
            global_step += n
            if args.norm_obs:
                agent.obs_rms.update(next_obs_raw)
            obs = agent.obs_rms.normalize(next_obs_raw) if args.norm_obs else next_obs_raw
            obs_buf[step], done_buf[step] = obs, next_done
            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(obs)
            val_buf[step], act_buf[step], logp_buf[step] = value.flatten(), action, logprob

            next_obs_raw, reward, term, trunc, info = envs.step(action)
            next_obs_raw = next_obs_raw.float().reshape(n, -1)
            reward = reward.float()
            done = term | trunc
            log.record(reward, done, info)
            if args.norm_reward:
                disc_return = disc_return * args.gamma + reward
                ret_rms.update(disc_return)
                reward = reward / torch.sqrt(ret_rms.var + 1e-8)
                disc_return = torch.where(done, 0.0, disc_return)
            only_trunc = trunc & ~term
            if bool(only_trunc.any()):  # bootstrap through time limits
                final = info["final_obs"].float().reshape(n, -1)
                final = agent.obs_rms.normalize(final) if args.norm_obs else final
                with torch.no_grad():
                    v_final = agent.get_value(final).flatten()
                reward = reward + args.gamma * v_final * only_trunc.float()
            rew_buf[step] = reward
            next_done = done.float()

        # ---- GAE
        with torch.no_grad():
            next_obs = agent.obs_rms.normalize(next_obs_raw) if args.norm_obs else next_obs_raw
            next_value = agent.get_value(next_obs).flatten()
            advantages, returns = gae(rew_buf, val_buf, done_buf, next_value, next_done, args.gamma, args.gae_lambda)

        b_obs, b_act = obs_buf.reshape(-1, obs_dim), act_buf.reshape(-1, act_dim)
        b_logp, b_adv = logp_buf.reshape(-1), advantages.reshape(-1)
        b_ret, b_val = returns.reshape(-1), val_buf.reshape(-1)

        # ---- optimise policy and value
        clipfracs: list[float] = []
        approx_kl = old_approx_kl = torch.zeros(())
        pg_loss = v_loss = entropy_loss = torch.zeros(())
        for _epoch in range(args.update_epochs):
            order = torch.randperm(batch_size, device=device)
            for s in range(0, batch_size, minibatch_size):
                mb = order[s : s + minibatch_size]
                _, newlogp, entropy, newvalue = agent.get_action_and_value(b_obs[mb], b_act[mb])
                logratio = newlogp - b_logp[mb]
                ratio = logratio.exp()
                with torch.no_grad():
                    old_approx_kl = (-logratio).mean()
                    approx_kl = ((ratio - 1) - logratio).mean()
                    clipfracs.append(float(((ratio - 1.0).abs() > args.clip_coef).float().mean()))
                mb_adv = b_adv[mb]
                if args.norm_adv and len(mb) > 1:
                    mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                pg_loss = torch.max(-mb_adv * ratio, -mb_adv * ratio.clamp(1 - args.clip_coef, 1 + args.clip_coef)).mean()
                newvalue = newvalue.flatten()
                if args.clip_vloss:
                    v_unclipped = (newvalue - b_ret[mb]) ** 2
                    v_clipped = b_val[mb] + (newvalue - b_val[mb]).clamp(-args.clip_coef, args.clip_coef)
                    v_loss = 0.5 * torch.max(v_unclipped, (v_clipped - b_ret[mb]) ** 2).mean()
                else:
                    v_loss = 0.5 * ((newvalue - b_ret[mb]) ** 2).mean()
                entropy_loss = entropy.mean()
                loss = pg_loss - args.ent_coef * entropy_loss + v_loss * args.vf_coef
                if not torch.isfinite(loss):  # the caller may turn this into its own error type
                    raise FloatingPointError(f"PPO loss became {loss.item()} at iteration {iteration} "
                                             f"(step {global_step}); last finite loss {last_finite_loss}")
                last_finite_loss = loss.item()
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()
            if args.target_kl is not None and float(approx_kl) > args.target_kl:
                break

        var_y = float(b_ret.var())
        explained_var = float("nan") if var_y == 0 else 1 - float((b_ret - b_val).var()) / var_y
        row = {
            "iteration": iteration, "global_step": global_step, **log.returns(),
            "learning_rate": optimizer.param_groups[0]["lr"],
            "policy_loss": float(pg_loss.detach()), "value_loss": float(v_loss.detach()),
            "entropy": float(entropy_loss.detach()),
            "old_approx_kl": float(old_approx_kl), "approx_kl": float(approx_kl),
            "clipfrac": float(np.mean(clipfracs)) if clipfracs else 0.0,
            "explained_variance": explained_var,
            "action_std": float(agent.distribution(b_obs[:256])[1].detach().exp().mean()),
            "sps": global_step / max(time.time() - start, 1e-9),
        }
        log.finish(row, on_update)
    return agent, log.history


@torch.no_grad()
def evaluate(agent: Agent, env: Any, episodes: int, seed: int, norm_obs: bool = True) -> list[float]:
    """Returns of ``episodes`` episodes with the mean action (``env``: one numpy gymnasium env)."""
    device = next(agent.parameters()).device

    def act(obs: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(obs, device=device).reshape(1, -1)
        x = agent.obs_rms.normalize(x) if norm_obs else x
        return box_action(agent.distribution(x)[0].clamp(-1, 1)[0].cpu().numpy(), env.action_space)

    return evaluate_episodes(act, env, episodes, seed)


def run(args: Args) -> dict[str, Any]:
    """Standalone PPO on ``args.env_id``: train, evaluate, write CSV / PNG / JSON. Returns the summary."""
    import gymnasium as gym

    if not isinstance(gym.make(args.env_id).action_space, gym.spaces.Box):
        raise ValueError(f"ppo: --env-id {args.env_id} must have a Box (continuous) action space")
    envs = make_vec_env(lambda: gym.make(args.env_id), args.num_envs)
    envs.action_space.seed(args.seed)
    venv = TorchVecEnv(envs, torch.device(args.device))
    score = lambda agent: evaluate(agent, gym.make(args.env_id), args.eval_episodes, 10_000 + args.seed, args.norm_obs)  # noqa: E731
    return run_standalone(args, venv, train, score, title=f"PPO {args.env_id} seed {args.seed}")


def main() -> None:
    import tyro

    print_summary(run(tyro.cli(Args)))


if __name__ == "__main__":
    main()
