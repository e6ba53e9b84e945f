"""anomalib-* detectors: faithfulness to anomalib's own Engine, offline weights handling, hygiene.

The registry-wide contract (fit/score shapes, determinism, batch independence) is checked for
every anomalib-* plugin in tests/test_contracts.py with the TINY budgets of conftest.py.
"""

from __future__ import annotations

import time

import pytest
import torch

from benchbox import registry
from benchbox.errors import ConfigError
from benchbox.interfaces import FitContext

from conftest import tiny_config

CPU = torch.device("cpu")
ALL = ["anomalib-padim", "anomalib-patchcore", "anomalib-dfm", "anomalib-fastflow", "anomalib-reverse-distillation",
       "anomalib-stfpm", "anomalib-ganomaly", "anomalib-efficientad"]


def _ctx(seed: int = 0, val=None) -> FitContext:
    return FitContext(device=CPU, seed=seed, stage="detector", val=val)


def test_all_models_registered():
    names = set(registry.names("detectors"))
    assert set(ALL) <= names
    for info in registry.list_plugins("detectors", "anomalib-*"):
        assert info.description.startswith("anomalib "), info  # described without importing


def test_padim_wrapper_matches_anomalib_engine(digits_splits, tmp_path, monkeypatch):
    """The wrapper's image scores equal anomalib's own Engine.fit + Engine.predict (same images, seed)."""
    from anomalib.engine import Engine
    from anomalib.models import Padim

    from benchbox_plugins.detectors.base import anomalib_adapter as aa

    monkeypatch.chdir(tmp_path)
    cls = registry.load("detectors", "anomalib-padim")
    cfg = cls.Config(pretrained=False, image_size=32)
    train, test = digits_splits.train, digits_splits.test.images[:48]
    det = cls(cfg)
    det.fit(train, _ctx(seed=11))
    ours = det.score(test).image

    with aa.quiet(), aa.seeded(11):
        model = Padim(backbone=cfg.backbone, layers=list(cfg.layers), pre_trained=False,
                      pre_processor=aa.pre_processor(32), post_processor=False, evaluator=False, visualizer=False)
        engine = Engine(default_root_dir=tmp_path / "engine", logger=False, accelerator="cpu", devices=1,
                        enable_progress_bar=False)
        engine.fit(model=model, train_dataloaders=aa.image_loader(aa.to_rgb(train), 32))
        preds = engine.predict(model=model, dataloaders=aa.image_loader(aa.to_rgb(test), 32))
    theirs = torch.cat([p.pred_score.reshape(-1) for p in preds]).float()
    assert theirs.shape == ours.shape
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    assert not any(p.name != "engine" for p in tmp_path.iterdir()), "the wrapper wrote into the CWD"


def test_missing_weights_fail_fast_in_one_line(digits_splits, monkeypatch, tmp_path):
    from benchbox_plugins.detectors.base import anomalib_adapter as aa

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(aa, "timm_weights_cached", lambda backbone: (False, f"timm/{backbone}.a1_in1k"))
    start = time.monotonic()
    with pytest.raises(ConfigError) as err:  # pretrained is on by default; the check runs at construction
        registry.create("detectors", "anomalib-padim", image_size=32)
    assert time.monotonic() - start < 10
    msg = str(err.value)
    assert "\n" not in msg and "timm/resnet18.a1_in1k" in msg and "--detector.no-pretrained" in msg


def test_efficientad_missing_teacher_fails_fast(monkeypatch, tmp_path):
    from anomalib.utils import path as apath

    from benchbox_plugins.detectors import anomalib_models as am

    monkeypatch.setattr(apath, "get_pretrained_weights_dir", lambda: tmp_path / "none")
    monkeypatch.setattr(am, "_hub_reachable", lambda host="": False)
    with pytest.raises(ConfigError, match="--detector.no-pretrained"):
        registry.create("detectors", "anomalib-efficientad")


def test_local_weights_file_is_loaded(tmp_path):
    import timm

    src = timm.create_model("resnet18", pretrained=False)
    with torch.no_grad():
        src.conv1.weight.fill_(0.125)
    path = tmp_path / "resnet18.pth"
    torch.save(src.state_dict(), path)
    det = registry.create("detectors", "anomalib-padim", image_size=32, weights=str(path))
    module = det.make_module()
    assert torch.all(det.backbone_module(module).conv1.weight == 0.125)
    with pytest.raises(ConfigError, match="option 'weights' expects a PyTorch state-dict file"):
        registry.create("detectors", "anomalib-padim", image_size=32, weights=str(tmp_path / "nope.pth"))


def test_pseudo_anomalies_rejected(digits_splits):
    det = registry.create("detectors", "anomalib-dfm", pretrained=False, image_size=32, pooling_kernel_size=2)
    with pytest.raises(ValueError, match="anomalib-dfm"):
        det.fit(digits_splits.train, _ctx(), pseudo_anomalies=digits_splits.train[:4])


def test_bad_options_one_line():
    with pytest.raises(ConfigError, match=r"option 'image_size' expects a number in \[16, 1024\], got 4"):
        registry.create("detectors", "anomalib-padim", image_size=4)
    with pytest.raises(ConfigError, match="--detector.pooling-kernel-size"):
        registry.create("detectors", "anomalib-dfm", image_size=32, pooling_kernel_size=4, pretrained=False)
    with pytest.raises(ConfigError, match="coreset-sampling-ratio"):
        registry.create("detectors", "anomalib-patchcore", coreset_sampling_ratio=0.0, pretrained=False)


@pytest.mark.parametrize("name", ["anomalib-stfpm", "anomalib-patchcore"])
def test_fit_writes_nothing_to_cwd_and_is_quiet(name, digits_splits, tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    cls = registry.load("detectors", name)
    det = cls(tiny_config(cls))
    seen = []
    ctx = _ctx()
    ctx.progress = lambda done, total=None: seen.append((done, total))
    det.fit(digits_splits.train[:32], ctx)
    det.score(digits_splits.test.images[:4])
    assert list(tmp_path.iterdir()) == []
    out, err = capfd.readouterr()
    for noise in ("GPU available", "LOCAL_RANK", "Epoch", "Selecting Coreset", "it/s"):
        assert noise not in out + err, (out + err)[-500:]
    assert seen and seen[-1][0] == seen[-1][1]


def test_patchcore_caps_memory_bank(digits_splits):
    det = registry.create("detectors", "anomalib-patchcore", pretrained=False, image_size=32, bank_limit=20,
                          max_patches=100, coreset_sampling_ratio=0.5)
    det.fit(digits_splits.train, _ctx())
    assert det.module.model.memory_bank.shape[0] == 50


def test_cli_run_without_weights_fails_at_once(tmp_path):
    """`benchbox run` with pretrained on (the default), no weights on disk, no network: one line, fast."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), TORCH_HOME=str(tmp_path / "torch"))
    env.pop("HF_HUB_CACHE", None)
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "benchbox.cli", "run", "--dataset", "digits", "--policy", "none",
                           "--detector", "anomalib-padim", "--out", str(tmp_path / "runs")],
                          capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    elapsed = time.monotonic() - start
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert "--detector.no-pretrained" in lines[-1] and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert elapsed < 120
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_validation_batches_carry_normal_labels():
    """Validation hooks that read gt_label (EfficientAd's map quantiles) get all-normal labels."""
    from benchbox_plugins.detectors.base.anomalib_adapter import image_loader

    batch = next(iter(image_loader(torch.rand(5, 3, 16, 16), 4, normal_labels=True)))
    assert batch.gt_label is not None and batch.gt_label.shape == (4,) and not batch.gt_label.any()
    assert next(iter(image_loader(torch.rand(5, 3, 16, 16), 4))).gt_label is None


@pytest.mark.slow
def test_efficientad_fits_without_a_validation_split(digits_splits):
    det = registry.create("detectors", "anomalib-efficientad", pretrained=False, max_steps=2, epochs=1)
    det.fit(digits_splits.train[:8], FitContext(device=torch.device("cpu"), seed=0, stage="detector"))
    scores = det.score(digits_splits.test.images[:4])
    assert scores.image.shape == (4,) and torch.isfinite(scores.image).all()


def test_dfm_pooling_kernel_defaults_to_what_the_feature_map_allows():
    small = registry.create("detectors", "anomalib-dfm", image_size=32, pretrained=False)
    assert small.config.pooling_kernel_size == 2  # layer3 map is 2 px at 32 px input
    assert registry.create("detectors", "anomalib-dfm", pretrained=False).config.pooling_kernel_size == 4
