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
    gen = _fit(name, x, epochs=1, batch_size=4, base_channels=4, latent_dim=8)
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
