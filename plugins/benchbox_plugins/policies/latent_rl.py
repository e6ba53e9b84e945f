"""One base for the latent policies that learn dz with an RL algorithm of :mod:`benchbox_plugins.rl`.

:class:`LatentRLPolicy` is the glue between a cleanrl-style algorithm file (which knows nothing
of benchbox) and the :class:`~benchbox.interfaces.LatentPolicy` interface:

* **options** -- ``Config`` derives from :class:`LatentRLOptions` (the reward options of the
  latent environment, the training budget); each Config field whose name is also a field of the
  algorithm's ``Args`` is copied onto it (``arg_names`` renames), :meth:`args_overrides` adds the rest;
* **validation** -- the option names listed in ``positive`` / ``non_negative`` / ``unit_interval``
  and every ``Literal`` option are checked at construction; a bad value raises :class:`ConfigError`
  naming ``--policy.<option>``;
* **fit** -- builds the :class:`~benchbox_plugins.rl.latent_env.LatentCore` (:meth:`reward_config`,
  :meth:`reward_terms`), the environment (:meth:`make_env`), runs ``algorithm.train`` with the
  episode return, every reward term and ``curve_keys`` logged as curves; a non-finite loss
  (``FloatingPointError`` from the algorithm) becomes :class:`TrainingDiverged`;
* **propose** -- plays ``episode_length`` steps from each given z with :meth:`act`, seeded.

A new RL policy sets ``name``, ``algorithm``, ``Config`` and the check lists, and implements
:meth:`act`; a new reward term for every RL policy goes into :meth:`reward_terms` (or into the
options and :meth:`reward_config`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import typing
from dataclasses import dataclass
from types import ModuleType
from typing import Any, ClassVar, Iterator, Literal

import torch

from benchbox.errors import ConfigError, TrainingDiverged
from benchbox.interfaces import FitContext, Generator, LatentPolicy
from benchbox_plugins.rl.latent_env import LatentCore, LatentVectorEnv, RewardConfig, RewardTerm


@dataclass
class LatentRewardOptions:
    """The reward options every RL latent policy exposes (its ``Config`` derives from this)."""

    role: Literal["normal", "anomaly"] = "normal"
    """normal: new in-distribution samples; anomaly: near-boundary pseudo-anomalies (hard negatives)."""
    step_size: float = RewardConfig.step_size
    """Largest |dz| per step, in units of the per-dimension std of the training latents."""
    episode_length: int = RewardConfig.episode_length
    """Steps per episode (1 = contextual bandit)."""
    w_realism: float = RewardConfig.w_realism
    """Weight of the encoder-decoder consistency term."""
    w_novelty: float = RewardConfig.w_novelty
    """Weight of the nearest-training-latent distance band term."""
    w_size: float = RewardConfig.w_size
    """Weight of the step-size penalty."""

    def reward_config(self, step_scale: float = 1.0) -> RewardConfig:
        """These options as the environment's RewardConfig (``step_size`` times ``step_scale``)."""
        return RewardConfig(role=self.role, w_realism=self.w_realism, w_novelty=self.w_novelty, w_size=self.w_size,
                            step_size=self.step_size * step_scale, episode_length=self.episode_length)


@dataclass
class LatentRLOptions(LatentRewardOptions):
    """Reward options plus the training options shared by every RL latent policy."""

    total_timesteps: int = 32_768
    """Environment steps of training (summed over the batched environments)."""
    num_envs: int = 128
    """Latent environments stepped as one batch."""
    learning_rate: float = 1e-3
    gamma: float = 0.9
    hidden: int = 64
    """Width of the two hidden layers of the agent's networks."""
    threads: int = 1
    """torch CPU threads while the agent trains (small batched tensors: 1 avoids oversubscription; 0 = as is)."""


@dataclass
class OffPolicyOptions(LatentRLOptions):
    """The replay options of the off-policy agents (ddpg, dqn)."""

    batch_size: int = 256
    buffer_size: int = 100_000
    learning_starts: int = 1024
    """Transitions collected before learning starts (ddpg: with uniform random actions)."""
    gradient_steps: int = 16
    """Gradient updates (ddpg: critic updates) per batched environment step."""


@contextlib.contextmanager
def cpu_threads(n: int, device: torch.device) -> Iterator[None]:
    """torch's CPU thread count set to ``n`` for the block (CPU devices, ``n`` > 0), restored afterwards."""
    saved = torch.get_num_threads()
    if n > 0 and device.type == "cpu":
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


class LatentRLPolicy(LatentPolicy):
    """Base of the ppo, ddpg and dqn latent policies (not registered itself)."""

    name: ClassVar[str] = "rl"
    algorithm: ClassVar[ModuleType]
    """The rl module: ``Args`` (dataclass) and ``train(args, envs, on_update, info_keys)`` returning
    ``(acting model, ..., history)``."""
    positive: ClassVar[tuple[str, ...]] = ()
    non_negative: ClassVar[tuple[str, ...]] = ()
    unit_interval: ClassVar[tuple[str, ...]] = ()
    arg_names: ClassVar[dict[str, str]] = {}
    """Config field -> Args field, where the names differ."""
    curve_keys: ClassVar[tuple[str, ...]] = ()
    """Keys of the algorithm's log rows recorded as curves (besides the return and reward terms)."""

    config: LatentRLOptions

    def __init__(self, config: Any | None = None):
        super().__init__(config)
        self.check_options()
        self.role = self.config.role
        self.core: LatentCore | None = None
        self.model: torch.nn.Module | None = None
        self.history: list[dict[str, float]] = []

    # -- options ---------------------------------------------------------------------------
    def check_options(self) -> None:
        c = self.config
        always = ("step_size", "episode_length", "total_timesteps", "num_envs", "learning_rate", "hidden")
        for name in always + self.positive:
            if getattr(c, name) <= 0:
                self._bad(name, "> 0")
        for name in self.non_negative:
            if getattr(c, name) < 0:
                self._bad(name, ">= 0")
        for name in ("gamma",) + self.unit_interval:
            if not 0 <= getattr(c, name) <= 1:
                self._bad(name, "in [0, 1]")
        hints = typing.get_type_hints(type(c))
        for f in dataclasses.fields(c):
            choices = typing.get_args(hints[f.name]) if typing.get_origin(hints[f.name]) is Literal else ()
            if choices and getattr(c, f.name) not in choices:
                self._bad(f.name, "one of " + ", ".join(map(str, choices)))

    def _bad(self, option: str, expected: str) -> None:
        value = getattr(self.config, option)
        raise ConfigError(f"{self.name}: --policy.{option.replace('_', '-')} must be {expected}, got {value!r}")

    def args(self, ctx: FitContext) -> Any:
        """The algorithm's ``Args`` for this fit: same-named Config fields, then :meth:`args_overrides`."""
        wanted = {f.name for f in dataclasses.fields(self.algorithm.Args)}
        values = {self.arg_names.get(k, k): v for k, v in dataclasses.asdict(self.config).items()}
        values = {k: v for k, v in values.items() if k in wanted}
        values.update(seed=ctx.seed, env_id="benchbox-latent", device=str(ctx.device), progress=False)
        values.update(self.args_overrides())
        return self.algorithm.Args(**values)

    def args_overrides(self) -> dict[str, Any]:
        return {}

    # -- environment -----------------------------------------------------------------------
    def reward_config(self, latents: torch.Tensor) -> RewardConfig:
        return self.config.reward_config()

    def reward_terms(self, core: LatentCore, generator: Generator, ctx: FitContext) -> dict[str, tuple[float, RewardTerm]]:
        """Extra ``name -> (weight, term)`` added to the environment's reward (none by default)."""
        return {}

    def make_env(self, core: LatentCore) -> Any:
        return LatentVectorEnv(core, self.config.num_envs)

    # -- fit / propose ---------------------------------------------------------------------
    def fit(self, generator: Generator, latents: torch.Tensor, ctx: FitContext) -> None:
        c = self.config
        core = self.core = LatentCore(generator, latents, self.reward_config(latents), device=ctx.device)
        for term_name, (weight, term) in self.reward_terms(core, generator, ctx).items():
            core.add_term(term_name, weight, term)
        args = self.args(ctx)
        ctx.curves.log("band_low", 0, core.band[0])
        ctx.curves.log("band_high", 0, core.band[1])
        keys = ("episodic_return", *(f"reward/{k}" for k in core.terms), *self.curve_keys)

        def on_update(row: dict[str, float]) -> None:
            for key in keys:
                if not math.isnan(row[key]):
                    ctx.curves.log(key, row["global_step"], row[key])
            ctx.progress(row["global_step"], c.total_timesteps)

        env = self.make_env(core)
        try:
            with cpu_threads(c.threads, ctx.device):
                self.model, *_, self.history = self.algorithm.train(args, env, on_update, info_keys=tuple(core.terms))
        except FloatingPointError as exc:
            raise TrainingDiverged(f"{ctx.stage or 'fit policy'}: {self.name}: {exc} -- lower --policy.learning-rate "
                                   "or the reward weights") from exc
        self.model.eval()

    def act(self, obs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Actions in [-1, 1]^d for a batch of observations (random draws only from ``generator``)."""
        raise NotImplementedError

    @torch.no_grad()
    def propose(self, z: torch.Tensor, seed: int) -> torch.Tensor:
        if self.core is None or self.model is None:
            raise RuntimeError(f"{self.name}: call fit() before propose()")
        core, gen = self.core, torch.Generator().manual_seed(seed)
        z0 = z.detach().float().to(core.device)
        zt = z0.clone()
        for t in range(self.config.episode_length):
            obs = core.observe(zt, z0, torch.full((len(z0),), t, dtype=torch.long, device=core.device))
            zt = zt + core.delta(self.act(obs, gen))
        return (zt - z0).to(device=z.device, dtype=z.dtype)


class OffPolicyRLPolicy(LatentRLPolicy):
    """Base of the ddpg and dqn latent policies: replay options, one log row per batched step."""

    positive = ("batch_size", "buffer_size", "gradient_steps")
    non_negative = ("learning_starts",)

    config: OffPolicyOptions

    def args_overrides(self) -> dict[str, Any]:
        return {"hidden": (self.config.hidden, self.config.hidden), "log_every": self.config.num_envs}
