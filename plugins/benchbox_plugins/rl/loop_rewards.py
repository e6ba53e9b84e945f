"""Reward terms that see the detector: coverage, plausibility, duplicate and adversarial (torch only).

cleanrl-pure: this file imports nothing from benchbox. Every term works on *features* -- rows
of a fixed feature space ``f`` (raw pixels, or a fixed in-domain network chosen by the caller)
-- and on batched tensors on one device; there is no Python loop over candidates.

The fast detector behind every term is 1-NN: the anomaly score of an image ``x`` against a
memory ``T = {t_1..t_M}`` (the features of the detector's training normals) is

    score(x) = min_k ||f(x) - t_k||                       (Euclidean, accumulated in float64)

Reference normals (:class:`LoopReference`)
------------------------------------------
``R`` normals ``n_j`` whose scores a useful candidate should lower, each with a *source* ``s_j``:

* held-out normals (validation), ``s_j = -1``, baseline score ``d_j = min_k ||n_j - t_k||``;
* leave-one-out training normals, ``n_j = t_j``, ``s_j = j``, baseline score
  ``d_j = min_{k != j} ||t_j - t_k||`` (the score training normal ``j`` would get had it not
  been trained on).

A candidate ``c_i`` carries the set ``S(i)`` of training indices it was made from (one for a
step ``z_i + dz``, two for an interpolation of ``z_i`` and ``z_k``; ``-1`` pads).

Terms (each a tensor of N values, higher = better)
--------------------------------------------------
* **coverage** (role normal): how much the candidate, added alone to the memory, lowers the
  1-NN scores of the reference normals it was *not* made from, in units of the mean baseline
  score ``dbar = mean_j d_j``::

      coverage_i = sum_{j : s_j not in S(i)} max(0, d_j - ||c_i - n_j||) / dbar

  Excluding the sources is what makes it honest: a copy of training image ``j`` would
  otherwise earn ``d_j`` for "covering" itself. :func:`greedy_coverage` maximises the
  same quantity over a *set* (the score of ``n_j`` after adding a set is the min over it).
* **plausibility** (role normal): the candidate's own score ``s_i = score(c_i)`` (against the
  whole memory, sources included) should lie inside the band ``[lo, hi]`` of the held-out
  normals' scores (two percentiles)::

      plausibility_i = -(max(0, lo - s_i) + max(0, s_i - hi)) / scale       (scale = median held-out score)

* **duplicate** (role normal): ``-1`` when ``s_i < dup_min`` (a near-copy of a training
  normal teaches the detector nothing), else ``0``.
* **adversarial** (role anomaly): candidates just *outside* the normal band that the current
  detector still calls normal. With ``u_i = (s_i - hi) / width`` (``width = hi - lo``, so the
  target band ``[hi, hi + width]`` sits right above the normal band) ``out_i = 1 - (2 u_i - 1)^2``
  (1 at the band centre, 0 at its edges, negative outside, clipped below at ``-clip``) and
  ``fooled_i = 1`` when the current detector's score of the candidate is at most its threshold
  (its score at the ``hi`` percentile of held-out normals), else ``0``::

      adversarial_i = fooled_i * max(out_i, 0) + min(out_i, 0)

  so a candidate earns credit only inside the band *and* while it still fools the detector,
  and is penalised anywhere outside the band.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def pairwise_distances(a: torch.Tensor, b: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """Euclidean distances ``len(a) x len(b)`` between rows, float64 accumulation, float32 result.

    ``|a|^2 + |b|^2 - 2 a.b`` in float64 (exact to ~1e-12 relative), computed in chunks of rows
    of ``a``, so a row's distances do not depend on which other rows it is batched with.
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"pairwise_distances: need N x f and M x f, got {tuple(a.shape)} and {tuple(b.shape)}")
    b64 = b.double()
    bn = (b64 * b64).sum(1)
    out = []
    for start in range(0, len(a), chunk):
        x = a[start : start + chunk].double()
        d2 = (x * x).sum(1, keepdim=True) + bn - 2.0 * (x @ b64.T)
        out.append(d2.clamp_min_(0).sqrt_().float())
    return torch.cat(out) if out else torch.empty(0, len(b), device=a.device)


def knn_scores(queries: torch.Tensor, memory: torch.Tensor, k: int = 1, exclude: torch.Tensor | None = None,
               chunk: int = 1024) -> torch.Tensor:
    """Mean distance of each query to its ``k`` nearest memory rows (``exclude[i]``: a row to skip, -1 none)."""
    if not 1 <= k <= len(memory) - (0 if exclude is None else 1):
        raise ValueError(f"knn_scores: k={k} needs at least {k} memory rows to choose from, got {len(memory)}")
    out = []
    for start in range(0, len(queries), chunk):
        d = pairwise_distances(queries[start : start + chunk], memory, chunk)
        if exclude is not None:
            ex = exclude[start : start + chunk].to(d.device)
            rows = torch.nonzero(ex >= 0).squeeze(1)
            d[rows, ex[rows]] = float("inf")
        out.append(d.topk(k, dim=1, largest=False).values.mean(1))
    return torch.cat(out) if out else torch.empty(0, device=queries.device)


@dataclass
class LoopReference:
    """The fixed data the loop terms compare candidates with (build it with :meth:`build`)."""

    memory: torch.Tensor  # M x f: the detector's training normals (features)
    normals: torch.Tensor  # R x f: reference normals whose scores coverage lowers
    source: torch.Tensor  # R int64: training index of a leave-one-out normal, -1 for a held-out one
    base: torch.Tensor  # R: baseline 1-NN score d_j of each reference normal
    band: tuple[float, float]  # [lo, hi]: percentiles of the held-out normals' scores
    scale: float  # median held-out score (unit of plausibility)
    dup_min: float  # scores below this are duplicates

    @classmethod
    def build(cls, memory: torch.Tensor, heldout: torch.Tensor | None = None, loo: bool = True,
              band: tuple[float, float] = (5.0, 95.0), dup_fraction: float = 0.25) -> "LoopReference":
        """Reference normals = ``heldout`` (if given) plus, with ``loo``, every training normal.

        ``band`` percentiles and ``scale`` come from the held-out normals' scores (from the
        leave-one-out training scores when there are no held-out normals); ``dup_min`` is
        ``dup_fraction`` times the band's lower edge.
        """
        memory = memory.float()
        m = len(memory)
        if m < 2:
            raise ValueError(f"loop rewards: need at least 2 training normals in the memory, got {m}")
        lo_p, hi_p = band
        if not 0 <= lo_p < hi_p <= 100:
            raise ValueError(f"loop rewards: band percentiles must satisfy 0 <= lo < hi <= 100, got {band}")
        has_heldout = heldout is not None and len(heldout) > 0
        if not has_heldout and not loo:
            raise ValueError("loop rewards: no reference normals (no held-out normals and loo=False)")
        loo_base = knn_scores(memory, memory, 1, exclude=torch.arange(m, device=memory.device))
        parts, sources, bases = [], [], []
        if has_heldout:
            held = heldout.float().to(memory.device)
            held_base = knn_scores(held, memory, 1)
            parts.append(held), sources.append(torch.full((len(held),), -1, dtype=torch.long, device=memory.device))
            bases.append(held_base)
        if loo:
            parts.append(memory), sources.append(torch.arange(m, device=memory.device)), bases.append(loo_base)
        calib = held_base if has_heldout else loo_base
        q = torch.quantile(calib.double().cpu(), torch.tensor([lo_p / 100, hi_p / 100, 0.5], dtype=torch.float64))
        lo, hi, med = float(q[0]), float(max(q[1], q[0] + 1e-6)), float(q[2])
        return cls(memory=memory, normals=torch.cat(parts), source=torch.cat(sources), base=torch.cat(bases),
                   band=(lo, hi), scale=max(med, 1e-8), dup_min=dup_fraction * lo)

    def to(self, device: torch.device | str) -> "LoopReference":
        return LoopReference(self.memory.to(device), self.normals.to(device), self.source.to(device),
                             self.base.to(device), self.band, self.scale, self.dup_min)

    # -- terms ---------------------------------------------------------------------------------
    def _gains(self, cand: torch.Tensor, sources: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """N x R: ``max(0, level_j - ||c_i - n_j||)``, zero where ``s_j`` is a source of ``i``."""
        dist = pairwise_distances(cand.float(), self.normals)
        gain = (level.unsqueeze(0) - dist).clamp_min_(0)
        src = _as_sources(sources, len(cand)).to(dist.device)
        own = ((self.source.view(1, -1, 1) == src.unsqueeze(1)) & (src.unsqueeze(1) >= 0)).any(-1)
        return gain.masked_fill_(own, 0.0)

    def coverage(self, cand: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
        """``coverage_i`` of the module docstring (N candidates x f features; sources N or N x S)."""
        return self._gains(cand, sources, self.base).sum(1) / self.base.mean().clamp_min(1e-12)

    def own_score(self, cand: torch.Tensor) -> torch.Tensor:
        """The candidates' own 1-NN scores against the whole memory."""
        return knn_scores(cand.float(), self.memory, 1)

    def plausibility(self, own: torch.Tensor) -> torch.Tensor:
        lo, hi = self.band
        return -((lo - own).clamp_min(0) + (own - hi).clamp_min(0)) / self.scale

    def duplicate(self, own: torch.Tensor) -> torch.Tensor:
        return -(own < self.dup_min).float()

    def adversarial(self, own: torch.Tensor, detector_scores: torch.Tensor, threshold: float,
                    clip: float = 3.0) -> torch.Tensor:
        """``adversarial_i``: just outside the band and still scored at most ``threshold`` by the detector."""
        lo, hi = self.band
        u = (own - hi) / (hi - lo)
        out = (1 - (2 * u - 1) ** 2).clamp_min(-clip)
        fooled = (detector_scores.to(own.device) <= threshold).float()
        return fooled * out.clamp_min(0) + out.clamp_max(0)


def _as_sources(sources: torch.Tensor, n: int) -> torch.Tensor:
    src = sources.long()
    src = src.unsqueeze(1) if src.ndim == 1 else src
    if src.ndim != 2 or len(src) != n:
        raise ValueError(f"loop rewards: sources must be N or N x S with N = {n}, got {tuple(sources.shape)}")
    return src


def greedy_coverage(ref: LoopReference, cand: torch.Tensor, sources: torch.Tensor, budget: int,
                    bonus: torch.Tensor | None = None) -> torch.Tensor:
    """Indices of ``budget`` candidates chosen greedily to maximise set coverage (+ a per-candidate bonus).

    The set objective is ``F(S) = sum_j (d_j - min(d_j, min_{i in S, s_j not in S(i)} ||c_i - n_j||)) / dbar
    + sum_{i in S} bonus_i``: coverage of the module docstring for a set (submodular) plus a
    modular term, so the greedy order is within ``1 - 1/e`` of the best set of every prefix
    length. Each step picks the largest marginal gain (ties: lowest index). Returns the order.
    """
    n = len(cand)
    if not 0 <= budget <= n:
        raise ValueError(f"greedy_coverage: budget must be in [0, {n}], got {budget}")
    gains_at = ref._gains(cand, sources, ref.base)  # N x R gains against the baseline
    dist = ref.base.unsqueeze(0) - gains_at  # = min(d_j, ||c_i - n_j||), d_j where i may not cover j
    level = ref.base.clone()
    dbar = ref.base.mean().clamp_min(1e-12)
    extra = torch.zeros(n, device=dist.device) if bonus is None else bonus.to(dist.device).float()
    taken = torch.zeros(n, dtype=torch.bool, device=dist.device)
    order = []
    for _ in range(budget):
        marginal = (level.unsqueeze(0) - dist).clamp_min(0).sum(1) / dbar + extra
        marginal = marginal.masked_fill(taken, float("-inf"))
        i = int(torch.argmax(marginal))
        order.append(i)
        taken[i] = True
        level = torch.minimum(level, dist[i])
    return torch.tensor(order, dtype=torch.long)
