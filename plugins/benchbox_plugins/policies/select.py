"""Best of N by the loop reward, no learning: the bar a reward-trained policy has to clear.

``fit`` draws ``N = factor x M`` candidate latents from the ``M`` training latents (``mixup``
interpolations, ``random`` steps of ``sigma`` latent stds, or half of each), decodes them, and
orders them greedily by the detector-in-the-loop objective of
:mod:`benchbox_plugins.rl.loop_rewards`: set coverage of the reference normals a candidate was
not made from, plus ``w_plausibility`` x plausibility + ``w_duplicate`` x duplicate per
candidate. The first ``keep x M`` are chosen greedily (the greedy order is the greedy set for
every shorter budget); the rest follow by their own score. ``propose`` returns, for the r-th of
the n given sources, ``dz = chosen[r] - z`` (cycling if n > N), so the decoded set is the first n
chosen candidates whatever the sources; ``seed`` plays no part (the choice is fixed by ``fit``).

The fixed space is :func:`benchbox_plugins.policies.loop.loop_space`, the one the RL policies'
loop rewards use: the generator's image space, the decoded training latents as memory and
leave-one-out references, the decoded latents of the validation normals as held-out references,
featurised by raw ``pixels`` or the core's in-domain network (``infeat``). Only train and
validation data are used.

Defaults were chosen on ``digits`` (see ``benchmarks/augmentation_study.py --tune``): mixup
candidates, ``factor = 10`` (the 2,500-from-250 ratio of issue 18), reference = validation +
leave-one-out, band = 5--95th percentile of the validation normals' scores, no plausibility
or duplicate weight (coverage alone already prefers candidates near, not on, the normals).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from benchbox.interfaces import FitContext, Generator, LatentPolicy
from benchbox_plugins.policies.loop import loop_space
from benchbox_plugins.policies.mixup import Mixup
from benchbox_plugins.rl.loop_rewards import greedy_coverage


class SelectBest(LatentPolicy):
    """Best of N decoded candidates (mixup / random) by greedy loop coverage; no learning."""

    @dataclass
    class Config:
        candidates: Literal["mixup", "random", "both"] = "mixup"
        """Where candidates come from: interpolations of two training latents, random steps, or half each."""
        factor: float = 10.0
        """Candidates drawn per training latent (N = factor x M)."""
        keep: float = 1.0
        """Greedily chosen candidates per training latent; set it to --augment.ratio (the rest are ranked alone)."""
        features: Literal["pixels", "infeat"] = "pixels"
        """Fixed feature space of the loop reward: raw pixels or the core's in-domain network."""
        reference: Literal["both", "val", "train"] = "both"
        """Reference normals: validation normals, leave-one-out training normals, or both."""
        sigma: float = 0.5
        """Step of random candidates, in latent stds."""
        lo: float = 0.0
        """Lower end of the mixup weight a ~ U(lo, hi)."""
        hi: float = 1.0
        """Upper end of the mixup weight a ~ U(lo, hi)."""
        w_plausibility: float = 0.0
        """Weight of the plausibility term (own score inside the validation normals' band)."""
        w_duplicate: float = 0.0
        """Weight of the duplicate penalty (own score below a quarter of the band's lower edge)."""
        band_lo: float = 5.0
        """Lower percentile of the validation normals' scores bounding the plausible band."""
        band_hi: float = 95.0
        """Upper percentile of that band."""

    def __init__(self, config: Config | None = None):
        super().__init__(config)
        c = self.config
        if c.candidates not in ("mixup", "random", "both"):
            raise ValueError(f"select: --policy.candidates must be mixup, random or both, got {c.candidates!r}")
        if c.factor < 1 or c.keep < 0 or c.sigma < 0:
            raise ValueError(f"select: need --policy.factor >= 1, --policy.keep >= 0 and --policy.sigma >= 0, "
                             f"got {c.factor}, {c.keep}, {c.sigma}")
        self.mixup = Mixup(Mixup.Config(lo=c.lo, hi=c.hi))  # validates lo / hi
        self.chosen: torch.Tensor | None = None

    def candidates(self, latents: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(N x d candidate latents, N x 2 source indices with -1 padding)."""
        c, m = self.config, len(latents)
        n = int(round(c.factor * m))
        n_mix = {"mixup": n, "random": 0, "both": n // 2}[c.candidates]
        src = torch.randint(m, (n,), generator=gen)
        z = latents[src]
        dz = torch.empty_like(z)
        partner = torch.full((n,), -1, dtype=torch.long)
        if n_mix:
            dz[:n_mix], partner[:n_mix] = self.mixup.interpolate(z[:n_mix], src[:n_mix], gen)
        if n > n_mix:
            std = latents.std(0)
            dz[n_mix:] = torch.randn(n - n_mix, latents.shape[1], generator=gen) * c.sigma * std
        return z + dz, torch.stack([src, partner], 1)

    def fit(self, generator: Generator, latents: torch.Tensor, ctx: FitContext) -> None:
        c = self.config
        latents = latents.detach().float().cpu()
        self.mixup.fit(generator, latents, ctx)
        space = loop_space(generator, latents, ctx.val, c.features, c.reference, (c.band_lo, c.band_hi),
                           device=ctx.device, where="select: --policy")
        ref = space.reference
        zc, sources = self.candidates(latents, ctx.generator(11))
        ctx.progress(0.3, 1)
        feats = space.features(generator.decode(zc)).to(ctx.device)
        own = ref.own_score(feats)
        bonus = c.w_plausibility * ref.plausibility(own) + c.w_duplicate * ref.duplicate(own)
        alone = ref.coverage(feats, sources) + bonus
        k = min(len(zc), int(round(c.keep * len(latents))))
        head = greedy_coverage(ref, feats, sources, k, bonus)
        rest = torch.ones(len(zc), dtype=torch.bool)
        rest[head] = False
        rest_idx = torch.nonzero(rest).squeeze(1)
        tail = rest_idx[torch.argsort(alone.cpu()[rest_idx], descending=True, stable=True)]
        order = torch.cat([head, tail])
        self.chosen = zc[order]
        for name, value in (("coverage_all", alone.mean()), ("coverage_chosen", alone.cpu()[head].mean() if k else 0.0),
                            ("own_score_chosen", own.cpu()[head].mean() if k else 0.0)):
            ctx.curves.log(name, 0, float(value))
        ctx.progress(1, 1)

    def propose(self, z: torch.Tensor, seed: int) -> torch.Tensor:
        if self.chosen is None:
            raise RuntimeError("select: call fit() before propose()")
        idx = torch.arange(len(z)) % len(self.chosen)
        return (self.chosen[idx] - z.detach().float().cpu()).to(device=z.device, dtype=z.dtype)
