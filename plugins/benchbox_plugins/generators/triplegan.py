"""Triple-GAN generator (Li et al., 2017): generator, classifier and discriminator trained jointly.

Three players on the networks of ``base/gan.py`` plus a conv classifier C (the lean backbone's
``Encoder``, ``base/backbone.py``, with one output per class):

* D judges (image, class) pairs (a projection discriminator): real labelled pairs (x, y) are
  "real"; pseudo-labelled pairs (x, p_C(y|x)) and generated pairs (G(z, y), y) are "fake",
  weighted ``alpha`` and ``1 - alpha``.
* G is conditional on the class and tries to make D call its pairs real.
* C labels real images: cross-entropy on the labelled ones, an adversarial term (its
  pseudo-labelled pairs should look real to D), and from ``--generator.pseudo-from`` of the
  training on, the pseudo-discriminative loss ``alpha_p * CE(C(G(z, y)), y)`` -- C learns from
  G's samples, and C's labels shape what D accepts, so the classifier regularises the generator.

``--generator.labeled-fraction`` below 1 hides the other labels (semi-supervised, the paper's
setting); hidden images enter only through C's pseudo-labels. Without labels at all (the
one-class protocol) every image is one class: it runs, but C has nothing to learn.

Like ``dcgan``, the latent is ``[z, one-hot class]`` and ``encode`` is an encoder trained after
the GAN to invert G; the class half of ``encode`` comes from C.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from benchbox.interfaces import FitContext
from benchbox.training import batched
from benchbox_plugins.generators.base.backbone import Encoder
from benchbox_plugins.generators.base.gan import GanBase, GanConfig, feature_matching_loss
from benchbox_plugins.generators.dcgan import step


@dataclass
class TripleGANConfig(GanConfig):
    alpha: float = 0.5
    """Share of D's "fake" side given to C's pseudo-labelled pairs (the rest to G's pairs)."""
    alpha_p: float = 0.1
    """Weight of the pseudo-discriminative loss CE(C(G(z, y)), y)."""
    pseudo_from: float = 0.5
    """Share of GAN training after which the pseudo-discriminative loss is on (G is poor early)."""
    labeled_fraction: float = 1.0
    """Share of the training labels used (seeded choice); the other images count as unlabelled."""


class TripleGAN(GanBase):
    """Triple-GAN: class-conditional G, classifier C and pair discriminator D, + izi_f encoder."""

    name = "triplegan"
    encoder_learns_class = False  # the class of encode(x) is C's

    @dataclass
    class Config(TripleGANConfig):
        pass

    def __init__(self, config=None):
        super().__init__(config)
        c = self.config
        if not 0.0 <= c.alpha <= 1.0:
            self._bad("alpha", "must be in [0, 1]", c.alpha)
        if not c.alpha_p >= 0:
            self._bad("alpha_p", "must be >= 0", c.alpha_p)
        if not 0.0 <= c.pseudo_from <= 1.0:
            self._bad("pseudo_from", "must be in [0, 1]", c.pseudo_from)
        if not 0.0 < c.labeled_fraction <= 1.0:
            self._bad("labeled_fraction", "must be in (0, 1]", c.labeled_fraction)
        self.C: Encoder | None = None

    @property
    def conditional(self) -> bool:
        return True

    def build_extra(self, channels: int, size: int) -> None:
        self.C = Encoder(channels, size, self.n_classes, self.config.base_channels).to(self.device)

    def players(self):
        return [self.G, self.D, self.C]

    def optimizers(self):
        opts = super().optimizers()
        opts["c"] = torch.optim.Adam(self.C.parameters(), lr=self.config.lr, betas=(self.config.beta1, 0.999))
        return opts

    def prepare_labels(self, y_idx: torch.Tensor | None, ctx: FitContext) -> torch.Tensor | None:
        frac = self.config.labeled_fraction
        if y_idx is None or frac >= 1.0:
            return y_idx
        n_keep = max(1, round(frac * len(y_idx)))
        hidden = torch.randperm(len(y_idx), generator=ctx.generator(offset=41))[n_keep:]
        y_idx = y_idx.clone()
        y_idx[hidden] = -1
        return y_idx

    def class_logits(self, x: torch.Tensor, encoder_out: torch.Tensor) -> torch.Tensor:
        return self.C(x)

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """C's class id (as in the training labels) for each image."""
        self._fitted()
        self._check_images(images)
        idx = batched(lambda x: self.C(x).argmax(1), images.float(), self.device).long()
        return torch.tensor(self.classes, dtype=torch.int64)[idx]

    def train_step(self, x, y, prior, opts, progress):
        c = self.config
        known = y >= 0
        y_real = self.onehot(y[known])
        z, y_fake = prior(len(x))
        fake = self.G(z, y_fake)
        logits_c = self.C(x)
        p_c = logits_c.softmax(1)
        # D: real labelled pairs vs pseudo-labelled pairs (alpha) and generated pairs (1 - alpha)
        features = self.D.features(x)
        real_logit = self.D.logit(features[known], y_real) if bool(known.any()) else None
        cla_logit = self.D.logit(features, p_c.detach())
        fake_logit = self.D(fake.detach(), y_fake)[0]
        loss_d = (c.alpha * F.softplus(cla_logit).mean() + (1 - c.alpha) * F.softplus(fake_logit).mean()
                  + (F.softplus(-real_logit).mean() if real_logit is not None else 0.0))
        step(opts["d"], loss_d)
        # G: its pairs should look real
        fake_logit, fake_features = self.D(fake, y_fake)
        loss_g = (1 - c.alpha) * F.softplus(-fake_logit).mean()
        if c.feature_matching:
            loss_g = loss_g + feature_matching_loss(features.detach(), fake_features)
        step(opts["g"], loss_g)
        # C: labelled cross-entropy + its pairs should look real + (later) learn from G's samples
        loss_c = c.alpha * F.softplus(-self.D(x, p_c)[0]).mean()
        if bool(known.any()):
            loss_c = loss_c + F.cross_entropy(logits_c[known], y[known])
        if c.alpha_p > 0 and progress >= c.pseudo_from:
            loss_c = loss_c + c.alpha_p * F.cross_entropy(self.C(fake.detach()), y_fake.argmax(1))
        step(opts["c"], loss_c)
        acc = (logits_c[known].argmax(1) == y[known]).float().mean() if bool(known.any()) else x.new_zeros(())
        return {"d_loss": loss_d, "g_loss": loss_g, "c_loss": loss_c, "c_train_acc": acc}
