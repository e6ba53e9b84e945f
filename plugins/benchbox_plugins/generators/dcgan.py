"""DCGAN generator (Radford et al., 2016) with an encoder that inverts it (f-AnoGAN's izi_f).

Options on one model (networks and the shared loop in ``common/gan.py``):

* ``--generator.spectral-norm`` -- spectral normalisation of D (Miyato et al., 2018);
* ``--generator.feature-matching`` -- G matches D's mean features on real data (Salimans et al.,
  2016); a conditional G keeps its adversarial term too, the only one that sees the label;
* ``--generator.conditional`` -- class-conditional G (class vector concatenated to z) and a
  projection D. Labels come through ``fit(train, ctx, labels=...)``; without labels (the
  one-class protocol hands the generator normal images only) every image is one class, which
  is a working but degenerate cGAN. The latent is then ``[z, one-hot class]``;
* ``--generator.arch improved`` -- residual G blocks, deeper D with global average pooling.

``decode(z)`` is G(z) (sigmoid output, the training size); ``encode(x)`` is the encoder trained
after the GAN, with G and D frozen, on ``MSE(G(E(x)), x) + kappa * MSE(f_D(G(E(x))), f_D(x))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from benchbox_plugins.generators.base.gan import (GanBase, GanConfig, discriminator_loss, feature_matching_loss,
                                         generator_loss)


@dataclass
class DCGANConfig(GanConfig):
    conditional: bool = False
    """Class-conditional G and D (labels passed to fit; none = a single class)."""


def step(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


class DCGAN(GanBase):
    """DCGAN (options: spectral norm, feature matching, conditional, improved arch) + izi_f encoder."""

    name = "dcgan"

    @dataclass
    class Config(DCGANConfig):
        pass

    @property
    def conditional(self) -> bool:
        return self.config.conditional

    def generator_objective(self, real_features: torch.Tensor, fake_logit: torch.Tensor,
                            fake_features: torch.Tensor) -> torch.Tensor:
        """G's loss for one batch: non-saturating, or feature matching (plus the adversarial term
        when the model is conditional)."""
        if not self.config.feature_matching:
            return generator_loss(fake_logit)
        loss = feature_matching_loss(real_features.detach(), fake_features)
        return loss + generator_loss(fake_logit) if self.conditional else loss

    def train_step(self, x, y, prior, opts, progress):
        y_real = self.onehot(y) if y is not None else None
        z, y_fake = prior(len(x))
        fake = self.G(z, y_fake)
        real_logit, real_features = self.D(x, y_real)
        fake_logit, _ = self.D(fake.detach(), y_fake)
        loss_d = discriminator_loss(real_logit, fake_logit)
        step(opts["d"], loss_d)
        fake_logit, fake_features = self.D(fake, y_fake)
        loss_g = self.generator_objective(real_features, fake_logit, fake_features)
        step(opts["g"], loss_g)
        return {"d_loss": loss_d, "g_loss": loss_g, "d_real": torch.sigmoid(real_logit).mean(),
                "d_fake": torch.sigmoid(fake_logit).mean()}
