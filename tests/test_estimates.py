"""The one-line time estimate a long training stage prints before it gets going (issue 16 part 2).

The thresholds are lowered to zero here so that a seconds-long cell is "long": every stage with a
training loop then notes exactly one estimate -- train_epochs' own (images x epochs at the measured
images/s) for the generator, and the runner's (from the stage's progress fraction) for a loop such
as PPO that does not note one itself -- and it comes before the stage ends.
"""

from __future__ import annotations

import dataclasses
import re

import torch

from benchbox import registry, training
from benchbox.cli import parse_run
from benchbox.interfaces import FitContext
from benchbox.runner import Reporter, run_cell

TINY = ["--dataset", "digits", "--generator.epochs", "3", "--generator.width", "8",
        "--policy", "ppo", "--policy.total-timesteps", "512", "--policy.num-envs", "8", "--policy.num-steps", "8",
        "--detector", "ae", "--detector.epochs", "2", "--detector.width", "8", "--device", "cpu"]


class Recorder(Reporter):
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def note(self, stage: str, message: str) -> None:
        self.events.append(("note", stage, message))

    def finish(self, stage: str, seconds: float) -> None:
        self.events.append(("finish", stage, ""))


def _notes(monkeypatch, after: float, probe: float) -> list[tuple[str, str, str]]:
    monkeypatch.setattr(training, "ESTIMATE_AFTER_S", after)
    monkeypatch.setattr(training, "ESTIMATE_PROBE_S", probe)
    rec = Recorder()
    run_cell(parse_run(TINY), rec, write=False)
    return rec.events


def test_long_stages_note_one_estimate_before_they_end(monkeypatch):
    events = _notes(monkeypatch, after=0.0, probe=0.0)
    notes = [(stage, msg) for kind, stage, msg in events if kind == "note"]
    assert [stage for stage, _ in notes] == ["fit generator", "fit policy", "fit detector"]
    gen, pol, det = (msg for _, msg in notes)
    assert re.fullmatch(r"96 images x 3 epochs at [\d.]+ images/s \(measured on the first \d+\): about \d+ s", gen), gen
    assert re.fullmatch(r"\d+ of 512 done in \d+ s: about \d+ s in all", pol), pol
    assert re.match(r"\d+ images x 2 epochs at ", det), det
    for stage, _ in notes:  # each before its stage's end
        assert events.index(("finish", stage, "")) > next(i for i, e in enumerate(events) if e[:2] == ("note", stage))


def test_short_stages_note_nothing(monkeypatch):
    assert not [e for e in _notes(monkeypatch, after=1e9, probe=0.0) if e[0] == "note"]


# -- epochs 0 (auto): the budget that follows the data ------------------------------------------------------


def test_auto_epochs_hand_computed():
    """2e9 pixel values at most above 64 px a side: 2e9 // (360 x 3 x 256 x 256) = 28 for the BMAD demo's
    180 + 180 images; 2e9 // (5088 x 196,608) = 1 for BMAD's full Histopathology train set."""
    auto = training.auto_epochs
    assert auto(0, 60, (360, 3, 256, 256)) == 28
    assert auto(0, 40, (5088, 3, 256, 256)) == 1
    assert auto(0, 60, (10**6, 3, 256, 256)) == 1  # never below one epoch
    assert auto(0, 60, (108, 1, 256, 256)) == 60  # 108 x 65,536 x 60 = 4.2e8: under the budget, as before
    assert auto(0, 200, (10**6, 3, 64, 64)) == 200  # up to 64 px a side: the usual epochs whatever the set size
    assert auto(0, 40, (800, 3, 65, 65)) == 40 and auto(0, 40, (5000, 3, 65, 65)) == 31  # 2e9 // 63,375,000
    assert auto(7, 60, (10**6, 3, 256, 256)) == 7  # a chosen number is kept


def _capped(monkeypatch, budget: int) -> tuple[FitContext, list[str]]:
    monkeypatch.setattr(training, "AUTO_EPOCHS_VALUES", budget)
    notes: list[str] = []
    return FitContext(device=torch.device("cpu"), seed=0, stage="fit detector", note=notes.append), notes


def test_transformer_auto_epochs_are_capped_noted_and_run(monkeypatch):
    """8 images of 1 x 72 x 72 with a budget of 3 epochs' worth of pixel values: 3 epochs run (one loss
    point each), the note names the option, and an explicit --detector.epochs is left alone."""
    images = torch.rand(8, 1, 72, 72)
    ctx, notes = _capped(monkeypatch, 8 * 72 * 72 * 3 + 5)
    det = registry.create("detectors", "transformer", dim=16, depth=1, heads=2, batch_size=8)
    det.fit(images, ctx)
    assert [s for s, _ in ctx.curves.series["train/masked_mse"]] == [1.0, 2.0, 3.0]
    assert ctx.curves.series["auto_epochs"] == [(0.0, 3.0)]
    assert notes == ["--detector.epochs 0 (auto): 3 epochs, not 60, for 8 images of 1x72x72 (at most 1.2e+05 "
                     "pixel values seen; set --detector.epochs to choose)"]
    ctx, notes = _capped(monkeypatch, 1)
    registry.create("detectors", "transformer", dim=16, depth=1, heads=2, batch_size=8, epochs=2).fit(images, ctx)
    assert len(ctx.curves.series["train/masked_mse"]) == 2 and not notes


def test_conv_generator_and_gan_auto_epochs_are_capped(monkeypatch):
    images = torch.rand(4, 1, 72, 72)
    ctx, notes = _capped(monkeypatch, 4 * 72 * 72 * 2)
    registry.create("generators", "ae", width=4, latent_dim=4).fit(images, ctx)
    assert len(ctx.curves.series["train/loss"]) == 2 and notes[0].startswith("--detector.epochs 0 (auto): 2 epochs, not 40")
    ctx, notes = _capped(monkeypatch, 4 * 72 * 72 * 2)
    gan = registry.create("generators", "dcgan", base_channels=4, latent_dim=4)
    assert gan.epochs((4, 1, 72, 72)) == (2, 2)
    ctx = dataclasses.replace(ctx, stage="fit generator")
    gan.fit(images, ctx)
    assert [n.split(":")[0] for n in notes] == ["--generator.epochs 0 (auto)", "--generator.encoder-epochs 0 (auto)"]
    assert ctx.curves.series["auto_epochs"] == [(0.0, 2.0)] and ctx.curves.series["auto_encoder_epochs"] == [(0.0, 2.0)]
