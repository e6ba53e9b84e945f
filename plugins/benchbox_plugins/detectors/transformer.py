"""A small Vision Transformer trained to inpaint masked patches of normal images.

Training: a random subset of patches (``mask_ratio``) is replaced by a learned mask token and the
network reconstructs their pixels (MSE on masked patches only, SimMIM-style).

Scoring (``score = "knn"``, the default): after training, the encoder's output tokens of every
training image (unmasked) form a memory bank, one set per patch position. A test patch's score
is the distance of its token to the nearest training token at the same position (PatchCore-style,
on features learned by masked inpainting); the image score is the highest patch score
(``image_score = "max"``). Augmented training images enter the bank too, so extra normal data
directly densifies what counts as normal.

``score = "inpaint"`` scores by the inpainting error instead, deterministically: for each of
``score_rounds`` fixed permutations of the patches (seeded), the patches are cut into
``V = round(1 / (1 - mask_ratio))`` blocks and ``V`` masks are built, each hiding everything but
one block; a patch's score is its mean inpainting error over the passes that hid it.

The anomaly map is the per-patch score upsampled to image size.

``mode = "classify"`` is the consumer of pseudo-anomalies (a policy with ``role == "anomaly"``):
the same transformer trunk, unmasked, mean-pools its tokens into one logit and is trained with a
class-balanced binary cross-entropy to tell the normal training images (0) from the generated
pseudo-anomalies (1). The image score of a real test image is that logit; there is no map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from torch import nn

from benchbox.interfaces import Detector, FitContext, Scores
from benchbox.options import above, at_least, within
from benchbox.training import auto_epochs, train_epochs


class MaskedPatchViT(nn.Module):
    def __init__(self, channels: int, grid: int, patch: int, dim: int, depth: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.patch, self.grid, self.channels = patch, grid, channels
        pdim = channels * patch * patch
        self.embed = nn.Linear(pdim, dim)
        self.pos = nn.Parameter(torch.randn(1, grid * grid, dim) * 0.02)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        layer = nn.TransformerEncoderLayer(
            dim, heads, int(dim * mlp_ratio), dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, pdim)

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """N x C x H x W -> N x L x (C p p)."""
        p = self.patch
        return F.unfold(x, kernel_size=p, stride=p).transpose(1, 2)

    def forward(self, patches: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """patches: N x L x P; mask: N x L bool (True = hidden). Returns predicted patches."""
        tokens = self.embed(patches)
        tokens = torch.where(mask.unsqueeze(-1), self.mask_token.expand_as(tokens), tokens) + self.pos
        return self.head(self.norm(self.encoder(tokens)))


class PatchClassifier(nn.Module):
    """The ViT trunk without masking: mean-pooled, normed tokens -> one logit (anomalous = high)."""

    def __init__(self, vit: MaskedPatchViT, dim: int):
        super().__init__()
        self.vit = vit
        self.logit = nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.vit.embed(self.vit.patchify(x)) + self.vit.pos
        return self.logit(self.vit.norm(self.vit.encoder(tokens)).mean(1)).squeeze(1)


USUAL_EPOCHS = 60
"""--detector.epochs 0 (auto) up to 64 px a side."""


class TransformerDetector(Detector):
    """Vision Transformer trained by masked-patch inpainting; scores by patch-token kNN or inpainting error."""
    pseudo_anomalies = staticmethod(lambda config: "needs" if config.mode == "classify" else "refuses")

    @dataclass
    class Config:
        patch_size: Annotated[int, at_least(0)] = 0
        """Patch side in pixels (0 = about image_size / 7, at least 2)."""
        dim: Annotated[int, at_least(1)] = 96
        depth: Annotated[int, at_least(1)] = 4
        heads: Annotated[int, at_least(1)] = 4
        mlp_ratio: Annotated[float, above(0)] = 2.0
        mask_ratio: Annotated[float, within(0, 1)] = 0.9
        """Share of patches hidden per training image (and per pass in inpaint scoring)."""
        epochs: Annotated[int, at_least(0)] = 0
        """Training epochs; 0 = auto: 60, and above 64 px a side at most as many as keep one fit under
        2e9 pixel values seen (benchbox.training.auto_epochs: 28 for the 360 images of the BMAD demo)."""
        batch_size: Annotated[int, at_least(1)] = 64
        lr: Annotated[float, above(0)] = 1e-3
        weight_decay: Annotated[float, at_least(0, "a number")] = 1e-4
        score: Literal["knn", "inpaint"] = "knn"
        """knn: token distance to the nearest training token at the same position; inpaint: masked error."""
        image_score: Literal["max", "mean"] = "max"
        """How patch scores become the image score."""
        bank_limit: Annotated[int, at_least(1)] = 4096
        """At most this many training images in the knn memory bank (seeded subsample)."""
        score_rounds: Annotated[int, at_least(1)] = 2
        """inpaint scoring: fixed mask permutations (each costs V forward passes)."""
        mode: Literal["reconstruct", "classify"] = "reconstruct"
        """reconstruct: masked-patch inpainting error; classify: normal vs pseudo-anomaly classifier
        (needs a policy with --policy.role anomaly)."""

    def __init__(self, config: Config | None = None):
        super().__init__(config)
        c = self.config
        if not 0.0 < c.mask_ratio < 1.0:
            raise ValueError(f"transformer: --detector.mask-ratio must be in (0, 1), got {c.mask_ratio}")
        if c.score_rounds < 1:
            raise ValueError(f"transformer: --detector.score-rounds must be >= 1, got {c.score_rounds}")
        if c.bank_limit < 1:
            raise ValueError(f"transformer: --detector.bank-limit must be >= 1, got {c.bank_limit}")
        if c.dim % c.heads:
            raise ValueError(f"transformer: --detector.dim ({c.dim}) must be divisible by --detector.heads ({c.heads})")
        if c.mode not in ("reconstruct", "classify"):
            raise ValueError(f"transformer: --detector.mode must be reconstruct or classify, got {c.mode!r}")
        self.net: MaskedPatchViT | None = None
        self.classifier: PatchClassifier | None = None
        self.bank: torch.Tensor | None = None  # L x M x D training tokens (knn scoring)
        self.device = torch.device("cpu")
        self.size = 0
        self.channels = 0

    # -- geometry ------------------------------------------------------------------------
    def _patch(self, size: int) -> int:
        return self.config.patch_size or max(2, round(size / 7))

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        assert self.net is not None
        target = self.net.grid * self.net.patch
        pad = target - x.shape[-1]
        return F.pad(x, (0, pad, 0, pad), mode="replicate") if pad else x

    # -- training ------------------------------------------------------------------------
    def fit(self, images: torch.Tensor, ctx: FitContext, pseudo_anomalies: torch.Tensor | None = None) -> None:
        c = self.config
        if c.mode == "reconstruct" and pseudo_anomalies is not None:
            raise ValueError("transformer: pseudo-anomalies need --detector.mode classify")
        if c.mode == "classify" and (pseudo_anomalies is None or len(pseudo_anomalies) == 0):
            raise ValueError("transformer: --detector.mode classify needs pseudo-anomalies "
                             "(choose a policy with --policy.role anomaly)")
        if images.ndim != 4 or images.shape[-1] != images.shape[-2]:
            raise ValueError(f"transformer: expected N x C x S x S images, got {tuple(images.shape)}")
        self.size, self.channels = images.shape[-1], images.shape[1]
        patch = self._patch(self.size)
        grid = math.ceil(self.size / patch)
        torch.manual_seed(ctx.seed)
        self.net = MaskedPatchViT(images.shape[1], grid, patch, c.dim, c.depth, c.heads, c.mlp_ratio)
        self.device = ctx.device
        self.classifier = None
        if c.mode == "classify":
            assert pseudo_anomalies is not None
            self._fit_classifier(images, pseudo_anomalies, ctx)
            return
        n_mask = max(1, int(round(c.mask_ratio * grid * grid)))
        gen = torch.Generator(device=ctx.device).manual_seed(ctx.seed + 1)

        def loss_fn(x: torch.Tensor) -> torch.Tensor:
            net = self.net
            assert net is not None
            patches = net.patchify(self._pad(x))
            noise = torch.rand(patches.shape[:2], generator=gen, device=x.device)
            mask = noise.argsort(1).argsort(1) < n_mask  # exactly n_mask hidden per image
            pred = net(patches, mask)
            err = (pred - patches).pow(2).mean(-1)
            return (err * mask).sum() / mask.sum()

        val = ctx.val.images if ctx.val is not None and ctx.val.labels.eq(0).all() and len(ctx.val) else None
        train_epochs(
            self.net, images, loss_fn, ctx, epochs=self.epochs(images.shape, ctx), batch_size=c.batch_size, lr=c.lr,
            weight_decay=c.weight_decay, val=val, name="masked_mse",
        )
        self.bank = None
        if c.score == "knn":
            keep = images
            if len(images) > c.bank_limit:
                keep = images[torch.randperm(len(images), generator=ctx.generator(29))[: c.bank_limit]]
            self.bank = self.tokens(keep).transpose(0, 1).contiguous().to(self.device)

    def epochs(self, shape: tuple[int, ...], ctx: FitContext) -> int:
        """--detector.epochs, or for 0 the auto budget for ``shape`` (N x C x H x W)."""
        return auto_epochs(self.config.epochs, USUAL_EPOCHS, tuple(shape), ctx)

    def _fit_classifier(self, normals: torch.Tensor, pseudo: torch.Tensor, ctx: FitContext) -> None:
        if pseudo.shape[1:] != normals.shape[1:]:
            raise ValueError(f"transformer: pseudo-anomalies of shape {tuple(pseudo.shape[1:])} "
                             f"do not match images of shape {tuple(normals.shape[1:])}")
        c = self.config
        assert self.net is not None
        self.classifier = PatchClassifier(self.net, c.dim)
        x = torch.cat([normals, pseudo.clamp(0, 1)])
        y = torch.cat([torch.zeros(len(normals)), torch.ones(len(pseudo))])
        pos_weight = torch.tensor(len(normals) / len(pseudo), device=ctx.device)
        clf = self.classifier

        def loss_fn(idx: torch.Tensor) -> torch.Tensor:
            i = idx.cpu()
            logits = clf(self._pad(x[i].to(ctx.device)))
            return F.binary_cross_entropy_with_logits(logits, y[i].to(ctx.device), pos_weight=pos_weight)

        train_epochs(clf, torch.arange(len(x)), loss_fn, ctx, epochs=self.epochs(x.shape, ctx), batch_size=c.batch_size, lr=c.lr,
                     weight_decay=c.weight_decay, name="bce")

    # -- scoring -------------------------------------------------------------------------
    def _score_masks(self) -> torch.Tensor:
        """M x L bool masks (True = hidden): V complementary masks per round, fixed seed."""
        assert self.net is not None
        n = self.net.grid**2
        views = max(2, round(1.0 / (1.0 - self.config.mask_ratio)))
        gen = torch.Generator().manual_seed(12345)
        masks = []
        for _ in range(self.config.score_rounds):
            block = torch.empty(n, dtype=torch.long)
            block[torch.randperm(n, generator=gen)] = torch.arange(n) % views
            masks += [block != v for v in range(views)]
        return torch.stack(masks)

    @torch.no_grad()
    def tokens(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """N x L x D encoder output tokens of the unmasked images (CPU)."""
        assert self.net is not None
        net = self.net.eval()
        out = []
        for start in range(0, len(images), batch_size):
            patches = net.patchify(self._pad(images[start : start + batch_size].to(self.device)))
            out.append(net.norm(net.encoder(net.embed(patches) + net.pos)).cpu())
        return torch.cat(out)

    @torch.no_grad()
    def patch_distances(self, images: torch.Tensor) -> torch.Tensor:
        """N x L distance of every patch token to the nearest training token at its position."""
        assert self.bank is not None
        n_pos, n_bank, _ = self.bank.shape
        chunk = max(1, int(3e7 // (n_pos * n_bank)))  # bounds the L x chunk x M distance tensor
        out = []
        for start in range(0, len(images), chunk):
            tok = self.tokens(images[start : start + chunk]).to(self.device).transpose(0, 1)  # L x n x D
            out.append(torch.cdist(tok, self.bank).min(-1).values.transpose(0, 1).cpu())
        return torch.cat(out)

    @torch.no_grad()
    def patch_errors(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """N x L mean inpainting error of every patch over the passes in which it was hidden."""
        if self.net is None:
            raise RuntimeError("transformer: call fit() before score()")
        net = self.net.eval()
        masks = self._score_masks().to(self.device)
        hidden = masks.sum(0).clamp(min=1)
        out = []
        for start in range(0, len(images), batch_size):
            patches = net.patchify(self._pad(images[start : start + batch_size].to(self.device)))
            err = torch.zeros(patches.shape[:2], device=self.device)
            for mask in masks:
                m = mask.expand(len(patches), -1)
                err += (net(patches, m) - patches).pow(2).mean(-1) * m
            out.append((err / hidden).cpu())
        return torch.cat(out)

    def score(self, images: torch.Tensor) -> Scores:
        if self.net is None and self.classifier is None:
            raise RuntimeError("transformer: call fit() before score()")
        if images.ndim != 4 or images.shape[-1] != self.size:
            raise ValueError(f"transformer: fitted on N x C x {self.size} x {self.size} images, "
                             f"got shape {tuple(images.shape)}")
        if images.shape[1] != self.channels:
            raise ValueError(f"transformer: fitted on {self.channels}-channel images, got {images.shape[1]} channels")
        if len(images) == 0:
            return Scores(image=torch.empty(0), maps=torch.empty(0, self.size, self.size))
        if self.classifier is not None:
            clf = self.classifier.eval()
            with torch.no_grad():
                logits = [clf(self._pad(images[i : i + 256].to(self.device))).float().cpu()
                          for i in range(0, len(images), 256)]
            return Scores(image=torch.cat(logits) if logits else torch.empty(0))
        if self.net is None:
            raise RuntimeError("transformer: call fit() before score()")
        err = self.patch_distances(images) if self.bank is not None else self.patch_errors(images)
        image_scores = err.amax(1) if self.config.image_score == "max" else err.mean(1)
        assert self.net is not None
        g = self.net.grid
        maps = F.interpolate(err.view(-1, 1, g, g), size=(g * self.net.patch,) * 2, mode="bilinear", align_corners=False)
        maps = maps[:, 0, : self.size, : self.size].contiguous()
        return Scores(image=image_scores.float(), maps=maps.float())
