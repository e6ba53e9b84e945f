"""The detector-in-the-loop rewards of the latent policies: fixed space, reference data, env terms.

The maths of every term is in :mod:`benchbox_plugins.rl.loop_rewards` (torch only); this module
puts it in front of a fitted generator:

* :func:`loop_space` -- the fixed space the terms are computed in: the generator's image space.
  The memory and the leave-one-out reference normals are the decoded training latents, the
  held-out reference normals the decoded latents of the validation normals, so candidates,
  memory and references all pass through the same decoder (a blurry decode is not closer to a
  blurry reference than a sharp real image would be). Features: raw ``pixels`` or the core's
  in-domain network (``infeat``, trained once on the decoded training latents and cached). Only
  train and validation data are read -- never test.
* :class:`LoopScorer` -- the terms as bound methods ``(z_new, action, z0) -> N`` values, the
  shape :meth:`benchbox_plugins.rl.latent_env.LatentCore.add_term` takes: each decodes ``z'``
  once per step (shared by the terms of that step), and takes a candidate's sources from the
  episode's source latent ``z0`` (the training latent it equals).

On the device: the reference data, the scorer's copy of the training latents and the detector's
pseudo-anomalies live on the device the loop space was built for (the policy's ``ctx.device``,
the one its latent env steps on). A step decodes ``z'`` on that device (a benchbox generator's
``decode`` returns on its input's device), computes the features, the 1-NN distances and the
source match there and returns on ``z'``'s device: nothing is read back to the host inside a
step. Only set-up (the reference, its band, the detector's threshold after each round) reads
host values. On the CPU the numbers are those of the host path, bit for bit.

Role ``anomaly`` (:meth:`LoopScorer.adversarial`): the band is the loop space's (the candidate
is just outside the validation normals' score band there); the *current detector* is a second
1-NN in the other fixed space (``infeat`` when the band is in ``pixels`` and vice versa; one
detector in one space would contradict itself: "outside the band" and "scored normal" would be
the same number), in classify mode once pseudo-anomalies are known: its score is
``d_normal(x) - d_pseudo(x)`` (1-NN distances to the training normals and to the accepted
pseudo-anomalies of the earlier rounds), its threshold the ``band_hi`` percentile of the
validation normals' scores. After each round (``--policy.rounds``) the policy's proposals from
every training latent become pseudo-anomalies, so the next round must fool the updated detector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from benchbox.interfaces import Generator, LabeledImages
from benchbox_plugins.detectors.knn import FixedFeatures
from benchbox_plugins.policies.mixup import match_rows
from benchbox_plugins.rl.loop_rewards import LoopReference, knn_scores

@dataclass
class LoopSpace:
    """A fixed feature map and the loop rewards' reference data in it."""

    features: FixedFeatures
    reference: LoopReference


def loop_space(generator: Generator, latents: torch.Tensor, val: LabeledImages | None, features: str = "pixels",
               reference: str = "both", band: tuple[float, float] = (5.0, 95.0), dup_fraction: float = 0.25,
               device: torch.device | str = "cpu", where: str = "--policy") -> LoopSpace:
    """The loop-reward space of a fitted generator (see the module docstring)."""
    if reference not in ("both", "val", "train"):
        raise ValueError(f"{where}.reference must be 'both', 'val' or 'train', got {reference!r}")
    train_dec = generator.decode(latents.detach().cpu())
    featurize = FixedFeatures(features, train_dec, device, where=f"{where}.features")
    held = None
    if reference in ("both", "val"):
        if val is None or int((val.labels == 0).sum()) == 0:
            raise ValueError(f"{where}.reference {reference!r} needs validation normals, and the data has none "
                             f"(use {where}.reference train)")
        held = featurize(generator.decode(generator.encode(val.images[val.labels == 0])))
    ref = LoopReference.build(featurize(train_dec).to(device), held, loo=reference in ("both", "train"), band=band,
                              dup_fraction=dup_fraction)  # built where the terms run (held follows the memory)
    return LoopSpace(featurize, ref)


class LoopScorer:
    """The loop terms over a latent env's steps: ``scorer.coverage`` etc. are :data:`RewardTerm` s."""

    def __init__(self, generator: Generator, latents: torch.Tensor, space: LoopSpace,
                 detector_space: LoopSpace | None = None, band_hi: float = 95.0):
        self.generator = generator
        self.band_hi = band_hi
        self.device = space.reference.memory.device  # where the terms run: the env's device
        self.latents = latents.detach().float().to(self.device)
        self.space = space
        self.detector_space = detector_space
        self.pseudo: torch.Tensor | None = None  # detector-space features of accepted pseudo-anomalies
        self._last: tuple[torch.Tensor, dict[str, torch.Tensor]] | None = None  # this step's z', what it gave
        self.threshold = float("inf")
        if detector_space is not None:
            self.threshold = self._threshold()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_last": None}

    def images(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` decoded on the scorer's device (where the generator's ``decode`` leaves them)."""
        return self.generator.decode(z.detach().float().to(self.device))

    def _memo(self, z_new: torch.Tensor, key: str, make: Callable[[], torch.Tensor]) -> torch.Tensor:
        """``make()`` once per step: the terms of one step share its decode, features and 1-NN scores."""
        if self._last is None or self._last[0] is not z_new:
            self._last = (z_new, {})
        memo = self._last[1]
        if key not in memo:
            memo[key] = make()
        return memo[key]

    def _decoded(self, z_new: torch.Tensor) -> torch.Tensor:
        return self._memo(z_new, "images", lambda: self.images(z_new))

    def _features(self, z_new: torch.Tensor) -> torch.Tensor:
        return self._memo(z_new, "features",
                          lambda: self.space.features.rows(self._decoded(z_new)).to(self.device))

    def _own(self, z_new: torch.Tensor) -> torch.Tensor:
        return self._memo(z_new, "own", lambda: self.space.reference.own_score(self._features(z_new)))

    def _sources(self, z0: torch.Tensor | None, n: int) -> torch.Tensor:
        if z0 is None:
            return torch.full((n,), -1, dtype=torch.long, device=self.device)
        return match_rows(z0.detach().float().to(self.device), self.latents)

    # -- terms (z_new, action, z0) -> N values ---------------------------------------------------
    def coverage(self, z_new: torch.Tensor, action: Any = None, z0: torch.Tensor | None = None) -> torch.Tensor:
        ref = self.space.reference
        return ref.coverage(self._features(z_new), self._sources(z0, len(z_new))).to(z_new.device)

    def plausibility(self, z_new: torch.Tensor, action: Any = None, z0: Any = None) -> torch.Tensor:
        return self.space.reference.plausibility(self._own(z_new)).to(z_new.device)

    def duplicate(self, z_new: torch.Tensor, action: Any = None, z0: Any = None) -> torch.Tensor:
        return self.space.reference.duplicate(self._own(z_new)).to(z_new.device)

    def adversarial(self, z_new: torch.Tensor, action: Any = None, z0: Any = None) -> torch.Tensor:
        if self.detector_space is None:
            raise RuntimeError("loop rewards: the adversarial term needs a detector space")
        own = self._own(z_new)
        det = self.detector_score(self._decoded(z_new))
        return self.space.reference.adversarial(own, det.to(own.device), self.threshold).to(z_new.device)

    # -- the current detector of role anomaly ----------------------------------------------------
    def detector_score(self, images: torch.Tensor) -> torch.Tensor:
        """1-NN distance to the normals minus 1-NN distance to the pseudo-anomalies (classify mode)."""
        assert self.detector_space is not None
        dref = self.detector_space.reference
        f = self.detector_space.features.rows(images).to(dref.memory.device)
        score = knn_scores(f, dref.memory, 1)
        if self.pseudo is not None and len(self.pseudo):
            score = score - knn_scores(f, self.pseudo, 1)
        return score

    def _threshold(self) -> float:
        """The detector's band_hi-percentile score of the held-out normals (training normals: leave-one-out)."""
        assert self.detector_space is not None
        dref = self.detector_space.reference
        if self.pseudo is None:
            return dref.band[1]
        return float(torch.quantile(self._heldout_scores(), self.band_hi / 100))  # set-up: one host read

    def _heldout_scores(self) -> torch.Tensor:
        assert self.detector_space is not None and self.pseudo is not None
        dref = self.detector_space.reference
        held = dref.normals[dref.source < 0]
        if not len(held):  # leave-one-out scores of the training normals
            m = len(dref.memory)
            d_n = knn_scores(dref.memory, dref.memory, 1, exclude=torch.arange(m, device=dref.memory.device))
            return (d_n - knn_scores(dref.memory, self.pseudo, 1)).double()
        return (knn_scores(held, dref.memory, 1) - knn_scores(held, self.pseudo, 1)).double()

    def add_pseudo_anomalies(self, z: torch.Tensor) -> None:
        """Accept the decoded ``z`` as pseudo-anomalies: the current detector now scores their region high."""
        assert self.detector_space is not None
        dspace = self.detector_space
        f = dspace.features.rows(self.images(z)).to(dspace.reference.memory.device)
        self.pseudo = f if self.pseudo is None else torch.cat([self.pseudo, f])
        self.threshold = self._threshold()
