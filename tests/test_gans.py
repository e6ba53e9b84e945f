"""dcgan, triplegan and fanogan: shapes, options that must change the model, conditioning, inversion."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchbox import cache, registry
from benchbox.errors import ConfigError, DataError
from benchbox.interfaces import FitContext
from benchbox_plugins.generators.base.gan import GanDiscriminator, GanGenerator, GlobalAvgPool, ResUp

CPU = torch.device("cpu")
TINY = dict(epochs=1, encoder_epochs=1, batch_size=8, base_channels=4, latent_dim=8)


def _ctx(seed=0):
    return FitContext(device=CPU, seed=seed, stage="test")


def _fit(name, images, labels=None, seed=0, **options):
    gen = registry.create("generators", name, **{**TINY, **options})
    gen.fit(images, _ctx(seed), labels=labels)
    return gen


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's 8x8 digits with their class labels (all ten classes)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy((bunch.images / 16.0).astype(np.float32))[:, None]
    return x, torch.from_numpy(bunch.target.astype(np.int64))


@pytest.mark.parametrize("arch", ["dcgan", "improved"])
@pytest.mark.parametrize("channels,size", [(1, 8), (1, 28), (3, 32), (3, 64), (1, 256)])
def test_decode_shape_and_range(arch, channels, size):
    n = 2 if size == 256 else 6
    x = torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(size))
    gen = _fit("dcgan", x, arch=arch, batch_size=n)
    z = gen.encode(x)
    assert z.shape == (n, 8) and z.dtype == torch.float32
    y = gen.decode(torch.randn(5, 8) * 3)
    assert y.shape == (5, channels, size, size) and y.min() >= 0 and y.max() <= 1
    assert gen.reconstruct(x).shape == x.shape


def test_architectures_differ():
    g, d = GanGenerator(1, 28, 8, 4, arch="improved"), GanDiscriminator(1, 28, 4, arch="improved")
    assert any(isinstance(m, ResUp) for m in g.modules()) and any(isinstance(m, GlobalAvgPool) for m in d.modules())
    plain = GanDiscriminator(1, 28, 4)
    assert not any(isinstance(m, GlobalAvgPool) for m in plain.modules())
    assert any(isinstance(m, torch.nn.ConvTranspose2d) for m in GanGenerator(1, 28, 8, 4).modules())
    # the improved D is deeper (more conv layers) than the DCGAN one at the same size
    n_conv = lambda net: sum(isinstance(m, torch.nn.Conv2d) for m in net.modules())  # noqa: E731
    assert n_conv(d) > n_conv(plain)


def test_encoder_inverts_generator():
    """After a short fit, G(E(x)) is closer to x than G of a random prior latent."""
    x = registry.create("datasets", "mnist", normal_class=0, train_limit=120).load(0).train
    gen = _fit("dcgan", x, epochs=30, encoder_epochs=20, batch_size=32, base_channels=8, feature_matching=True)
    recon = gen.decode(gen.encode(x))
    rand = gen.decode(gen.sample_latents(len(x), seed=1))
    err_recon, err_rand = (recon - x).pow(2).mean(), (rand - x).pow(2).mean()
    assert err_recon < 0.8 * err_rand, (float(err_recon), float(err_rand))


def test_spectral_norm_is_applied():
    x = torch.rand(8, 1, 8, 8)
    sn = _fit("dcgan", x, spectral_norm=True)
    layers = [m for m in sn.D.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert layers and all(hasattr(m, "weight_orig") and hasattr(m, "weight_u") for m in layers)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in sn.D.modules())
    assert not any(hasattr(m, "weight_orig") for m in sn.G.modules())
    # the effective weights have spectral norm ~1 (power iteration has run during training)
    w = layers[-1].weight.detach().flatten(1)
    assert torch.linalg.matrix_norm(w, ord=2) == pytest.approx(1.0, abs=0.15)
    plain = _fit("dcgan", x)
    assert not any(hasattr(m, "weight_orig") for m in plain.D.modules())
    # the fitted model survives the grid's restricted stage-cache pickling
    again = cache.loads(cache.dumps(sn))
    z = torch.randn(3, 8)
    assert torch.equal(again.decode(z), sn.decode(z))


def test_feature_matching_changes_generator_loss():
    gen = registry.create("generators", "dcgan", feature_matching=True)
    plain = registry.create("generators", "dcgan")
    logit, fake_f = torch.randn(16), torch.randn(16, 5)
    real_a, real_b = torch.randn(16, 5), torch.randn(16, 5) + 2
    # with feature matching G's loss depends on the real features, without it only on D's logit
    assert gen.generator_objective(real_a, logit, fake_f) != gen.generator_objective(real_b, logit, fake_f)
    assert plain.generator_objective(real_a, logit, fake_f) == plain.generator_objective(real_b, logit, fake_f)
    x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    a, b = _fit("dcgan", x, feature_matching=True), _fit("dcgan", x)
    assert not torch.equal(a.decode(torch.ones(1, 8)), b.decode(torch.ones(1, 8)))


def test_conditional_outputs_differ_per_label_and_bad_labels_fail(digits):
    x, y = digits[0][:200], digits[1][:200]
    gen = _fit("dcgan", x, labels=y, conditional=True, epochs=2)
    assert gen.classes == list(range(10)) and gen.latent_dim == 8 + 10
    z = torch.randn(1, 8).repeat(10, 1)
    images = gen.decode(gen.conditional_latents(z, torch.arange(10)))
    assert (images[1:] - images[:1]).abs().flatten(1).max(1).values.min() > 1e-3  # every label changes G(z, y)
    assert gen.encode(x[:5])[:, 8:].sum(1).eq(1).all()  # the class half of encode is a one-hot
    with pytest.raises(DataError, match=r"^dcgan: label 11 is not a class of the training data \(classes: 0, 1,"):
        gen.conditional_latents(z[:1], torch.tensor([11]))
    with pytest.raises(DataError, match=r"^dcgan: labels must be 200 non-negative integer class ids"):
        _fit("dcgan", x, labels=y[:50], conditional=True)
    with pytest.raises(DataError, match=r"^dcgan: expected N x 18 latents"):
        gen.decode(torch.zeros(2, 8))


def test_conditional_without_labels_is_one_class():
    x = torch.rand(8, 1, 8, 8)
    gen = _fit("dcgan", x, conditional=True)
    assert gen.classes == [0] and gen.latent_dim == 9
    assert gen.decode(gen.encode(x)).shape == x.shape


def test_triplegan_classifier_beats_chance(digits):
    x, y = digits
    gen = _fit("triplegan", x[:600], labels=y[:600], epochs=3, batch_size=32, base_channels=8)
    # scored on the 1,197 held-out images; measured 0.70-0.77 over seeds 0-3 (seed 0: 0.773); chance 0.1
    acc = float((gen.classify(x[600:]) == y[600:]).float().mean())
    assert acc > 0.6, acc
    # encode's class half is the classifier's label
    assert torch.equal(gen.encode(x[:20])[:, 8:].argmax(1), gen.classify(x[:20]))


def test_triplegan_semi_supervised_hides_labels(digits):
    x, y = digits[0][:64], digits[1][:64]
    gen = registry.create("generators", "triplegan", **TINY, labeled_fraction=0.25)
    idx = gen.prepare_labels(torch.arange(64) % 10, _ctx())
    assert int((idx < 0).sum()) == 48
    gen.fit(x, _ctx(), labels=y)
    assert gen.decode(gen.encode(x)).shape == x.shape


def test_fanogan_scores_inverted_images_above_normals(digits):
    x = digits[0][digits[1] == 0]
    train, held = x[:100], x[100:]
    det = registry.create("detectors", "fanogan", epochs=10, encoder_epochs=10, batch_size=32, base_channels=8)
    det.fit(train, _ctx())
    s = det.score(torch.cat([held, 1 - held]))
    normal, outlier = s.image[: len(held)], s.image[len(held):]
    assert outlier.min() > normal.median() and outlier.mean() > 1.2 * normal.mean()
    assert s.maps.shape == (2 * len(held), 8, 8)
    # the map is the per-pixel residual |x - G(E(x))|
    recon = det.generator.reconstruct(held[:3])
    assert torch.allclose(s.maps[:3], (held[:3] - recon).abs().mean(1), atol=1e-5)


def test_same_seed_same_decode_other_seed_differs():
    x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    z = torch.randn(4, 8)
    a, b, c = (_fit("dcgan", x, seed=s, spectral_norm=True).decode(z) for s in (3, 3, 4))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("group,name,option,value", [
    ("generators", "dcgan", "batch_size", 0), ("generators", "dcgan", "d_lr", 0.0),
    ("generators", "triplegan", "alpha", 1.5), ("detectors", "fanogan", "kappa", -1.0)])
def test_bad_option_is_one_clear_line(group, name, option, value):
    where = "generator" if group == "generators" else "detector"
    with pytest.raises(ConfigError, match=rf"^({name}: --{where}\.{option.replace('_', '-')} must|{where} '{name}' option '{option}' expects)") as info:
        registry.create(group, name, **{option: value})
    assert "\n" not in str(info.value)
