"""The latent augmentation MDP: a gymnasium environment over a fitted generator and its training latents.

The MDP (the same for :class:`LatentEnv`, one environment, and :class:`LatentVectorEnv`, N of them)
---------------------------------------------------------------------------------------------------
Let ``Z`` (``M x d``) be the training latents, ``mu`` and ``sigma`` their per-dimension mean and std
(``sigma`` floored at 1e-6), ``H = episode_length`` and ``s = step_size``.

* **Reset.** A source latent ``z0 = Z[k]`` is drawn, ``k`` uniform over ``M``. The draw is a pure
  function of (environment seed, episode counter), so N batched environments and N single ones
  with the same seeds visit the same sources. ``z_0 = z0``, ``t = 0``.
* **Observation** (``2 d + 1`` float32, clipped to ``[-10, 10]``):
  ``[(z_t - mu) / sigma,  (z_t - z0) / sigma,  t / H]``.
* **Action** ``a`` in ``[-1, 1]^d`` (values outside are clipped). The latent moves by
  ``dz = s * sigma * a``: ``z_{t+1} = z_t + dz``.
* **Reward** after every step, a weighted sum of named terms, each computed on ``z' = z_{t+1}``.
  The built-in terms (weights in :class:`RewardConfig`) are methods of :class:`LatentCore`:

  - ``realism = -log(1 + c(z') / c_ref)`` where ``c(z) = mean(((E(D(z)) - z) / sigma)^2)`` is the
    encoder--decoder consistency error and ``c_ref`` its mean over the training latents. Latents
    off the data manifold do not survive a decode/encode round trip; the encoder judges the decoder,
    so a blurry "average" image is not rewarded for free.
  - ``novelty = 1 - ((n(z') - m) / h)^2``, clipped below at ``-novelty_clip``, where
    ``n(z) = min_i ||(z - Z_i) / sigma|| / sqrt(d)`` is the distance to the nearest training latent
    (the source included, so it is also a bound on the distance from the source) and
    ``[m - h, m + h]`` is the band: between the ``band[0]`` and ``band[1]`` percentiles of the
    train-to-train nearest-neighbour distances (role ``normal``: 50 -- 90, new samples about as far
    from the data as the data is from itself; role ``anomaly``: 95 -- 99.5, near-boundary
    pseudo-anomalies). Inside the band the term is in ``[0, 1]``, outside it is negative, so
    novelty without limit is penalised.
  - ``size = -mean(a^2)``, a penalty on the size of the step.

  ``reward = w_realism * realism + w_novelty * novelty + w_size * size (+ w * term for every term
  added with LatentCore.add_term)``, summed in the order of ``core.terms``. ``info`` carries every
  term per environment (``info["realism"]`` ...). A new term is any function
  ``(z_new, action, z0) -> N`` values (see :data:`RewardTerm`), added before the env is stepped.
* **Termination / truncation.** The episode *terminates* after exactly ``H`` steps: time ``t / H``
  is part of the state, so step ``H`` is a true terminal state (nothing is bootstrapped past it);
  there is no truncation. ``H = 1``, the default, makes PPO a contextual bandit: fast and low
  variance.
* **Autoreset** (vector form): gymnasium 1.x ``SAME_STEP`` mode. When an episode ends, the
  returned observation is already the first of the next episode; ``info["final_obs"]`` holds the
  last observation and ``info["final_info"]["episode"]`` the return ``r`` and length ``l``,
  with boolean masks ``info["_final_obs"]`` / ``info["_final_info"]``. The vector env puts these keys in
  every step's ``info`` (masks all False when no episode ended): asking whether one ended would read a
  value back from the device.

:class:`LatentVectorEnv` keeps everything as tensors on one device and steps all N environments
with batched tensor operations (one decode and one encode call per step, no Python loop over
environments); it returns torch tensors. A step reads nothing back to the host and moves nothing to
it, provided the codec returns a tensor on the device it was given (benchbox's generators do): on a
GPU the whole step stays on the GPU, and its cost is one batched decode + encode plus a few small
tensor operations. :class:`LatentEnv` is the numpy single environment that
``gymnasium.utils.env_checker.check_env`` accepts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Literal, Protocol, Sequence

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv

BANDS = {"normal": (50.0, 90.0), "anomaly": (95.0, 99.5)}
OBS_CLIP = 10.0
_M31 = (1 << 31) - 1

RewardTerm = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]
"""A reward term: ``(z_new, action, z0) -> N`` values (higher is better) for ``N`` steps at once.
``z_new`` is the latent after the step, ``action`` the clipped action in [-1, 1]^d, ``z0`` each
episode's source latent (None where the caller has none, e.g. a direct ``core.reward`` call).
A fitted policy keeps its core, and the grid's stage cache pickles it: a term must be a bound
method or an instance of a module-level class with ``__call__`` (not a lambda or a closure)."""


class Codec(Protocol):
    """What the environment needs of a generator: latents to images and back, batched.

    Both are called with tensors on the core's device. A codec that returns its result on that device
    keeps a step off the host; one that returns CPU tensors still works, at the cost of two transfers
    per step on a GPU."""

    def encode(self, images: torch.Tensor) -> torch.Tensor: ...

    def decode(self, latents: torch.Tensor) -> torch.Tensor: ...


@dataclass
class RewardConfig:
    """Weights and shape of the reward terms (see the module docstring)."""

    role: Literal["normal", "anomaly"] = "normal"
    w_realism: float = 1.0
    w_novelty: float = 1.0
    w_size: float = 0.1
    band: tuple[float, float] | None = None
    """Percentiles of train-to-train NN distances bounding the novelty band (None = by role)."""
    novelty_clip: float = 3.0
    step_size: float = 1.0
    episode_length: int = 1


def _hash_index(seed: torch.Tensor, counter: torch.Tensor, modulus: int) -> torch.Tensor:
    """A counter-based integer hash (no overflow in int64), vectorised: (seed, counter) -> [0, modulus)."""
    h = ((seed & _M31) * 1_000_003 + (counter & _M31) * 7_919 + 12_345) & _M31
    for _ in range(3):
        h = h ^ (h >> 16)
        h = (h * 0x45D9F3B) & _M31
    return h % modulus


class LatentCore:
    """Batched reward and observation maths shared by the single and the vector environment."""

    def __init__(self, generator: Codec, latents: torch.Tensor, config: RewardConfig | None = None,
                 device: torch.device | str = "cpu", nn_chunk: int = 4096):
        self.cfg = cfg = config or RewardConfig()
        if cfg.step_size <= 0:
            raise ValueError(f"latent env: step_size must be > 0, got {cfg.step_size}")
        if cfg.episode_length < 1:
            raise ValueError(f"latent env: episode_length must be >= 1, got {cfg.episode_length}")
        if latents.ndim != 2 or len(latents) < 2:
            raise ValueError(f"latent env: need an M x d tensor of at least 2 training latents, got {tuple(latents.shape)}")
        self.generator = generator
        self.device = torch.device(device)
        self.nn_chunk = nn_chunk
        self.latents = latents.detach().float().to(self.device)
        self.d = self.latents.shape[1]
        self.mu = self.latents.mean(0)
        self.sigma = self.latents.std(0).clamp(min=1e-6)
        self.zn = (self.latents - self.mu) / self.sigma  # normalised training latents
        # The training side of torch.cdist's matrix-product form (used there when either side has more than
        # 25 rows), built once: [zn, 1, |zn|^2]^T. See nn_distance.
        m = len(self.zn)
        self._nn_rhs = (torch.cat([self.zn, torch.ones(m, 1, device=self.device), self.zn.pow(2).sum(-1, True)], -1).mT
                        if m > 25 else None)
        self._step_q: tuple[torch.Tensor, torch.Tensor] | None = None  # (z, its normalised rows): see normalise()
        self.step_sigma = cfg.step_size * self.sigma  # delta(a) = step_sigma * clamp(a)
        self.c_ref = float(self.consistency(self.latents).mean().clamp(min=1e-8))
        nn_train = self.nn_distance(self.latents, exclude_self=True)
        lo, hi = cfg.band or BANDS[cfg.role]
        if not 0 <= lo < hi <= 100:
            raise ValueError(f"latent env: band percentiles must satisfy 0 <= lo < hi <= 100, got {(lo, hi)}")
        q = torch.quantile(nn_train.cpu(), torch.tensor([lo / 100, hi / 100]))
        self.band = (float(q[0]), float(max(q[1], q[0] + 1e-6)))
        self.obs_dim = 2 * self.d + 1
        self.terms: dict[str, tuple[float, RewardTerm]] = {
            "realism": (cfg.w_realism, self.realism), "novelty": (cfg.w_novelty, self.novelty),
            "size": (cfg.w_size, self.size)}
        """Name -> (weight, term), in the order they are summed; :meth:`add_term` appends."""

    def add_term(self, name: str, weight: float, term: RewardTerm) -> None:
        """Add ``weight * term(z_new, action, z0)`` to the reward (logged as ``info[name]``)."""
        if name in self.terms:
            raise ValueError(f"latent env: reward term {name!r} exists already ({', '.join(self.terms)})")
        self.terms[name] = (float(weight), term)

    # -- reward terms ------------------------------------------------------------------------
    # The terms are plain tensor maths (no autograd context of their own: the codec runs without
    # gradients, reward() runs under no_grad and the vector env's step under inference_mode), so a step
    # pays for one.
    def consistency(self, z: torch.Tensor) -> torch.Tensor:
        """Per-row mean squared encoder-decoder round-trip error in std units (on ``z``'s device)."""
        z2 = self.generator.encode(self.generator.decode(z))
        if z2.device != z.device:
            z2 = z2.to(z.device)
        return (z2 - z).div_(self.sigma).pow_(2).mean(1)  # in place on fresh tensors: the same numbers

    def normalise(self, z: torch.Tensor) -> torch.Tensor:
        """``(z - mu) / sigma``; the vector env's step computes it once for its reward and observation."""
        memo = self._step_q  # set only while a step runs, for that step's z (terms do not change their inputs)
        if memo is not None and memo[0] is z:
            return memo[1]
        return (z - self.mu) / self.sigma

    def nn_distance(self, z: torch.Tensor, exclude_self: bool = False) -> torch.Tensor:
        """Distance to the nearest training latent, in std units, divided by sqrt(d).

        With more than 25 training latents this is ``torch.cdist(q, zn).min(1)`` computed the way cdist
        computes it (``[-2q, |q|^2, 1] @ [zn, 1, |zn|^2]^T``, clamped at 0, square root; the same values
        bit for bit) with the training side built once and the root taken after the minimum (the root is
        monotone, so the minimum is the same number), in a few tensor operations."""
        q = self.normalise(z)
        out = []
        for start in range(0, len(q), self.nn_chunk):
            chunk = q[start : start + self.nn_chunk]
            if self._nn_rhs is None:
                sq = torch.cdist(chunk, self.zn)
            else:
                norm = chunk.pow(2).sum(-1, True)
                sq = torch.cat([chunk.mul(-2), norm, torch.ones_like(norm)], -1).matmul(self._nn_rhs)
            if exclude_self:
                rows = torch.arange(sq.shape[0], device=sq.device)
                sq[rows, rows + start] = float("inf")
            out.append(sq.amin(1))
        dist = out[0] if len(out) == 1 else torch.cat(out)
        if self._nn_rhs is not None:
            dist = dist.clamp_min_(0).sqrt_()
        return dist / math.sqrt(self.d)

    def realism(self, z_new: torch.Tensor, action: Any = None, z0: Any = None) -> torch.Tensor:
        """Encoder-decoder consistency, ``-log(1 + c(z') / c_ref)``."""
        return self.consistency(z_new).div_(self.c_ref).log1p_().neg_()

    def novelty(self, z_new: torch.Tensor, action: Any = None, z0: Any = None) -> torch.Tensor:
        """Nearest-training-latent distance inside the band: in [0, 1] inside, negative outside."""
        lo, hi = self.band
        mid, half = (lo + hi) / 2, (hi - lo) / 2
        return (1 - self.nn_distance(z_new).sub_(mid).div_(half).pow_(2)).clamp_(min=-self.cfg.novelty_clip)

    def size(self, z_new: torch.Tensor, action: torch.Tensor, z0: Any = None) -> torch.Tensor:
        """Step-size penalty, ``-mean(a^2)``."""
        return action.pow(2).mean(1).neg_()

    @torch.no_grad()
    def reward(self, z_new: torch.Tensor, action: torch.Tensor,
               z0: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The weighted sum of :attr:`terms` and each term, one value per row of ``z_new``."""
        return self._reward(z_new, action, z0)

    def _reward(self, z_new: torch.Tensor, action: torch.Tensor,
                z0: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        values = {name: term(z_new, action, z0) for name, (_, term) in self.terms.items()}
        total = None
        for name, (weight, _) in self.terms.items():  # a weight of 1 costs no multiplication
            part = values[name] if weight == 1.0 else weight * values[name]
            total = part if total is None else total + part
        return (torch.zeros(len(z_new), device=z_new.device) if total is None else total), values

    # -- dynamics ----------------------------------------------------------------------------
    def source_index(self, seed: torch.Tensor, episode: torch.Tensor) -> torch.Tensor:
        return _hash_index(seed, episode, len(self.latents))

    def delta(self, action: torch.Tensor) -> torch.Tensor:
        return self.step_sigma * action.clamp(-1, 1)

    def observe(self, z: torch.Tensor, z0: torch.Tensor, t: torch.Tensor,
                t_frac: torch.Tensor | None = None) -> torch.Tensor:
        """``N x (2d + 1)`` observations; ``t_frac``, if given, is ``t / H`` as an ``N x 1`` float column."""
        if t_frac is None:
            t_frac = (t.float() / self.cfg.episode_length).unsqueeze(1)
        obs = torch.cat([self.normalise(z), (z - z0) / self.sigma, t_frac], dim=1)
        return obs.clamp_(-OBS_CLIP, OBS_CLIP)

    def observe_source(self, z: torch.Tensor) -> torch.Tensor:
        """The first observation of an episode starting at ``z`` (used by the policy plugin)."""
        return self.observe(z, z, torch.zeros(len(z), dtype=torch.long, device=z.device))

    def spaces(self) -> tuple[spaces.Box, spaces.Box]:
        obs = spaces.Box(-OBS_CLIP, OBS_CLIP, (self.obs_dim,), np.float32)
        act = spaces.Box(-1.0, 1.0, (self.d,), np.float32)
        return obs, act


class LatentVectorEnv(VectorEnv):
    """N latent environments stepped as one batch of tensors on ``core.device`` (torch in, torch out).

    A step reads nothing back to the host. With ``episode_length = 1`` every episode ends at every
    step, known without looking, so the autoreset takes a short path: the next sources come from a
    block of ``SOURCE_BLOCK`` episodes hashed at once and their first observations from a table --
    the same sources, observations and counters as the general path, in fewer tensor operations
    (a step of one environment costs little more than its decode + encode).

    ``step`` runs under ``torch.inference_mode`` (each small tensor operation skips the autograd
    layers; at N = 1 that is a measurable part of a step). Two consequences: the codec and the reward
    terms must not need autograd, and the tensors a step returns are inference tensors -- use them as
    network inputs, copy them into buffers, compute with them, but ``clone()`` one before changing it
    in place or before autograd has to save it (PPO, DDPG and DQN here only do the former).
    ``reset`` returns ordinary tensors."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}
    SOURCE_BLOCK = 64

    def __init__(self, core: LatentCore, num_envs: int):
        if num_envs < 1:
            raise ValueError(f"latent env: num_envs must be >= 1, got {num_envs}")
        self.core = core
        self.num_envs = num_envs
        self.single_observation_space, self.single_action_space = core.spaces()
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        dev, d = core.device, core.d
        self.seeds = torch.arange(num_envs, dtype=torch.long, device=dev)
        self.episode = torch.zeros(num_envs, dtype=torch.long, device=dev)  # property (below)
        self.t = torch.zeros(num_envs, dtype=torch.long, device=dev)
        self.z = torch.zeros(num_envs, d, device=dev)
        self.z0 = torch.zeros(num_envs, d, device=dev)
        self.ret = torch.zeros(num_envs, device=dev)
        self.one_step = core.cfg.episode_length == 1
        self._source_obs = core.observe_source(core.latents) if self.one_step else None
        self._t_one = torch.ones(num_envs, 1, device=dev)  # one_step: t / H after every step
        self._t_zero = torch.zeros(num_envs, dtype=torch.long, device=dev)  # one_step: t and ret at a start
        self._ret_zero = torch.zeros(num_envs, device=dev)  # (read, never written in place)
        # one_step: the next episodes' source latents and first observations, B x N x d and B x N x obs_dim
        # (B episodes per environment, fewer than SOURCE_BLOCK where N is large), each slot used once
        self._block_len = max(1, min(self.SOURCE_BLOCK, (1 << 22) // (num_envs * (core.obs_dim + d))))
        self._block_z: torch.Tensor | None = None
        self._block_obs: torch.Tensor | None = None
        self._block_pos = 0

    @property
    def episode(self) -> torch.Tensor:
        """Episodes started so far, per environment (the one-step path counts them in a Python int)."""
        if self._episode_ahead:
            self._episode, self._episode_ahead = self._episode + self._episode_ahead, 0
        return self._episode

    @episode.setter
    def episode(self, value: torch.Tensor) -> None:
        self._episode, self._episode_ahead = value, 0

    def _start(self, mask: torch.Tensor) -> None:
        idx = self.core.source_index(self.seeds, self.episode)
        src = self.core.latents[idx]
        m = mask.unsqueeze(1)
        self.z = torch.where(m, src, self.z)
        self.z0 = torch.where(m, src, self.z0)
        self.t = torch.where(mask, 0, self.t)
        self.ret = torch.where(mask, 0.0, self.ret)
        self.episode = self.episode + mask.long()

    def _start_all(self) -> torch.Tensor:
        """``_start`` of every environment (one_step only); returns the first observations."""
        if self._block_z is None or self._block_pos == self._block_len:
            core = self.core
            ahead = torch.arange(self._block_len, dtype=torch.long, device=core.device).unsqueeze(1)
            idx = core.source_index(self.seeds, self.episode + ahead)  # B x N
            self._block_z, self._block_obs = core.latents[idx], self._source_obs[idx]
            self._block_pos = 0
        pos = self._block_pos
        self._block_pos += 1
        self.z = self.z0 = self._block_z[pos]
        self.t, self.ret = self._t_zero, self._ret_zero
        self._episode_ahead += 1
        return self._block_obs[pos]

    def reset(self, *, seed: int | Sequence[int] | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            seeds = [seed + i for i in range(self.num_envs)] if isinstance(seed, int) else list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"latent env: got {len(seeds)} seeds for {self.num_envs} environments")
            self.seeds = torch.tensor(seeds, dtype=torch.long, device=self.core.device)
            self.episode = torch.zeros(self.num_envs, dtype=torch.long, device=self.core.device)
        self._block_z = None
        self._start(torch.ones(self.num_envs, dtype=torch.bool, device=self.core.device))
        return self.core.observe(self.z, self.z0, self.t), {}

    @torch.inference_mode()  # not no_grad: fewer dispatch layers per tensor operation (see the class docstring)
    def step(self, actions):
        core = self.core
        a = torch.as_tensor(actions, dtype=torch.float32, device=core.device).clamp(-1, 1)
        z = self.z = self.z + core.step_sigma * a  # core.delta(a), a clamped already
        self.t = self.t + 1
        # (z - mu) / sigma once, for the novelty term and the observation (core.normalise)
        core._step_q = (z, (z - core.mu) / core.sigma)
        try:
            reward, terms = core._reward(z, a, self.z0)  # core.reward without its no_grad
            final = core.observe(z, self.z0, self.t, self._t_one if self.one_step else None)
        finally:
            core._step_q = None
        self.ret = reward if self.one_step else self.ret + reward  # one_step: ret was 0
        # Every step carries the final_* keys with their masks: `if terminated.any()` would be a host read.
        if self.one_step:
            terminated = torch.ones(self.num_envs, dtype=torch.bool, device=core.device)
        else:
            terminated = self.t >= core.cfg.episode_length
        info: dict[str, Any] = dict(terms)
        info["final_obs"] = final
        info["_final_obs"] = terminated
        info["final_info"] = {"episode": {"r": self.ret, "l": self.t}, "_episode": terminated}
        info["_final_info"] = terminated
        # the autoreset replaces ret and t (new tensors): final_info keeps the finished values
        if self.one_step:
            obs = self._start_all()
        else:
            self._start(terminated)
            obs = torch.where(terminated.unsqueeze(1), core.observe(self.z, self.z0, self.t), final)
        return obs, reward, terminated, torch.zeros_like(terminated), info


class LatentEnv(gym.Env):
    """One latent environment with numpy observations and actions (``check_env`` compatible)."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, core: LatentCore):
        self.core = core
        self.observation_space, self.action_space = core.spaces()
        self._seed = 0
        self._episode = 0
        self.z = self.z0 = None
        self.t = 0
        self._started = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._seed, self._episode = int(seed), 0
        dev = self.core.device
        k = self.core.source_index(torch.tensor([self._seed], device=dev), torch.tensor([self._episode], device=dev))
        self._episode += 1
        self.z = self.core.latents[k].clone()
        self.z0 = self.z.clone()
        self.t = 0
        self._started = True
        return self._obs(), {}

    def _obs(self) -> np.ndarray:
        t = torch.tensor([self.t], device=self.core.device)
        return self.core.observe(self.z, self.z0, t)[0].cpu().numpy().astype(np.float32)

    def step(self, action):
        if not self._started:
            raise RuntimeError("latent env: call reset() before step()")
        a = torch.as_tensor(np.asarray(action, dtype=np.float32), device=self.core.device).reshape(1, -1).clamp(-1, 1)
        self.z = self.z + self.core.delta(a)
        self.t += 1
        reward, terms = self.core.reward(self.z, a, self.z0)
        terminated = self.t >= self.core.cfg.episode_length
        if terminated:
            self._started = False
        info = {k: float(v[0]) for k, v in terms.items()}
        return self._obs(), float(reward[0]), bool(terminated), False, info
