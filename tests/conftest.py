"""Shared fixtures: tiny budgets, fake distributions with entry points, offline settings."""

from __future__ import annotations

import dataclasses
import os
import sys
import textwrap
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchbox import registry  # noqa: E402

# Budgets that make any plugin fast enough for contract tests: applied to whichever of these
# option names a plugin's Config has, so plugins added later are covered automatically.
TINY = {
    "epochs": 2, "total_timesteps": 256, "num_steps": 16, "num_envs": 4, "n_epochs": 1,
    "train_limit": 40, "batch_size": 32, "score_rounds": 1, "base_channels": 8, "dim": 32, "depth": 1,
    "heads": 2,
    "encoder_epochs": 2,  # dcgan / triplegan / fanogan: the encoder that inverts G
    # anomalib-* detectors: no hub weights, small inputs, a few steps
    "pretrained": False, "image_size": 32, "max_steps": 4, "pooling_kernel_size": 2, "bank_limit": 64,
}

# Plugins whose contract tests take minutes even with TINY budgets (EfficientAd has a 256 px
# minimum input and a wide teacher): checked in the slow CI stage, not the default suite.
SLOW_PLUGINS = {"anomalib-efficientad"}


def tiny_config(cls: type, **overrides):
    """The plugin's Config with every known budget option shrunk, plus explicit overrides."""
    names = {f.name for f in dataclasses.fields(cls.Config)}
    opts = {k: v for k, v in TINY.items() if k in names}
    opts.update(overrides)
    return cls.Config(**opts)


def make_distribution(site: Path, dist: str, entry_points: dict[str, dict[str, str]], modules: dict[str, str]) -> Path:
    """Write a minimal installed distribution (dist-info + modules) into ``site``."""
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = []
    for group, eps in entry_points.items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {value}" for name, value in eps.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for name, source in modules.items():
        (site / f"{name}.py").write_text(textwrap.dedent(source))
    return site


@pytest.fixture
def extra_site(tmp_path, monkeypatch):
    """A folder on sys.path (and PYTHONPATH for subprocesses) to install fake distributions into."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", str(site) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    registry.clear_cache()
    yield site
    registry.clear_cache()
    for mod in [m for m in sys.modules if m.startswith("bbx_test_")]:
        del sys.modules[mod]


@pytest.fixture(scope="session")
def digits_splits():
    return registry.create("datasets", "digits").load(0)
