"""The detector-in-the-loop terms inside a latent env step: nothing read back to the host, CPU numbers unchanged."""

from __future__ import annotations

import pytest
import torch
from torch.overrides import TorchFunctionMode

from benchbox import registry
from benchbox.interfaces import FitContext
from benchbox_plugins.policies.loop import LoopScorer, loop_space
from benchbox_plugins.policies.mixup import match_rows
from benchbox_plugins.rl.latent_env import LatentCore, LatentVectorEnv, RewardConfig
from benchbox_plugins.rl.loop_rewards import knn_scores

from conftest import tiny_config


class HostReadError(AssertionError):
    pass


class RefuseHostReads(TorchFunctionMode):
    """Raises on every tensor call that reads a value back to the host or moves a tensor to the CPU:
    ``.cpu()``, ``.to("cpu")``, ``.numpy()``, ``.tolist()``, ``.item()`` and ``bool/float/int(t)`` (each a
    device sync on a GPU). The traceback points at the line that did it."""

    REFUSED = {"cpu", "numpy", "tolist", "item", "__bool__", "__float__", "__int__", "__index__"}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        target = kwargs.get("device", args[1] if name == "to" and len(args) > 1 else None)
        if name in self.REFUSED or (isinstance(target, str) and target.startswith("cpu")):
            raise HostReadError(f"host read inside a step: Tensor.{name}")
        return func(*args, **kwargs)


def test_the_refusing_mode_refuses_each_host_read():
    t = torch.ones(3)
    for read in (lambda: t.cpu(), lambda: t.to("cpu"), lambda: t.numpy(), lambda: t[0].item(),
                 lambda: bool(t.any()), lambda: float(t.sum()), lambda: int(t.sum()), lambda: t.tolist()):
        with pytest.raises(HostReadError), RefuseHostReads():
            read()
    with RefuseHostReads():  # device-side maths passes
        (t.double() @ t.double()).sqrt().to(t.device)


@pytest.fixture(scope="module")
def tiny(digits_splits):
    gen = registry.create("generators", "ae", tiny_config(registry.load("generators", "ae")))
    gen.fit(digits_splits.train, FitContext(device=torch.device("cpu"), seed=0))
    return gen, gen.encode(digits_splits.train)


@pytest.fixture(scope="module")
def scorers(tiny, digits_splits, tmp_path_factory):
    """A role-normal scorer (pixels) and a role-anomaly one (band in pixels, detector in infeat) with
    pseudo-anomalies accepted, as --policy.reward loop builds them."""
    gen, latents = tiny
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCHBOX_CACHE", str(tmp_path_factory.mktemp("cache")))
        space = loop_space(gen, latents, digits_splits.val, "pixels")
        detector = loop_space(gen, latents, digits_splits.val, "infeat")
        normal = LoopScorer(gen, latents, space)
        anomaly = LoopScorer(gen, latents, space, detector)
        g = torch.Generator().manual_seed(2)
        anomaly.add_pseudo_anomalies(latents + 0.5 * latents.std(0) * torch.randn(latents.shape, generator=g))
    assert anomaly.threshold != detector.reference.band[1]  # the threshold moved with the pseudo-anomalies
    return normal, anomaly


def _env(tiny, scorer: LoopScorer, anomaly: bool, num_envs: int = 6) -> LatentVectorEnv:
    gen, latents = tiny
    core = LatentCore(gen, latents, RewardConfig(role="anomaly" if anomaly else "normal", episode_length=2))
    core.terms.clear()  # --policy.reward loop: only the loop terms
    if anomaly:
        core.add_term("adversarial", 1.0, scorer.adversarial)
    else:
        for name in ("coverage", "plausibility", "duplicate"):
            core.add_term(name, 1.0, getattr(scorer, name))
    env = LatentVectorEnv(core, num_envs)
    env.reset(seed=0)
    return env


@pytest.mark.parametrize("anomaly", [False, True], ids=["coverage-plausibility-duplicate", "adversarial"])
def test_a_loop_reward_step_reads_nothing_back_to_the_host(tiny, scorers, anomaly, monkeypatch):
    """Decode, features, 1-NN distances, source match and the terms all stay on the env's device: the old
    ``decode(z.cpu())``, ``match_rows(z0.cpu(), ...)`` and FixedFeatures' ``.cpu()`` each failed this.
    The terms of a step share one decode (adversarial used to decode twice)."""
    gen, _ = tiny
    scorer = scorers[anomaly]
    env = _env(tiny, scorer, anomaly)
    actions = torch.rand(6, env.core.d, generator=torch.Generator().manual_seed(0)) * 2 - 1
    decodes = []
    real_decode = gen.decode
    monkeypatch.setattr(gen, "decode", lambda z: decodes.append(len(z)) or real_decode(z))
    with RefuseHostReads():
        steps = [env.step(actions) for _ in range(3)]  # crosses an episode end and its autoreset
    assert decodes == [6, 6, 6]
    names = ("adversarial",) if anomaly else ("coverage", "plausibility", "duplicate")
    for _, reward, _, _, info in steps:
        assert torch.equal(reward, sum(info[name] for name in names))
    assert not torch.equal(steps[0][1], steps[1][1])  # the terms saw the moved latents


@pytest.mark.parametrize("anomaly", [False, True], ids=["normal", "anomaly"])
def test_the_terms_equal_the_host_path_bit_for_bit(tiny, scorers, anomaly):
    """On the CPU the device path gives the numbers of the host path it replaced: decode, fixed features
    (FixedFeatures, CPU rows), the training index each source equals, then the reference's terms."""
    gen, latents = tiny
    scorer = scorers[anomaly]
    g = torch.Generator().manual_seed(5)
    pick = torch.randint(len(latents), (16,), generator=g)
    z0 = latents[pick]
    z = z0 + 0.7 * latents.std(0) * torch.randn(z0.shape, generator=g)
    ref = scorer.space.reference
    feats = scorer.space.features(gen.decode(z))
    own = ref.own_score(feats)
    if anomaly:
        f = scorer.detector_space.features(gen.decode(z))
        det = knn_scores(f, scorer.detector_space.reference.memory, 1) - knn_scores(f, scorer.pseudo, 1)
        assert torch.equal(scorer.detector_score(gen.decode(z)), det)
        assert torch.equal(scorer.adversarial(z, None, z0), ref.adversarial(own, det, scorer.threshold))
    else:
        sources = match_rows(z0, latents)
        assert torch.equal(sources, pick)
        assert torch.equal(scorer.coverage(z, None, z0), ref.coverage(feats, sources))
        assert torch.equal(scorer.plausibility(z), ref.plausibility(own))
        assert torch.equal(scorer.duplicate(z), ref.duplicate(own))
