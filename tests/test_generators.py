"""ae, vae and memvae: shapes at every supported size, options, and FID ranking a bad generator worse."""

from __future__ import annotations

import pytest
import torch

from benchbox import features, registry
from benchbox.errors import ConfigError
from benchbox.genmetrics import frechet_distance
from benchbox.interfaces import FitContext

GENERATORS = ["ae", "vae", "memvae"]
CPU = torch.device("cpu")


def _fit(name, images, seed=0, **options):
    gen = registry.create("generators", name, **options)
    gen.fit(images, FitContext(device=CPU, seed=seed))
    return gen


@pytest.mark.parametrize("name", GENERATORS)
@pytest.mark.parametrize("size", [8, 28, 64, 256])
@pytest.mark.parametrize("channels", [1, 3])
def test_round_trip_shapes(name, size, channels):
    x = torch.rand(4, channels, size, size, generator=torch.Generator().manual_seed(size))
    gen = _fit(name, x, epochs=1, batch_size=4, width=4, latent_dim=8)
    z = gen.encode(x)
    assert z.shape == (4, 8) and z.dtype == torch.float32
    y = gen.decode(z)
    assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1
    assert gen.reconstruct(x).shape == x.shape


def test_vae_encode_mean_or_posterior_sample():
    x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    mean = _fit("vae", x, epochs=1, base_channels=4)
    sampled = _fit("vae", x, epochs=1, base_channels=4, sample_posterior=True)
    z_mu, z_s = mean.encode(x), sampled.encode(x)
    assert torch.equal(z_s, sampled.encode(x))  # seeded: deterministic
    mu, _ = sampled.net.posterior(x)  # same seed, same weights: the samples scatter around the mean
    assert torch.allclose(z_mu, mu.detach(), atol=1e-6) and not torch.allclose(z_s, z_mu)


@pytest.mark.parametrize("name,option,value", [("vae", "beta", -1.0), ("ae", "latent_dim", 0), ("memvae", "lr", 0.0)])
def test_bad_option_is_one_clear_line(name, option, value):
    with pytest.raises((ValueError, ConfigError), match=rf"^({name}: --generator\.{option.replace('_', '-')} must|generator '{name}' option '{option}' expects)"):
        registry.create("generators", name, **{option: value})


@pytest.fixture(scope="module")
def digits_features(digits_splits, tmp_path_factory):
    extract = features.feature_extractor(digits_splits.train, cache_dir=tmp_path_factory.mktemp("features"))
    return extract, extract(digits_splits.train)


@pytest.mark.parametrize("name", GENERATORS)
def test_fid_ranks_decoded_noise_worse_than_reconstructions(name, digits_splits, digits_features):
    """FID(decode(train latents), real) < FID(decode(N(0, I) * latent std), real)."""
    train = digits_splits.train
    gen = _fit(name, train, epochs=25, base_channels=8, latent_dim=8)
    z = gen.encode(train)
    noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(1)) * z.std(0)
    extract, real = digits_features
    fid_recon = frechet_distance(real, extract(gen.decode(z)))
    fid_noise = frechet_distance(real, extract(gen.decode(noise)))
    assert fid_recon < fid_noise, f"{name}: FID recon {fid_recon:.3f} >= FID noise {fid_noise:.3f}"


@pytest.mark.parametrize("name", GENERATORS)
def test_width_option_sets_the_backbone_and_base_channels_is_its_older_name(name):
    x = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    by_width = _fit(name, x, epochs=1, width=8, latent_dim=4)
    by_old_name = _fit(name, x, epochs=1, base_channels=8, latent_dim=4)
    # 32 px: maps at 16, 8, 4 px with 8, 16, 32 channels (4 x width on the smallest map)
    assert [m.out_channels for m in by_width.net.encoder.features if isinstance(m, torch.nn.Conv2d)] == [8, 16, 32]
    assert torch.equal(by_width.reconstruct(x), by_old_name.reconstruct(x))
    with pytest.raises(ValueError, match=r"base-channels 8 and --generator.width 16 disagree"):
        registry.create("generators", name, base_channels=8, width=16)
    with pytest.raises(ValueError, match=r"--detector.base-channels 8 and --detector.width 16 disagree"):
        registry.create("detectors", "ae" if name == "ae" else "memvae", base_channels=8, width=16)


def test_up_and_precision_options_reach_the_backbone():
    x = torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    shuffle = _fit("ae", x, epochs=1, up="shuffle", channels_last=True, bf16=True)
    assert shuffle.net.decoder.channels_last and shuffle.net.encoder.bf16
    assert any(type(m).__name__ == "_ShuffleUp" for m in shuffle.net.decoder.modules())
    # bf16 acts on CUDA only: on CPU the flag changes no number
    plain, flagged = _fit("ae", x, epochs=2, width=8), _fit("ae", x, epochs=2, width=8, bf16=True)
    assert torch.equal(plain.reconstruct(x), flagged.reconstruct(x))


def test_long_training_notes_its_estimate_first(monkeypatch):
    """train_epochs times its first batches and, when the whole fit will exceed ESTIMATE_AFTER_S, notes
    one line (images x epochs at the measured images/s) before the rest of the training runs."""
    from benchbox import training

    x = torch.rand(40, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    events = []
    for after, expect in ((0.0, 1), (1e9, 0)):
        monkeypatch.setattr(training, "ESTIMATE_AFTER_S", after)
        notes = []
        ctx = FitContext(device=CPU, seed=0, note=notes.append,
                         progress=lambda done, total=None: events.append(("epoch", done)))
        registry.create("generators", "ae", epochs=3, batch_size=16, width=4).fit(x, ctx)
        assert len(notes) == expect
    assert notes == [] and len(events) == 6
    monkeypatch.setattr(training, "ESTIMATE_AFTER_S", 0.0)
    notes.clear()
    ctx = FitContext(device=CPU, seed=0, note=lambda m: notes.append((m, len(events))),
                     progress=lambda done, total=None: events.append(("epoch", done)))
    registry.create("generators", "ae", epochs=3, batch_size=16, width=4).fit(x, ctx)
    (message, epochs_done), = notes
    assert epochs_done == 6  # noted inside the first epoch (40 images < the 2 s probe: at its end)
    assert message.startswith("40 images x 3 epochs at ") and " images/s (measured on the first 40): about " in message
    assert training.duration_text(95) == "1 min 35 s" and training.duration_text(3700) == "1 h 1 min"
