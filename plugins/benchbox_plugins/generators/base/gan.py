"""GAN building blocks shared by the dcgan and triplegan generators and the fanogan detector.

Networks (all built from the image size, 8..256 px, 1 or 3 channels; the stage sizes are the
shared backbone's ``stage_sizes``, so 28 px runs 4 -> 7 -> 14 -> 28 and comes back exactly):

* :class:`GanGenerator` -- G(z, y): a linear layer to a 4 px map, then one 2x up-stage per
  size step. ``arch="dcgan"``: transposed convolutions with batch norm and ReLU (Radford et al.,
  2016; kernel 4, or 3 where the step is odd; their N(0, 0.02) initialisation); ``arch="improved"``: residual up-blocks (BN-ReLU-
  upsample-conv3-BN-ReLU-conv3 plus a 1x1 shortcut). The output is a sigmoid, so images are in
  [0, 1]. A conditional G reads a class vector ``y`` (one-hot, or soft) concatenated to ``z``.
* :class:`GanDiscriminator` -- D(x, y) returning ``(logit, features)``. ``arch="dcgan"``:
  strided convolutions with leaky ReLU (batch norm after the first, unless spectral norm is on),
  features = the flattened last map; ``arch="improved"``: a stem conv and residual down-blocks
  of two 3x3 convolutions each, then global average pooling. A conditional D is a projection
  discriminator (Miyato & Koyama, 2018): ``logit = w.f(x) + <embed(y), f(x)>``, so its features
  do not depend on the label. ``spectral_norm=True`` wraps every conv/linear layer of D with
  ``torch.nn.utils.spectral_norm`` (hook form: it keeps ``weight_orig`` and pickles, which the
  grid's stage cache needs).
* Losses: the non-saturating GAN losses and feature matching (Salimans et al., 2016).

:class:`GanBase` is the Generator plugin base the GANs share: label handling, the alternating
training loop (each algorithm supplies ``train_step``), batch-norm recalibration of G, the
encoder that inverts G after GAN training (f-AnoGAN's izi_f: ``x -> E -> z -> G -> x'``, loss
``MSE(x', x) + kappa * MSE(f_D(x'), f_D(x))``), ``encode``/``decode`` and the residuals fanogan
scores with. A conditional model's public latent is ``[z, y]`` (``latent_dim + n_classes``
numbers): ``encode`` appends the one-hot of the predicted class, ``decode`` reads the class
vector back, so the latent policies work on conditional models unchanged.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from benchbox.errors import ConfigError, DataError, TrainingDiverged
from benchbox.interfaces import FitContext, Generator
from benchbox.options import Check, above, at_least
from benchbox.training import auto_epochs, batched, train_epochs
from benchbox_plugins.generators.base.backbone import Encoder, check_square, stage_sizes

ARCHS = ("dcgan", "improved")


def stage_channels(n_stages: int, base: int, cap: int = 256) -> list[int]:
    """DCGAN widths, largest map first: ``base`` channels doubling per stage, capped at ``cap``."""
    return [min(base * 2**i, cap) for i in range(n_stages)]


def _kernel(size: int) -> int:
    """Kernel of a stride-2, padding-1 stage between ``size`` and ``ceil(size / 2)`` (both ways)."""
    return 4 if size % 2 == 0 else 3


def dcgan_init(net: nn.Module) -> nn.Module:
    """Radford et al.'s initialisation: conv/linear weights ~ N(0, 0.02), BN scales ~ N(1, 0.02)."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return net


def _upsample(x: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(x, size=(size, size), mode="nearest")


def _downsample(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 2, ceil_mode=True)  # S -> ceil(S / 2), matching stage_sizes


# --------------------------------------------------------------------------------- generator


class ResUp(nn.Module):
    """Residual up-block of the improved generator: BN-ReLU-up-conv3-BN-ReLU-conv3 + up-conv1x1."""

    def __init__(self, c_in: int, c_out: int, size: int):
        super().__init__()
        self.size = size
        self.bn1, self.conv1 = nn.BatchNorm2d(c_in), nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.bn2, self.conv2 = nn.BatchNorm2d(c_out), nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.skip = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(_upsample(F.relu(self.bn1(x)), self.size))
        h = self.conv2(F.relu(self.bn2(h)))
        return h + self.skip(_upsample(x, self.size))


class GanGenerator(nn.Module):
    """G(z, y): ``N x latent_dim`` (+ ``N x n_classes``) -> ``N x C x S x S`` images in [0, 1]."""

    def __init__(self, channels: int, size: int, latent_dim: int, base: int, n_classes: int = 0,
                 arch: str = "dcgan"):
        super().__init__()
        sizes = stage_sizes(size)[::-1]  # smallest first: 28 px -> [4, 7, 14, 28]
        n = len(sizes) - 1
        chans = stage_channels(n, base)[::-1]  # deepest first
        self.latent_dim, self.n_classes, self.s0, self.c0 = latent_dim, n_classes, sizes[0], chans[0]
        self.fc = nn.Linear(latent_dim + n_classes, self.c0 * self.s0**2)
        layers: list[nn.Module] = []
        if arch == "dcgan":
            layers += [nn.BatchNorm2d(self.c0), nn.ReLU(inplace=True)]
            for i in range(n):
                last = i == n - 1
                c_out = channels if last else chans[i + 1]
                layers.append(nn.ConvTranspose2d(chans[i], c_out, _kernel(sizes[i + 1]), 2, 1))
                if not last:
                    layers += [nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        else:
            for i in range(n):
                layers.append(ResUp(chans[i], chans[min(i + 1, n - 1)], sizes[i + 1]))
            layers += [nn.BatchNorm2d(chans[-1]), nn.ReLU(inplace=True), nn.Conv2d(chans[-1], channels, 3, 1, 1)]
        self.body = nn.Sequential(*layers)
        if arch == "dcgan":
            dcgan_init(self)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = z if y is None else torch.cat([z, y], 1)
        return torch.sigmoid(self.body(self.fc(h).view(-1, self.c0, self.s0, self.s0)))


# ----------------------------------------------------------------------------- discriminator


class ResDown(nn.Module):
    """Residual down-block of the improved discriminator: two LReLU-conv3, then 2x average pool."""

    def __init__(self, c_in: int, c_out: int, first: bool):
        super().__init__()
        self.first = first  # the first block sees raw pixels: no activation before its conv
        self.conv1, self.conv2 = nn.Conv2d(c_in, c_out, 3, 1, 1), nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.skip = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x if self.first else F.leaky_relu(x, 0.2))
        h = self.conv2(F.leaky_relu(h, 0.2))
        return _downsample(h) + self.skip(_downsample(x))


class GlobalAvgPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3))


class GanDiscriminator(nn.Module):
    """D(x, y) -> (``N`` logits, ``N x F`` features); ``y`` is a class vector for a conditional D."""

    def __init__(self, channels: int, size: int, base: int, n_classes: int = 0, arch: str = "dcgan",
                 spectral_norm: bool = False):
        super().__init__()
        sizes = stage_sizes(size)
        n = len(sizes) - 1
        chans = stage_channels(n, base)
        layers: list[nn.Module] = []
        c_in = channels
        if arch == "dcgan":
            for i in range(n):
                layers.append(nn.Conv2d(c_in, chans[i], _kernel(sizes[i]), 2, 1))
                if i > 0 and not spectral_norm:
                    layers.append(nn.BatchNorm2d(chans[i]))
                layers.append(nn.LeakyReLU(0.2, inplace=True))
                c_in = chans[i]
            layers.append(nn.Flatten())
            self.feature_dim = c_in * sizes[-1] ** 2
        else:
            for i in range(n):
                layers.append(ResDown(c_in, chans[i], first=i == 0))
                c_in = chans[i]
            # one more block at the lowest resolution (deeper), then global average pooling
            layers += [nn.LeakyReLU(0.2), nn.Conv2d(c_in, c_in, 3, 1, 1), nn.LeakyReLU(0.2),
                       GlobalAvgPool()]
            self.feature_dim = c_in
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Linear(self.feature_dim, 1)
        self.embed = nn.Linear(n_classes, self.feature_dim, bias=False) if n_classes else None
        if arch == "dcgan":
            dcgan_init(self)
        if spectral_norm:
            for module in list(self.modules()):
                if isinstance(module, (nn.Conv2d, nn.Linear)):
                    nn.utils.spectral_norm(module)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)

    def logit(self, features: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        out = self.head(features).squeeze(1)
        if self.embed is not None:
            if y is None:
                raise ValueError("conditional discriminator: a class vector y is required")
            out = out + (self.embed(y) * features).sum(1)
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return self.logit(f, y), f


# ------------------------------------------------------------------------------------- losses


def discriminator_loss(real_logit: torch.Tensor, fake_logit: torch.Tensor) -> torch.Tensor:
    """-log D(x) - log(1 - D(G(z))) with D = sigmoid(logit)."""
    return F.softplus(-real_logit).mean() + F.softplus(fake_logit).mean()


def generator_loss(fake_logit: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss -log D(G(z))."""
    return F.softplus(-fake_logit).mean()


def feature_matching_loss(real_features: torch.Tensor, fake_features: torch.Tensor) -> torch.Tensor:
    """Squared distance of the batch means of D's features, per feature (Salimans et al., 2016)."""
    return (real_features.mean(0) - fake_features.mean(0)).pow(2).mean()


@torch.no_grad()
def recalibrate_batchnorm(net: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor | None]]) -> None:
    """Replace the running statistics of every BatchNorm in ``net`` by their plain average over
    ``batches`` (inputs to ``net``) -- G's eval-mode output then matches its final weights."""
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    net.train()
    for args in batches:
        net(*args)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    net.eval()


# ---------------------------------------------------------------------------- the plugin base


USUAL_EPOCHS, USUAL_ENCODER_EPOCHS = 200, 100
"""--generator.epochs / --generator.encoder-epochs 0 (auto) up to 64 px a side."""


@dataclass
class GanConfig:
    latent_dim: Annotated[int, at_least(1)] = 64
    """Size of the noise vector z (a conditional model's latent adds one number per class)."""
    arch: Literal["dcgan", "improved"] = "dcgan"
    """dcgan: transposed-conv G, strided-conv D; improved: residual G blocks, deeper D with global average pooling."""
    base_channels: Annotated[int, at_least(1)] = 32
    """Channels of the first D stage / last G stage (doubling per stage, capped at 256); also the width of the
    encoder E (and triplegan's classifier C), the lean backbone's Encoder (base/backbone.py)."""
    spectral_norm: bool = False
    """Spectral normalisation of every D layer (and no batch norm in D)."""
    feature_matching: bool = False
    """G matches the batch mean of D's features on real images instead of fooling D."""
    epochs: Annotated[int, at_least(0)] = 0
    """GAN training epochs (one D and one G update per batch); 0 = auto: 200, and above 64 px a side at most
    as many as keep the GAN stage under 2e9 pixel values seen (benchbox.training.auto_epochs)."""
    batch_size: Annotated[int, at_least(1)] = 64
    lr: Annotated[float, above(0)] = 1e-3
    """Adam learning rate of G (and of Triple-GAN's classifier)."""
    d_lr: Annotated[float, above(0)] = 2e-4
    """Adam learning rate of D. G learns faster than D by default: at these small widths a DCGAN D
    trained at G's rate wins within a few hundred steps on MNIST (D(G(z)) -> 0.002, G collapses)."""
    beta1: Annotated[float, Check(lambda v: 0 <= v < 1, "a number in [0, 1)")] = 0.5
    """Adam beta1 of the GAN players (DCGAN: 0.5)."""
    encoder_epochs: Annotated[int, at_least(0)] = 0
    """Epochs of the encoder E trained after the GAN to invert G (izi_f); 0 = auto: 100, capped like --epochs."""
    encoder_lr: Annotated[float, above(0)] = 1e-3
    kappa: float = 1.0
    """Weight of the discriminator-feature residual (encoder loss and fanogan score)."""


class GanBase(Generator):
    """Base of the GAN generators (not registered itself); see the module docstring."""

    name: ClassVar[str] = "gan"
    encoder_learns_class: ClassVar[bool] = True  # conditional: E predicts the class (else class_logits does)

    def __init__(self, config=None):
        super().__init__(config)
        c = self.config
        for opt in ("latent_dim", "base_channels", "batch_size"):
            if getattr(c, opt) < 1:
                self._bad(opt, "must be >= 1", getattr(c, opt))
        for opt in ("epochs", "encoder_epochs"):
            if getattr(c, opt) < 0:
                self._bad(opt, "must be >= 0 (0: auto)", getattr(c, opt))
        for opt in ("lr", "d_lr", "encoder_lr"):
            if not getattr(c, opt) > 0:
                self._bad(opt, "must be > 0", getattr(c, opt))
        if not 0.0 <= c.beta1 < 1.0:
            self._bad("beta1", "must be in [0, 1)", c.beta1)
        if not c.kappa >= 0:
            self._bad("kappa", "must be >= 0", c.kappa)
        if c.arch not in ARCHS:
            self._bad("arch", f"must be one of {', '.join(ARCHS)}", repr(c.arch))
        self.G: GanGenerator | None = None
        self.D: GanDiscriminator | None = None
        self.E: Encoder | None = None
        self.classes: list[int] = []
        self.class_prior: torch.Tensor | None = None
        self.device = torch.device("cpu")
        self.shape: tuple[int, int, int] | None = None

    def _bad(self, option: str, expected: str, got) -> None:
        raise ConfigError(f"{self.name}: --generator.{option.replace('_', '-')} {expected}, got {got}")

    # ---- what a concrete GAN defines

    @property
    def conditional(self) -> bool:
        return False

    def build_extra(self, channels: int, size: int) -> None:
        """Networks besides G, D and E (Triple-GAN's classifier)."""

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        betas = (self.config.beta1, 0.999)
        return {"g": torch.optim.Adam(self.G.parameters(), lr=self.config.lr, betas=betas),
                "d": torch.optim.Adam(self.D.parameters(), lr=self.config.d_lr, betas=betas)}

    def train_step(self, x: torch.Tensor, y: torch.Tensor | None, prior, opts, progress: float) -> dict[str, torch.Tensor]:
        """One update of every player on a real batch ``x`` (class indices ``y``, -1 = unknown, or
        None); ``prior(n)`` draws ``(z, class vectors or None)`` on the device; ``progress`` is the
        share of GAN training done. Returns the batch statistics to log."""
        raise NotImplementedError

    def class_logits(self, x: torch.Tensor, encoder_out: torch.Tensor) -> torch.Tensor:
        """Class logits of real images (conditional models): by default the encoder's class head."""
        return encoder_out[:, self.config.latent_dim:]

    # ---- shapes and labels

    @property
    def n_classes(self) -> int:
        return len(self.classes) if self.conditional else 0

    @property
    def latent_dim(self) -> int:
        if not self.conditional:
            return self.config.latent_dim
        if not self.classes:
            raise RuntimeError(f"{self.name}: a conditional model's latent size (z + one number per class) "
                               "is known after fit()")
        return self.config.latent_dim + len(self.classes)

    def onehot(self, y: torch.Tensor) -> torch.Tensor:
        return F.one_hot(y, self.n_classes).float()

    def _class_indices(self, n: int, labels: torch.Tensor | None) -> torch.Tensor | None:
        """Class ids -> indices into ``self.classes`` (sets the classes and their prior)."""
        if not self.conditional:
            return None
        if labels is None:  # the one-class protocol: every training image is one class
            labels = torch.zeros(n, dtype=torch.int64)
        if (not isinstance(labels, torch.Tensor) or labels.ndim != 1 or len(labels) != n
                or labels.dtype.is_floating_point or labels.dtype == torch.bool or (n and labels.min() < 0)):
            got = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
            raise DataError(f"{self.name}: labels must be {n} non-negative integer class ids (one per image), got {got}")
        classes, idx, counts = labels.long().unique(sorted=True, return_inverse=True, return_counts=True)
        self.classes = classes.tolist()
        self.class_prior = counts.float() / counts.sum()
        return idx

    def class_index(self, labels: torch.Tensor) -> torch.Tensor:
        """Class ids seen in training -> indices, or one line naming the unknown id."""
        lookup = {c: i for i, c in enumerate(self.classes)}
        bad = [int(v) for v in labels.flatten().tolist() if int(v) not in lookup]
        if bad:
            raise DataError(f"{self.name}: label {bad[0]} is not a class of the training data "
                            f"(classes: {', '.join(map(str, self.classes))})")
        return torch.tensor([lookup[int(v)] for v in labels.flatten().tolist()], dtype=torch.int64)

    # ---- fitting

    def fit(self, train: torch.Tensor, ctx: FitContext, labels: torch.Tensor | None = None) -> None:
        """Train the GAN on ``train`` (class ``labels`` for conditional models; None = one class),
        then the encoder that inverts it."""
        y_idx = self.fit_gan(train, ctx, labels)
        self.fit_encoder(train, ctx, y_idx)

    def fit_gan(self, train: torch.Tensor, ctx: FitContext, labels: torch.Tensor | None = None) -> torch.Tensor | None:
        """The GAN stage alone (also what a generation-quality benchmark needs); returns the class indices."""
        channels, size = check_square(train, self.name)
        y_idx = self._class_indices(len(train), labels)
        c = self.config
        torch.manual_seed(ctx.seed)
        self.device, self.shape = ctx.device, (channels, size, size)
        k = self.n_classes
        self.G = GanGenerator(channels, size, c.latent_dim, c.base_channels, k, c.arch).to(ctx.device)
        self.D = GanDiscriminator(channels, size, c.base_channels, k, c.arch, c.spectral_norm).to(ctx.device)
        self.E = Encoder(channels, size, c.latent_dim + (k if self.encoder_learns_class else 0),
                         c.base_channels).to(ctx.device)
        self.build_extra(channels, size)
        y_idx = self.prepare_labels(y_idx, ctx)
        opts = self.optimizers()
        order_gen, noise_gen = ctx.generator(offset=17), ctx.generator(offset=29)

        def prior(n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
            return self.prior_batch(n, noise_gen)

        bs = max(1, min(c.batch_size, len(train)))
        epochs, encoder_epochs = self.epochs(tuple(train.shape), ctx, note="epochs")
        total = epochs + encoder_epochs
        last: dict[str, float] = {}
        for epoch in range(epochs):
            for net in self.players():
                net.train()
            order = torch.randperm(len(train), generator=order_gen)
            sums: dict[str, float] = {}
            batches = 0
            for start in range(0, len(train), bs):
                idx = order[start : start + bs]
                x = train[idx].to(ctx.device, non_blocking=True)
                y = y_idx[idx].to(ctx.device) if y_idx is not None else None
                stats = {k_: float(v.detach()) for k_, v in
                         self.train_step(x, y, prior, opts, (epoch + start / len(train)) / epochs).items()}
                bad = [k_ for k_, v in stats.items() if not math.isfinite(v)]
                if bad:
                    raise TrainingDiverged(
                        f"{ctx.stage or self.name}: {bad[0]} became {stats[bad[0]]} in GAN epoch {epoch + 1}; last "
                        f"finite {bad[0]} {last.get(bad[0], 'none')} -- lower --generator.lr or turn on "
                        "--generator.spectral-norm")
                last.update(stats)
                for k_, v in stats.items():
                    sums[k_] = sums.get(k_, 0.0) + v
                batches += 1
            for k_, v in sums.items():
                ctx.curves.log(f"train/{k_}", epoch + 1, v / batches)
            ctx.progress(epoch + 1, total)
        recalibrate_batchnorm(self.G, [self.prior_batch(bs, noise_gen) for _ in range(20)])
        for net in self.players():
            net.eval().requires_grad_(False)  # frozen from here on: the encoder inverts a fixed G
        return y_idx

    def prepare_labels(self, y_idx: torch.Tensor | None, ctx: FitContext) -> torch.Tensor | None:
        """Hook: which labels the training sees (Triple-GAN hides some); default all."""
        return y_idx

    def players(self) -> list[nn.Module]:
        return [self.G, self.D]

    def prior_batch(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(z, y) drawn from the prior on the device: z ~ N(0, I), classes ~ the training frequencies."""
        w = self.sample_latents(n, gen).to(self.device)
        d = self.config.latent_dim
        return w[:, :d], (w[:, d:] if self.conditional else None)

    def sample_latents(self, n: int, seed: int | torch.Generator = 0) -> torch.Tensor:
        """``n`` latents from the prior (CPU): z ~ N(0, I), plus the one-hot of a class drawn from the
        training class frequencies for conditional models. ``decode`` of them samples the GAN."""
        gen = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.config.latent_dim, generator=gen)
        if not self.conditional:
            return z
        y = torch.multinomial(self.class_prior, n, replacement=True, generator=gen)
        return torch.cat([z, self.onehot(y)], 1)

    def conditional_latents(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``[z, one-hot(label)]`` for class ids seen in training (a conditional model's latent)."""
        if not self.conditional:
            raise ConfigError(f"{self.name}: labels need a conditional model (--generator.conditional)")
        self._fitted()
        if z.ndim != 2 or z.shape[1] != self.config.latent_dim or len(labels) != len(z):
            raise DataError(f"{self.name}: expected N x {self.config.latent_dim} noise and N labels, "
                            f"got {tuple(z.shape)} and {len(labels)} labels")
        return torch.cat([z.float(), self.onehot(self.class_index(labels))], 1)

    def epochs(self, shape: tuple[int, ...], ctx: FitContext | None = None, note: str = "") -> tuple[int, int]:
        """(GAN epochs, encoder epochs) for a training set of ``shape``: the options, or the auto budgets for 0;
        with ``ctx``, the auto budget of the ``note`` option is noted there."""
        c = self.config
        return (auto_epochs(c.epochs, USUAL_EPOCHS, shape, ctx if note == "epochs" else None),
                auto_epochs(c.encoder_epochs, USUAL_ENCODER_EPOCHS, shape, ctx if note == "encoder_epochs" else None,
                            "encoder_epochs"))

    def fit_encoder(self, train: torch.Tensor, ctx: FitContext, y_idx: torch.Tensor | None) -> None:
        """izi_f: E is trained with G and D fixed on MSE(G(E(x)), x) + kappa MSE(f(G(E(x))), f(x))."""
        c = self.config

        def loss_fn(idx: torch.Tensor) -> torch.Tensor:
            idx = idx.cpu()
            x = train[idx].to(ctx.device, non_blocking=True)
            return self.encoder_loss(x, y_idx[idx].to(ctx.device) if y_idx is not None else None)

        epochs, encoder_epochs = self.epochs(tuple(train.shape), ctx, note="encoder_epochs")

        def progress(done: float, total: float | None = None) -> None:
            ctx.progress(epochs + done, epochs + encoder_epochs)

        train_epochs(self.E, torch.arange(len(train)), loss_fn, dataclasses.replace(ctx, progress=progress),
                     epochs=encoder_epochs, batch_size=c.batch_size, lr=c.encoder_lr, name="encoder_loss")

    def encoder_loss(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        d = self.config.latent_dim
        out = self.E(x)
        y_vec, class_loss = None, x.new_zeros(())
        if self.conditional:
            logits = self.class_logits(x, out)
            known = y >= 0
            if self.encoder_learns_class and bool(known.any()):
                class_loss = F.cross_entropy(logits[known], y[known])
            # G is fed the true class where it is known (the encoder's class head learns it alongside)
            y_vec = self.onehot(torch.where(known, y, logits.argmax(1)).detach())
        x_hat = self.G(out[:, :d], y_vec)
        return (F.mse_loss(x_hat, x) + self.config.kappa * F.mse_loss(self.D.features(x_hat), self.D.features(x))
                + class_loss)

    # ---- inference

    def _fitted(self) -> None:
        if self.G is None or self.E is None or self.D is None:
            raise RuntimeError(f"{self.name}: call fit() before encode()/decode()")
        for net in self.players():
            net.eval()
        self.E.eval()

    def _check_images(self, images: torch.Tensor) -> None:
        if tuple(images.shape[1:]) != self.shape or images.ndim != 4:
            raise DataError(f"{self.name}: fitted on images of shape {self.shape}, got {tuple(images.shape[1:])}")

    def _latent(self, x: torch.Tensor) -> torch.Tensor:
        out = self.E(x)
        z = out[:, : self.config.latent_dim]
        if not self.conditional:
            return z
        return torch.cat([z, self.onehot(self.class_logits(x, out).argmax(1))], 1)

    def _decode(self, w: torch.Tensor) -> torch.Tensor:
        d = self.config.latent_dim
        return self.G(w[:, :d], w[:, d:] if self.conditional else None)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        self._fitted()
        self._check_images(images)
        return batched(self._latent, images.float(), self.device)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        self._fitted()
        if latents.ndim != 2 or latents.shape[1] != self.latent_dim:
            raise DataError(f"{self.name}: expected N x {self.latent_dim} latents, got shape {tuple(latents.shape)}")
        return batched(self._decode, latents.float(), self.device)

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """G(E(x)) (CPU, same shape as ``images``)."""
        self._fitted()
        self._check_images(images)
        return batched(lambda x: self._decode(self._latent(x)), images.float(), self.device)

    def residuals(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """f-AnoGAN's residuals of x against G(E(x)): the per-pixel map ``|x - x'|`` (mean over
        channels, ``N x H x W``), the image residual ``mean (x - x')^2`` and the discriminator-feature
        residual ``mean (f(x) - f(x'))^2`` (both ``N``)."""
        self._fitted()
        self._check_images(images)

        def terms(x: torch.Tensor) -> torch.Tensor:
            x_hat = self._decode(self._latent(x))
            diff = x - x_hat
            feat = (self.D.features(x) - self.D.features(x_hat)).pow(2).mean(1)
            pix = diff.pow(2).flatten(1).mean(1)
            return torch.cat([diff.abs().mean(1).flatten(1), pix[:, None], feat[:, None]], 1)

        out = batched(terms, images.float(), self.device)
        h, w = images.shape[-2:]
        return out[:, : h * w].view(-1, h, w), out[:, h * w], out[:, h * w + 1]
