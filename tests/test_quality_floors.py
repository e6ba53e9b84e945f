"""Quality floors that can fail: every detector beats a measured AUROC floor on `digits`, every
generator reconstructs held-out normals better than the mean image does, every learned latent
policy proposes moves that earn more of its own reward than random moves do.

Data: `digits`, normal class 0, the dataset's seed-0 split; detectors fit on the 96 training
normals and score every test normal plus the first 200 test anomalies. Budgets: the suite's tiny
ones (``conftest.TINY``) plus the overrides below where those leave a plugin untrained.
The floors were measured with ``benchmarks/test_floors.py`` (seeds 0-4, the same budgets; table in
``benchmarks/results/test_floors.md``) and set below the worst seed with the margin stated there:
a floor fails when a plugin stops learning, not on an unlucky seed.
"""

from __future__ import annotations

import pytest
import torch

from benchbox import registry
from benchbox.interfaces import FitContext
from benchbox.metrics import image_metrics

from conftest import SLOW_PLUGINS, tiny_config

CPU = torch.device("cpu")
N_ANOMALIES = 200

# Budget overrides beyond conftest.TINY, where TINY leaves a detector untrained (measured: with TINY
# alone GANomaly's 6 steps score the normals *higher*, AUROC 0.03; it crosses 0.99 by ~75 steps).
DETECTOR_OPTIONS = {
    "anomalib-ganomaly": {"max_steps": -1, "epochs": 25, "n_features": 16, "latent_vec_size": 32},
    "anomalib-stfpm": {"max_steps": -1, "epochs": 10},  # TINY's 4 steps: 0.59-0.93 over seeds 0-4
}
# image AUROC floors; worst of seeds 0-4 in benchmarks/results/test_floors.md, floor = that minus >= 0.05
DETECTOR_FLOORS = {
    "ae": 0.89,
    "anomalib-dfm": 0.95,
    "anomalib-fastflow": 0.75,
    "anomalib-ganomaly": 0.90,
    "anomalib-padim": 0.95,
    "anomalib-patchcore": 0.94,
    "anomalib-reverse-distillation": 0.86,
    "anomalib-stfpm": 0.85,
    "fanogan": 0.90,
    "knn": 0.95,
    "memvae": 0.89,
    "transformer": 0.94,
}

# Generators: TINY leaves GANs near noise and the VAEs at the mean image, so longer fits (1-5 s
# each). beta = 0.1 for the VAEs: with the default beta = 1 the posterior collapses on 96 8x8
# images and the decoder returns the mean image (MSE ratio 0.99-1.04 at 100-300 epochs).
GENERATOR_OPTIONS = {
    "ae": {"epochs": 30},
    "vae": {"epochs": 60, "beta": 0.1},
    "memvae": {"epochs": 100, "beta": 0.1},
    "dcgan": {"epochs": 300, "encoder_epochs": 100},
    "triplegan": {"epochs": 200, "encoder_epochs": 100},
}
RECON_MARGIN = 0.9  # MSE(reconstruction) / MSE(mean training image) must be below this

# Learned latent policies (ppo, ddpg, dqn) on an ae fitted to the digits training normals: the mean
# reward of propose()'s moves from every training latent vs random moves of the same kind (uniform
# actions in [-1, 1]^d; for dqn the mean over its whole move table, an exact expectation).
# TINY's 256 PPO steps leave the mean action at ~0 (no gain): 2048 steps, ~1.5 s. DDPG needs 2048 too
# (at 1024 its moves overshoot the novelty band: worse than random on seeds 0-2).
# Two baselines: standing still (dz = 0, what an untrained policy's mean action proposes) and uniform
# random moves. On the lean backbone's ae (issue 16) random moves already land mostly inside the
# novelty band (random mean reward ~ -1.1, on the old backbone ~ -3.2), so the most a policy can gain
# over them is ~0.5 (realism is the same for every move, novelty <= 0, size >= 0); ppo's gain over
# random is -0.26..0.44 over seeds 0-4 (not asserted), ddpg's and dqn's stay positive (asserted).
POLICY_OPTIONS = {
    "ppo": {"total_timesteps": 2048},
    "ddpg": {"learning_starts": 64, "gradient_steps": 2, "total_timesteps": 2048},
    "dqn": {"learning_starts": 64, "gradient_steps": 2},
}
POLICY_GAIN = 0.1  # learned mean reward - random mean reward must exceed this (measured gains in test_floors.md)
BEATS_RANDOM = ("ddpg", "dqn")  # the policies whose worst seed beats random moves by more than POLICY_GAIN
STAY_GAIN = 1.0  # learned mean reward - the reward of dz = 0 must exceed this (every policy)


def floor_data():
    """Train normals, validation split, and the scored test subset with its labels."""
    s = registry.create("datasets", "digits").load(0)
    labels = s.test.labels
    keep = torch.cat([torch.nonzero(labels == 0).flatten(), torch.nonzero(labels == 1).flatten()[:N_ANOMALIES]])
    return s.train, s.val, s.test.images[keep], labels[keep]


def detector_auroc(name: str, seed: int = 0) -> float:
    train, val, test, labels = floor_data()
    cls = registry.load("detectors", name)
    det = cls(tiny_config(cls, **DETECTOR_OPTIONS.get(name, {})))
    det.fit(train, FitContext(device=CPU, seed=seed, stage="test", val=val))
    return image_metrics(labels, det.score(test).image)["image_auroc"]


def reconstruction_ratio(name: str, seed: int = 0) -> tuple[float, float]:
    """(MSE of the generator's reconstruction, MSE of the mean training image) on held-out test normals."""
    train, _, test, labels = floor_data()
    normals = test[labels == 0]
    cls = registry.load("generators", name)
    gen = cls(tiny_config(cls, **GENERATOR_OPTIONS.get(name, {})))
    gen.fit(train, FitContext(device=CPU, seed=seed, stage="test"))
    with torch.no_grad():
        recon = gen.reconstruct(normals)
    return float(((recon - normals) ** 2).mean()), float(((train.mean(0, keepdim=True) - normals) ** 2).mean())


_FITTED: dict[str, object] = {}


def fitted_ae():
    """An ae (TINY budgets) fitted to the digits training normals, and its training latents."""
    if "ae" not in _FITTED:
        train = floor_data()[0]
        gen = registry.create("generators", "ae", tiny_config(registry.load("generators", "ae")))
        gen.fit(train, FitContext(device=CPU, seed=0, stage="test"))
        _FITTED["ae"] = gen, gen.encode(train)
    return _FITTED["ae"]


def policy_rewards(name: str, seed: int = 0) -> tuple[float, float, float]:
    """(mean reward of the fitted policy's proposals, mean reward of random moves of the same kind,
    mean reward of standing still: dz = 0)."""
    gen, latents = fitted_ae()
    cls = registry.load("policies", name)
    pol = cls(tiny_config(cls, **POLICY_OPTIONS[name]))
    pol.fit(gen, latents, FitContext(device=CPU, seed=seed, stage="test"))
    core = pol.core
    assert core.cfg.episode_length == 1  # one step: the action is dz / (step_size * sigma)

    def reward(actions: torch.Tensor) -> float:
        z = latents.to(core.device)
        return float(core.reward(z + core.delta(actions), actions.clamp(-1, 1), z)[0].mean())

    learned = reward(pol.propose(latents, seed=0).to(core.device) / (core.cfg.step_size * core.sigma))
    if name == "dqn":
        table = pol.table
        rand = sum(reward(a.expand(len(latents), -1)) for a in table) / len(table)
    else:
        g = torch.Generator().manual_seed(seed)
        rand = sum(reward((torch.rand(latents.shape, generator=g) * 2 - 1).to(core.device)) for _ in range(4)) / 4
    return learned, rand, reward(torch.zeros(latents.shape, device=core.device))


def _first_party(group: str) -> set[str]:
    return {p.name for p in registry.list_plugins(group)
            if not p.broken and p.distribution == "benchbox" and p.name not in SLOW_PLUGINS}


def test_every_first_party_plugin_has_a_floor():
    assert _first_party("detectors") == set(DETECTOR_FLOORS), "add the new detector's floor (benchmarks/test_floors.py)"
    assert _first_party("generators") == set(GENERATOR_OPTIONS), "add the new generator's budget here"


@pytest.mark.parametrize("name", sorted(DETECTOR_FLOORS))
def test_detector_beats_its_floor_on_digits(name):
    auroc = detector_auroc(name)
    assert auroc > DETECTOR_FLOORS[name], f"{name}: image AUROC {auroc:.3f} <= floor {DETECTOR_FLOORS[name]}"


@pytest.mark.parametrize("name", sorted(GENERATOR_OPTIONS))
def test_generator_reconstruction_beats_the_mean_image(name):
    mse, mean_mse = reconstruction_ratio(name)
    assert mse < RECON_MARGIN * mean_mse, f"{name}: reconstruction MSE {mse:.4f} vs mean image {mean_mse:.4f}"


@pytest.mark.parametrize("name", sorted(POLICY_OPTIONS))
def test_learned_policy_beats_standing_still_and_random_moves_on_its_reward(name):
    learned, rand, stay = policy_rewards(name)
    assert learned > stay + STAY_GAIN, f"{name}: mean reward {learned:.3f}, dz = 0 {stay:.3f}"
    if name in BEATS_RANDOM:
        assert learned > rand + POLICY_GAIN, f"{name}: mean reward {learned:.3f}, random moves {rand:.3f}"
