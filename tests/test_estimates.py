"""The one-line time estimate a long training stage prints before it gets going (issue 16 part 2).

The thresholds are lowered to zero here so that a seconds-long cell is "long": every stage with a
training loop then notes exactly one estimate -- train_epochs' own (images x epochs at the measured
images/s) for the generator, and the runner's (from the stage's progress fraction) for a loop such
as PPO that does not note one itself -- and it comes before the stage ends.
"""

from __future__ import annotations

import re

from benchbox import training
from benchbox.cli import parse_run
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
