"""Issue 19's bad inputs: each is rejected with exit code 2 and one line naming the flag (or file),
before any data is loaded, leaving no run folder or results file behind."""

from __future__ import annotations

import sys

import pytest
import torch

import benchbox
from benchbox import registry
from benchbox.cli import main
from benchbox.errors import ConfigError
from rel_util import GRID_TINY, bb, leftovers, one_error_line


@pytest.fixture(autouse=True)
def no_data_loading(tmp_path, monkeypatch):
    """Loading any dataset fails the test: every rejection below must come before the first stage."""
    monkeypatch.setenv("BENCHBOX_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("BENCHBOX_DEBUG", raising=False)
    digits = registry.load("datasets", "digits")

    def load(self, seed):
        raise AssertionError("data was loaded before the bad option was rejected")

    monkeypatch.setattr(digits, "load", load)


def rejected(capsys, *args: str) -> str:
    capsys.readouterr()
    try:
        code = main(list(args))
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    return one_error_line(err)


@pytest.mark.parametrize("flags, message", [
    (["--detector.epochs", "-3"], "--detector.epochs expects an integer >= 0, got -3"),
    (["--detector.batch-size", "-3"], "--detector.batch-size expects an integer >= 1, got -3"),
    (["--detector", "ae", "--detector.batch-size", "0"], "--detector.batch-size expects an integer >= 1, got 0"),
    (["--generator.epochs", "-3"], "--generator.epochs expects an integer >= 0, got -3"),
    (["--generator", "dcgan", "--generator.encoder-epochs", "-1"],
     "--generator.encoder-epochs expects an integer >= 0, got -1"),
    (["--detector.mask-ratio", "1"], "--detector.mask-ratio expects a number in (0, 1), got 1.0"),
    (["--dataset.val-fraction", "1.5"], "--dataset.val-fraction expects a number in [0, 1), got 1.5"),
    (["--policy", "random", "--policy.sigma", "-1"], "--policy.sigma expects a number >= 0, got -1.0"),
    (["--policy", "ppo", "--policy.gamma", "1.5"], "--policy.gamma expects a number in [0, 1], got 1.5"),
    (["--policy", "ppo", "--policy.total-timesteps", "-1"], "--policy.total-timesteps expects an integer >= 0, got -1"),
])
def test_out_of_bounds_option_is_one_line_naming_the_flag(tmp_path, capsys, flags, message):
    out = tmp_path / "runs"
    line = rejected(capsys, "run", "--dataset", "digits", *flags, "--device", "cpu", "--out", str(out))
    assert line == f"error: {message}"
    assert "load data" not in line and "stage" not in line
    assert not out.exists() and not leftovers(tmp_path)


def _weights_files(tmp_path):
    (tmp_path / "notes.txt").write_text("not a checkpoint\n")
    (tmp_path / "random.pt").write_bytes(bytes(range(256)) * 8)
    torch.save({"epoch": 3, "names": ["a", "b"]}, tmp_path / "no_tensors.pt")
    import argparse  # an arbitrary class inside: only a full (unsafe) unpickling reads it; weights_only refuses

    torch.save({"w": torch.zeros(2), "obj": argparse.Namespace(a=1)}, tmp_path / "pickled.pt")
    return ["notes.txt", "random.pt", "no_tensors.pt", "pickled.pt", "missing.pt"]


def test_weights_file_is_checked_up_front_without_torch_advice(tmp_path, capsys):
    out = tmp_path / "runs"
    for name in _weights_files(tmp_path):
        path = str(tmp_path / name)
        line = rejected(capsys, "run", "--dataset", "digits", "--detector", "anomalib-padim",
                        "--detector.weights", path, "--device", "cpu", "--out", str(out))
        assert line == (f"error: --detector.weights expects a PyTorch state-dict file (a dict of tensors saved with "
                        f"torch.save(model.state_dict(), PATH)), or '' for none, got {path!r}")
        assert "weights_only" not in line and "inline_container" not in line
    assert not out.exists()


def test_a_real_state_dict_passes_the_check(tmp_path):
    from benchbox.options import state_dict_file

    torch.save(torch.nn.Linear(3, 2).state_dict(), tmp_path / "good.pt")
    torch.save({"state_dict": torch.nn.Linear(3, 2).state_dict(), "epoch": 1}, tmp_path / "nested.pt")
    assert state_dict_file.ok(str(tmp_path / "good.pt")) and state_dict_file.ok(str(tmp_path / "nested.pt"))
    assert state_dict_file.ok("")  # unset


def test_grid_with_an_out_of_bounds_option_writes_no_results(tmp_path, capsys):
    results = tmp_path / "r.jsonl"
    line = rejected(capsys, "grid", *GRID_TINY, "--set", "detector.epochs=-3", "--results", str(results))
    assert line == "error: detector 'ae' option 'epochs' expects an integer >= 0, got -3"
    assert not results.exists() and not (tmp_path / "r-runs").exists()


def test_api_rejects_the_same_options_before_running(tmp_path):
    with pytest.raises(ConfigError, match=r"^detector 'ae' option 'epochs' expects an integer >= 0, got -3$"):
        benchbox.run(dataset="digits", detector="ae", detector_epochs=-3, out=str(tmp_path / "runs"))
    with pytest.raises(ConfigError, match=r"^generator 'ae' option 'batch_size' expects an integer >= 1, got 0$"):
        benchbox.run(dataset="digits", generator=("ae", {"batch_size": 0}), out=str(tmp_path / "runs"))
    assert not (tmp_path / "runs").exists()


def test_runner_checks_a_hand_built_spec_before_the_first_stage(tmp_path):
    """A CellSpec built around the checks (a Config made by hand) still fails before 'load data'."""
    from benchbox.config import CellSpec, PluginChoice
    from benchbox.runner import run_cell

    spec = CellSpec.of(dataset="digits", generator="ae", policy="none", detector="ae")
    det = registry.load("detectors", "ae").Config(epochs=-3)
    spec.plugins["detector"] = PluginChoice("ae", det)
    spec.run.out = str(tmp_path / "runs")
    with pytest.raises(ConfigError, match=r"^--detector.epochs expects an integer >= 0, got -3$"):
        run_cell(spec)
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------------------------- tracking


def test_log_without_the_tracking_extra_is_one_line_before_the_run(tmp_path):
    """An environment without mlflow (sys.modules entry None: every import of it fails)."""
    code = ("import sys; sys.modules['mlflow'] = None; from benchbox.cli import main; "
            f"sys.exit(main(['run', '--dataset', 'digits', '--log', 'mlflow', '--out', {str(tmp_path / 'runs')!r}]))")
    import os
    import subprocess

    env = dict(os.environ, BENCHBOX_CACHE=str(tmp_path / "cache"), HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert one_error_line(proc.stderr) == ("error: --log mlflow needs the mlflow package, which is not installed: "
                                           "pip install 'benchbox[tracking]'")
    assert not (tmp_path / "runs").exists()


def test_unknown_log_target_is_one_line(tmp_path, capsys):
    line = rejected(capsys, "run", "--dataset", "digits", "--log", "wandb", "--out", str(tmp_path / "runs"))
    assert line == "error: --log 'wandb': expected one of mlflow, tensorboard"
    line = rejected(capsys, "grid", *GRID_TINY, "--log", "wandb", "--results", str(tmp_path / "r.jsonl"))
    assert line == "error: --log 'wandb': expected one of mlflow, tensorboard"
    assert not (tmp_path / "runs").exists() and not (tmp_path / "r.jsonl").exists()


def test_unreachable_tracking_server_is_one_line_before_the_run(tmp_path, capsys):
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    line = rejected(capsys, "run", "--dataset", "digits", "--log", "mlflow", "--log-uri", f"http://127.0.0.1:{port}",
                    "--out", str(tmp_path / "runs"))
    assert line.startswith(f"error: --log-uri http://127.0.0.1:{port}: no MLflow tracking server answers there")
    assert not (tmp_path / "runs").exists()


# --------------------------------------------------------------------- plugins and results files


def test_list_check_shows_a_plugin_modules_real_import_error(extra_site, capsys):
    """A module that raises before its class is defined: the real ImportError, not 'defines no X'."""
    from conftest import make_distribution

    make_distribution(extra_site, "brokenplug", {"benchbox.detectors": {"needs-lib": "needslib:NeedsLib"}}, {
        "needslib": '''
            import os
            if not os.environ.get("NEEDSLIB_BACKEND"):
                raise ImportError("needslib needs its GPU backend: pip install needslib[gpu]")
            else:
                class NeedsLib:
                    """Never defined here."""
        '''})
    registry.clear_cache()
    info = next(p for p in registry.list_plugins("detectors", check=True) if p.name == "needs-lib")
    assert info.error == ("detector plugin 'needs-lib' (needslib:NeedsLib, from brokenplug) is broken: "
                          "ImportError: needslib needs its GPU backend: pip install needslib[gpu]")
    static = next(p for p in registry.list_plugins("detectors") if p.name == "needs-lib")
    assert static.error is None and static.description == "Never defined here."  # no false 'defines no'
    capsys.readouterr()
    assert main(["list", "detectors", "--check"]) == 1
    out = capsys.readouterr().out
    assert "ImportError" in out and "defines no" not in out


def test_leaderboard_of_garbage_counts_the_unreadable_lines(tmp_path, capsys):
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("hello\n{not json\n\n[1, 2, 3]\n\"a string\"\n")
    line = rejected(capsys, "leaderboard", str(garbage), "--out", str(tmp_path / "board"))
    assert line == (f"error: {garbage}: none of its 4 non-empty line(s) is a benchbox result row (JSON with a "
                    "config_hash); nothing to rank")
    assert not (tmp_path / "board").exists()


def test_leaderboard_of_an_empty_file_names_it(tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    line = rejected(capsys, "leaderboard", str(empty), "--out", str(tmp_path / "board"))
    assert line == f"error: {empty}: empty (no result rows); nothing to rank"
    assert not (tmp_path / "board").exists()


def test_subprocess_run_with_bad_option_loads_nothing(tmp_path):
    """The same rejection from a real process: exit 2, one line, no run folder (no monkeypatching)."""
    proc = bb("run", "--dataset", "digits", "--detector.epochs", "-3", "--out", str(tmp_path / "runs"),
              cache=tmp_path / "cache")
    assert proc.returncode == 2
    assert one_error_line(proc.stderr) == "error: --detector.epochs expects an integer >= 0, got -3"
    assert not (tmp_path / "runs").exists()


# ------------------------------------------- issue 19's list, as a user types it (real processes)


def test_subprocess_generator_epochs_is_refused_before_any_stage(tmp_path):
    """The input once reported as "stage 'load data' failed": now one line naming the flag, and no
    stage starts (a started stage prints a 'load data' progress line on stderr when not a terminal)."""
    proc = bb("run", "--dataset", "digits", "--generator.epochs", "-3", "--out", str(tmp_path / "runs"),
              cache=tmp_path / "cache")
    assert proc.returncode == 2
    assert one_error_line(proc.stderr) == "error: --generator.epochs expects an integer >= 0, got -3"
    assert "load data" not in proc.stderr and "stage" not in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_subprocess_weights_that_are_not_a_checkpoint_are_refused_before_any_stage(tmp_path):
    """The input once answered with torch's inline_container / weights_only advice after the generator trained."""
    for name in ("notes.txt", "random.pt"):
        _weights_files(tmp_path)
        proc = bb("run", "--dataset", "digits", "--detector", "anomalib-padim", "--detector.weights",
                  str(tmp_path / name), "--out", str(tmp_path / "runs"), cache=tmp_path / "cache")
        assert proc.returncode == 2
        line = one_error_line(proc.stderr)
        assert line.startswith("error: --detector.weights expects a PyTorch state-dict file")
        for torch_words in ("weights_only", "inline_container", "Unpickling", "enforce fail", "fit generator", "stage"):
            assert torch_words not in proc.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("setting, message", [
    ("generator.epochs=-3", "generator 'ae' option 'epochs' expects an integer >= 0, got -3"),
    ("detector.batch_size=0", "detector 'ae' option 'batch_size' expects an integer >= 1, got 0"),
])
def test_grid_refuses_issue_19s_options_before_any_cell(tmp_path, capsys, setting, message):
    results = tmp_path / "r.jsonl"
    line = rejected(capsys, "grid", *GRID_TINY, "--set", setting, "--results", str(results))
    assert line == f"error: {message}"
    assert not results.exists() and not (tmp_path / "r-runs").exists()


def test_grid_refuses_a_weights_file_that_is_not_a_checkpoint(tmp_path, capsys):
    _weights_files(tmp_path)
    results = tmp_path / "r.jsonl"
    path = str(tmp_path / "notes.txt")
    line = rejected(capsys, "grid", "--datasets", "digits", "--generators", "ae", "--policies", "none", "--detectors",
                    "anomalib-padim", "--seeds", "0", "--device", "cpu", "--set", f"detector.weights={path!r}",
                    "--results", str(results))
    assert line == ("error: detector 'anomalib-padim' option 'weights' expects a PyTorch state-dict file (a dict of "
                    f"tensors saved with torch.save(model.state_dict(), PATH)), or '' for none, got {path!r}")
    assert not results.exists()


def test_leaderboard_of_a_missing_file_is_one_line(tmp_path, capsys):
    line = rejected(capsys, "leaderboard", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "board"))
    assert line == f"error: results file {tmp_path / 'nope.jsonl'} not found"
    assert not (tmp_path / "board").exists()
