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
* **propose** -- plays ``episode_length`` steps from each given z with :meth:`act`: the policy's
  mean (greedy, noise-free) action by default, a seeded sample with ``--policy.sample``.

Rewards (``--policy.reward``): ``proxy`` -- the latent env's realism + novelty band - step size;
``loop`` -- only the detector-in-the-loop terms of :mod:`benchbox_plugins.policies.loop` (role
normal: ``w_coverage`` x coverage + ``w_plausibility`` x plausibility + ``w_duplicate`` x
duplicate; role anomaly: ``w_adversarial`` x adversarial, over ``--policy.rounds`` policy /
detector rounds); ``both`` -- their sum. Every term is logged as a ``reward/<term>`` curve.

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
from benchbox.options import above, at_least, between
from benchbox.interfaces import FitContext, Generator, LatentPolicy
from benchbox_plugins.policies.loop import LoopScorer, loop_space
from benchbox_plugins.rl.latent_env import LatentCore, LatentVectorEnv, RewardConfig, RewardTerm


AUTO_TIMESTEPS, AUTO_SIDE, MIN_AUTO_TIMESTEPS = 32_768, 64, 2_048


def auto_timesteps(side: int) -> int:
    """The auto training budget for images of ``side`` px: 32,768 steps up to 64 px, then
    proportional to 1 / pixels (every step decodes and re-encodes a batch), never below 2,048."""
    if side <= AUTO_SIDE:
        return AUTO_TIMESTEPS
    return max(MIN_AUTO_TIMESTEPS, int(AUTO_TIMESTEPS * (AUTO_SIDE / side) ** 2))


@dataclass
class LatentRewardOptions:
    """The reward options every RL latent policy exposes (its ``Config`` derives from this)."""

    role: Literal["normal", "anomaly"] = "normal"
    """normal: new in-distribution samples; anomaly: near-boundary pseudo-anomalies (hard negatives)."""
    step_size: float = RewardConfig.step_size
    """Largest |dz| per step, in units of the per-dimension std of the training latents."""
    episode_length: typing.Annotated[int, at_least(1)] = RewardConfig.episode_length
    """Steps per episode (1 = contextual bandit)."""
    w_realism: float = RewardConfig.w_realism
    """Weight of the encoder-decoder consistency term."""
    w_novelty: float = RewardConfig.w_novelty
    """Weight of the nearest-training-latent distance band term."""
    w_size: float = RewardConfig.w_size
    """Weight of the step-size penalty."""
    reward: Literal["proxy", "loop", "both"] = "proxy"
    """proxy: realism + novelty band - step size; loop: only the detector-in-the-loop terms; both: their sum."""
    w_coverage: float = 1.0
    """Loop, role normal: weight of coverage (lowering the scores of reference normals not made from)."""
    w_plausibility: float = 0.0
    """Loop, role normal: weight of plausibility (own score inside the validation normals' band)."""
    w_duplicate: float = 0.0
    """Loop, role normal: weight of the near-copy penalty."""
    w_adversarial: float = 1.0
    """Loop, role anomaly: weight of adversarial (just outside the band, still scored normal)."""
    loop_features: Literal["pixels", "infeat"] = "pixels"
    """Fixed feature space of the loop terms (the adversarial detector uses the other one)."""
    loop_reference: Literal["both", "val", "train"] = "both"
    """Loop reference normals: validation normals, leave-one-out training normals, or both."""
    rounds: int = 1
    """Role anomaly, loop reward: policy / detector rounds (each round's proposals become pseudo-anomalies)."""

    def reward_config(self, step_scale: float = 1.0) -> RewardConfig:
        """These options as the environment's RewardConfig (``step_size`` times ``step_scale``)."""
        return RewardConfig(role=self.role, w_realism=self.w_realism, w_novelty=self.w_novelty, w_size=self.w_size,
                            step_size=self.step_size * step_scale, episode_length=self.episode_length)


@dataclass
class LatentRLOptions(LatentRewardOptions):
    """Reward options plus the training options shared by every RL latent policy."""

    total_timesteps: typing.Annotated[int, at_least(0)] = 0
    """Environment steps of training (summed over the batched environments). 0 = auto: 32,768 for
    images up to 64 px a side, scaled by (64 / side)^2 above (8,192 at 128 px, 2,048 at 256 px):
    every step decodes and re-encodes a batch, so the budget follows the pixels."""
    num_envs: typing.Annotated[int, at_least(1)] = 128
    """Latent environments stepped as one batch."""
    learning_rate: typing.Annotated[float, above(0)] = 1e-3
    gamma: typing.Annotated[float, between(0, 1)] = 0.9
    hidden: typing.Annotated[int, at_least(1)] = 64
    """Width of the two hidden layers of the agent's networks."""
    threads: int = 1
    """torch CPU threads while the agent trains (small batched tensors: 1 avoids oversubscription; 0 = as is)."""
    sample: bool = False
    """propose samples actions (exploration noise included) instead of taking the policy's mean / greedy action."""


@dataclass
class OffPolicyOptions(LatentRLOptions):
    """The replay options of the off-policy agents (ddpg, dqn)."""

    batch_size: typing.Annotated[int, at_least(1)] = 256
    buffer_size: typing.Annotated[int, at_least(1)] = 100_000
    learning_starts: typing.Annotated[int, at_least(0)] = 1024
    """Transitions collected before learning starts (ddpg: with uniform random actions)."""
    gradient_steps: typing.Annotated[int, at_least(1)] = 16
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
        self.scorer: LoopScorer | None = None

    # -- options ---------------------------------------------------------------------------
    def check_options(self) -> None:
        c = self.config
        always = ("step_size", "episode_length", "num_envs", "learning_rate", "hidden", "rounds")
        for name in always + self.positive:
            if getattr(c, name) <= 0:
                self._bad(name, "> 0")
        if c.total_timesteps < 0:
            self._bad("total_timesteps", ">= 0 (0 = auto)")
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
        if c.rounds > 1 and (c.role != "anomaly" or c.reward == "proxy"):
            self._bad("rounds", "1 unless --policy.role anomaly with --policy.reward loop or both")

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

    def timesteps(self, generator: Generator, latents: torch.Tensor) -> int:
        """``--policy.total-timesteps``, or when 0 the auto budget for the generator's image side."""
        if self.config.total_timesteps:
            return self.config.total_timesteps
        side = max(generator.decode(latents[:1].detach().cpu()).shape[-2:])
        return auto_timesteps(side)

    # -- environment -----------------------------------------------------------------------
    def reward_config(self, latents: torch.Tensor) -> RewardConfig:
        return self.config.reward_config()

    def reward_terms(self, core: LatentCore, generator: Generator, ctx: FitContext) -> dict[str, tuple[float, RewardTerm]]:
        """Extra ``name -> (weight, term)`` added to the environment's reward: the loop terms unless reward = proxy."""
        c = self.config
        self.scorer = None
        if c.reward == "proxy":
            return {}
        latents = core.latents.cpu()
        where = f"{self.name}: --policy.loop"
        space = loop_space(generator, latents, ctx.val, c.loop_features, c.loop_reference, device=ctx.device, where=where)
        if c.role == "anomaly":
            other = "infeat" if c.loop_features == "pixels" else "pixels"
            detector = loop_space(generator, latents, ctx.val, other, c.loop_reference, device=ctx.device, where=where)
            self.scorer = LoopScorer(generator, latents, space, detector)
            return {"adversarial": (c.w_adversarial, self.scorer.adversarial)}
        self.scorer = LoopScorer(generator, latents, space)
        return {"coverage": (c.w_coverage, self.scorer.coverage),
                "plausibility": (c.w_plausibility, self.scorer.plausibility),
                "duplicate": (c.w_duplicate, self.scorer.duplicate)}

    def make_env(self, core: LatentCore) -> Any:
        return LatentVectorEnv(core, self.config.num_envs)

    # -- fit / propose ---------------------------------------------------------------------
    def fit(self, generator: Generator, latents: torch.Tensor, ctx: FitContext) -> None:
        c = self.config
        core = self.core = LatentCore(generator, latents, self.reward_config(latents), device=ctx.device)
        if c.reward == "loop":
            core.terms.clear()  # the proxy terms take no part
        for term_name, (weight, term) in self.reward_terms(core, generator, ctx).items():
            core.add_term(term_name, weight, term)
        steps = self.timesteps(generator, latents)
        args = dataclasses.replace(self.args(ctx), total_timesteps=steps)
        ctx.curves.log("total_timesteps", 0, steps)
        if not c.total_timesteps and steps != AUTO_TIMESTEPS:
            ctx.note(f"{self.name}: --policy.total-timesteps 0 (auto): {steps} steps for these image sizes")
        ctx.curves.log("band_low", 0, core.band[0])
        ctx.curves.log("band_high", 0, core.band[1])
        keys = ("episodic_return", *(f"reward/{k}" for k in core.terms), *self.curve_keys)

        def on_update(row: dict[str, float]) -> None:
            for key in keys:
                if not math.isnan(row[key]):
                    ctx.curves.log(key, row["global_step"], row[key])
            ctx.progress(row["global_step"], steps)

        for r in range(c.rounds):
            if r:  # the last round's proposals from every training latent become pseudo-anomalies
                self.scorer.add_pseudo_anomalies(core.latents + self.rollout(core.latents, None))
                ctx.curves.log("detector_threshold", r, self.scorer.threshold)
                args = dataclasses.replace(args, seed=args.seed + 7919 * r)
            env = self.make_env(core)
            try:
                with cpu_threads(c.threads, ctx.device):
                    self.model, *_, self.history = self.algorithm.train(args, env, on_update, info_keys=tuple(core.terms))
            except FloatingPointError as exc:
                raise TrainingDiverged(f"{ctx.stage or 'fit policy'}: {self.name}: {exc} -- lower "
                                       "--policy.learning-rate or the reward weights") from exc
            self.model.eval()

    def act(self, obs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Actions in [-1, 1]^d for a batch of observations: the mean / greedy action when ``generator``
        is None, else a sample (random draws only from ``generator``)."""
        raise NotImplementedError

    @torch.no_grad()
    def rollout(self, z0: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        """dz of one episode from each row of ``z0`` (on the core's device), mean actions when ``gen`` is None."""
        core = self.core
        zt = z0.clone()
        for t in range(self.config.episode_length):
            obs = core.observe(zt, z0, torch.full((len(z0),), t, dtype=torch.long, device=core.device))
            zt = zt + core.delta(self.act(obs, gen))
        return zt - z0

    @torch.no_grad()
    def propose(self, z: torch.Tensor, seed: int) -> torch.Tensor:
        if self.core is None or self.model is None:
            raise RuntimeError(f"{self.name}: call fit() before propose()")
        gen = torch.Generator().manual_seed(seed) if self.config.sample else None
        dz = self.rollout(z.detach().float().to(self.core.device), gen)
        return dz.to(device=z.device, dtype=z.dtype)


class OffPolicyRLPolicy(LatentRLPolicy):
    """Base of the ddpg and dqn latent policies: replay options, one log row per batched step."""

    positive = ("batch_size", "buffer_size", "gradient_steps")
    non_negative = ("learning_starts",)

    config: OffPolicyOptions

    def args_overrides(self) -> dict[str, Any]:
        return {"hidden": (self.config.hidden, self.config.hidden), "log_every": self.config.num_envs}
