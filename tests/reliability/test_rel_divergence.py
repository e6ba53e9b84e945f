"""Training that produces NaN/inf stops with an error naming the stage and the last finite loss, and the
grid records the cell as failed (a ``failed`` row, exit code 1) while the healthy cells still run."""

from __future__ import annotations

import re

import pytest
import torch

from benchbox import registry
from benchbox.cli import main
from benchbox.errors import TrainingDiverged
from benchbox.grid import read_rows
from benchbox.interfaces import FitContext
from conftest import make_distribution

SPEC = """
[grid]
datasets = [{name = "digits", train_limit = 60}]
generators = [{name = "ae", lr = 1e30}, "ae"]
policies = ["random"]
detectors = ["ae", {name = "ae", lr = 1e30, epochs = 2}]
seeds = [0]
device = "cpu"
threads = 1

[augment]
ratio = 0.5

[options.generator]
epochs = 1
base_channels = 8
latent_dim = 8

[options.detector]
epochs = 1
base_channels = 8
"""
LAST_FINITE = re.compile(r"last finite loss (\d+\.\d+(e-?\d+)?)")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHBOX_CACHE", str(tmp_path / "cache"))


def test_diverging_cells_get_failed_rows_naming_stage_and_last_finite_loss(tmp_path, capsys):
    spec = tmp_path / "diverge.toml"
    spec.write_text(SPEC)
    results = tmp_path / "r.jsonl"
    code = main(["grid", str(spec), "--results", str(results), "--no-run-folders"])
    captured = capsys.readouterr()
    assert code == 1, captured.err  # failures make the exit code 1
    rows, torn = read_rows(results)
    assert torn == 0 and len(rows) == 4
    by_status = {s: [r for r in rows if r["status"] == s] for s in ("ok", "failed")}
    assert len(by_status["ok"]) == 1 and len(by_status["failed"]) == 3
    ok = by_status["ok"][0]
    assert ok["config"]["generator"]["lr"] != 1e30 and ok["config"]["detector"]["lr"] != 1e30
    for row in by_status["failed"]:
        bad_generator = row["config"]["generator"]["lr"] == 1e30
        stage = "fit generator" if bad_generator else "fit detector"
        assert row["stage"] == stage and row["error"].startswith(f"stage '{stage}' failed: ")
        assert "\n" not in row["error"] and ("nan" in row["error"] or "inf" in row["error"])
        match = LAST_FINITE.search(row["error"])
        assert match, row["error"]
        assert 0.0 < float(match.group(1)) < 10.0  # a real loss value, not 'none'
        assert row["metrics"] == {}
    printed = [ln for ln in captured.err.splitlines() if ln.startswith("failed:")]
    assert len(printed) == 3 and all("last finite loss" in ln for ln in printed)
    assert "4 cells: 1 run, 0 already in results, 3 failed" in captured.out


def test_last_optimiser_step_is_checked(digits_splits):
    """One epoch of one batch: no later loss sees the blown-up weights, the final probe must."""
    gen = registry.create("generators", "ae", epochs=1, batch_size=1024, lr=1e30, base_channels=8)
    ctx = FitContext(device=torch.device("cpu"), seed=0, stage="fit generator")
    with pytest.raises(TrainingDiverged, match=r"^fit generator: .*after the last step; last finite loss \d"):
        gen.fit(digits_splits.train[:50], ctx)


def test_final_probe_leaves_the_random_stream_alone():
    """A loss that samples from the global RNG (as a VAE's does): the probe after the last epoch must not
    advance the stream, so healthy runs give the numbers they gave before the guard existed."""
    from benchbox.training import train_epochs

    model = torch.nn.Linear(4, 4)
    data = torch.rand(10, 4)

    def loss_fn(x):
        return ((model(x) - x + 0.01 * torch.randn(x.shape, device=x.device)) ** 2).mean()

    torch.manual_seed(7)
    train_epochs(model, data, loss_fn, FitContext(device=torch.device("cpu"), seed=0, stage="t"),
                 epochs=1, batch_size=16, lr=1e-3)
    after = torch.rand(3)
    torch.manual_seed(7)
    torch.randn(10, 4)  # the one training batch's draw
    assert torch.equal(after, torch.rand(3))


NAN_POLICY = '''
from dataclasses import dataclass
import torch
from benchbox.interfaces import LatentPolicy

class NaNPolicy(LatentPolicy):
    """Proposes NaN (a diverged policy)."""

    @dataclass
    class Config:
        pass

    def fit(self, generator, latents, ctx):
        pass

    def propose(self, z, seed):
        return torch.full_like(z, float("nan"))
'''


def test_non_finite_dz_fails_the_augment_stage_not_the_detector(tmp_path, capsys, extra_site):
    make_distribution(extra_site, "bbx-nan", {"benchbox.policies": {"bbx-nan": "bbx_test_nan:NaNPolicy"}},
                      {"bbx_test_nan": NAN_POLICY})
    results = tmp_path / "r.jsonl"
    code = main(["grid", "--datasets", "digits", "--generators", "ae", "--policies", "bbx-nan", "--detectors", "ae",
                 "--seeds", "0", "--device", "cpu", "--set", "generator.epochs=1", "--set", "generator.base_channels=8",
                 "--set", "detector.epochs=1", "--set", "dataset.train_limit=40", "--no-cache", "--no-run-folders",
                 "--results", str(results)])
    assert code == 1, capsys.readouterr().err
    (row,) = read_rows(results)[0]
    assert row["status"] == "failed" and row["stage"] == "augment"
    assert "policy proposed non-finite dz" in row["error"]
