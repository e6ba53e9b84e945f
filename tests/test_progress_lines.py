"""Progress as plain lines when stdout is not a terminal (a log, a pipe): per stage of a run and per
grid, paced by a fake clock in the unit tests, and read from a real CLI run with stdout piped."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from types import SimpleNamespace

from benchbox.progress import GridLines, LineReporter
from benchbox.runner import STAGES

TINY = ["--dataset", "digits", "--generator.epochs", "3", "--generator.base-channels", "8",
        "--policy", "ppo", "--policy.total-timesteps", "512", "--policy.num-envs", "8", "--policy.num-steps", "8",
        "--detector.epochs", "2", "--detector.dim", "32", "--detector.depth", "1", "--detector.heads", "2",
        "--detector.score-rounds", "1", "--device", "cpu"]


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_stage_lines_every_tenth_with_images_per_second():
    clock, buf = Clock(), io.StringIO()
    r = LineReporter(buf, clock=clock, heartbeat=None)
    r.start("fit generator")
    for epoch in range(1, 41):  # 40 epochs of 100 images, one second each
        clock.t += 1.0
        r.processed("fit generator", 100, "images")
        r.update("fit generator", epoch, 40)
    r.finish("fit generator", 40.0)
    lines = buf.getvalue().splitlines()
    assert lines[0] == "fit generator: started"
    assert lines[1] == "fit generator: 4/40 (10%), 100.0 images/s, 4.0 s elapsed, about 36.0 s left"
    assert [int(re.match(r"fit generator: (\d+)/40", x).group(1)) for x in lines[1:-1]] == list(range(4, 40, 4))
    assert lines[-1] == "fit generator: done in 40.0 s (100.0 images/s)"


def test_slow_stage_prints_every_30_seconds_and_steps_per_second():
    clock, buf = Clock(), io.StringIO()
    r = LineReporter(buf, clock=clock, heartbeat=None)
    r.start("fit policy")
    for step in range(1, 131):  # 1000 steps in all, 1 per second: 10 % only after 100 s
        clock.t += 1.0
        r.update("fit policy", step, 1000)
    lines = buf.getvalue().splitlines()[1:]
    assert [re.match(r"fit policy: (\d+)/", x).group(1) for x in lines] == ["30", "60", "90", "100", "130"]
    assert lines[0] == "fit policy: 30/1000 (3%), 1.0 steps/s, 30.0 s elapsed, about 16 min 10 s left"


def test_heartbeat_speaks_during_a_silent_stretch():
    clock, buf = Clock(), io.StringIO()
    r = LineReporter(buf, clock=clock, heartbeat=None)
    r.start("fit detector")
    clock.t += 29.0
    r._beat()  # what the heartbeat thread calls every second
    clock.t += 2.0
    r.processed("fit detector", 62, "images")  # inside the first epoch: no progress() yet
    r._beat()
    assert buf.getvalue().splitlines()[1:] == ["fit detector: 2.0 images/s, 31.0 s elapsed"]
    r.finish("fit detector", 40.0)
    r._beat()  # no stage running: nothing
    assert buf.getvalue().splitlines()[-1] == "fit detector: done in 40.0 s (1.6 images/s)"


def test_grid_lines_cells_done_and_eta():
    clock, buf = Clock(), io.StringIO()
    outcome = SimpleNamespace(total=22, skipped=2, failed=0, stage_hits=0)
    g = GridLines(buf, clock=clock, heartbeat=None)
    g.begin(outcome)
    for cell in range(20):
        g.started(None)
        clock.t += 6.0
        outcome.failed += cell == 4
        outcome.stage_hits += 2
        g.finished({}, outcome)
    lines = buf.getvalue().splitlines()
    assert lines[0] == "grid: 20 cells to run (2 of 22 already in results)"
    assert lines[1] == "grid: 2/20 cells done (0 failed, 0 running, 4 stage-cache hits), 12.0 s elapsed, ETA 1 min 48 s"
    assert [int(re.match(r"grid: (\d+)/20", x).group(1)) for x in lines[1:]] == list(range(2, 21, 2))
    assert lines[-1] == "grid: 20/20 cells done (1 failed, 0 running, 40 stage-cache hits), 2 min 00 s elapsed"
    quiet = io.StringIO()
    q = GridLines(quiet, quiet=True, clock=clock)
    q.begin(outcome)
    q.finished({}, outcome)
    q.stop()
    assert quiet.getvalue() == ""


def _cli(*args: str) -> subprocess.CompletedProcess:
    # stdout is a pipe, as in `benchbox run ... > log`
    return subprocess.run([sys.executable, "-m", "benchbox.cli", *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=300)


def test_redirected_run_logs_every_stage_and_quiet_logs_none(tmp_path):
    out = _cli("run", *TINY, "--out", str(tmp_path / "runs"))
    assert out.returncode == 0, out.stderr
    log = out.stdout.splitlines()
    for stage in STAGES:
        assert f"{stage}: started" in log, stage
        assert any(re.fullmatch(rf"{stage}: done in [\d.]+ s( \(.*\))?", x) for x in log), stage
    assert any(re.fullmatch(r"fit generator: \d/3 \(\d+%\), [\d.]+ images/s, .* elapsed, about .* left", x) for x in log)
    assert any(re.fullmatch(r"fit policy: \d+/512 \(\d+%\), [\d.]+ steps/s, .*", x) for x in log)
    assert log.index("fit generator: started") < log.index("fit policy: started") < log.index("score: started")
    assert "image_auroc" in out.stdout and "fit generator" not in out.stderr  # no bars besides the lines

    quiet = _cli("run", *TINY, "--out", str(tmp_path / "runs"), "--quiet")
    assert quiet.returncode == 0, quiet.stderr
    assert "image_auroc" in quiet.stdout  # the result still prints
    assert not [x for x in quiet.stdout.splitlines() if x.startswith(STAGES)]
    assert "fit generator" not in quiet.stderr


def test_redirected_grid_logs_cells_and_quiet_logs_none(tmp_path):
    args = ["grid", "--datasets", "digits", "--generators", "ae", "--policies", "none,random", "--detectors", "ae",
            "--seeds", "0", "--set", "generator.epochs=1", "--set", "generator.base_channels=8",
            "--set", "detector.epochs=1", "--no-run-folders", "--cache-dir", str(tmp_path / "cache")]
    out = _cli(*args, "--results", str(tmp_path / "a.jsonl"))
    assert out.returncode == 0, out.stderr
    log = out.stdout.splitlines()
    assert log[0] == "grid: 2 cells to run (0 of 2 already in results)"
    assert re.fullmatch(r"grid: 1/2 cells done \(0 failed, \d running, \d stage-cache hits\), .* elapsed, ETA .*", log[1])
    assert re.fullmatch(r"grid: 2/2 cells done \(0 failed, 0 running, \d stage-cache hits\), [^,]* elapsed", log[2])
    quiet = _cli(*args, "--results", str(tmp_path / "b.jsonl"), "--quiet")
    assert quiet.returncode == 0, quiet.stderr
    assert not [x for x in quiet.stdout.splitlines() if x.startswith("grid:")]
    assert "2 cells: 2 run" in quiet.stdout
