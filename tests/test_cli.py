"""The CLI end to end on `digits` with tiny budgets, and its one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

TINY = ["--dataset", "digits", "--generator.epochs", "2", "--generator.base-channels", "8",
        "--detector.epochs", "2", "--detector.dim", "32", "--detector.depth", "1", "--detector.heads", "2",
        "--detector.score-rounds", "1", "--device", "cpu"]


def bb(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchbox.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_run_end_to_end_writes_result_folder(tmp_path):
    out = bb("run", *TINY, "--out", str(tmp_path / "runs"), "--seed", "1", "--augment.ratio", "0.5")
    assert out.returncode == 0, out.stderr
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and not runs[0].name.startswith(".")
    files = {p.name for p in runs[0].iterdir()}
    assert {"result.json", "samples.png", "curves.png"} <= files
    result = json.loads((runs[0] / "result.json").read_text())
    assert result["metrics"]["image_auroc"] > 0.95  # digits class 0, these budgets: 0.997-1.0 over seeds 0-4
    assert set(result["metrics"]) >= {"image_auroc", "image_aupr", "image_f1_max"}
    cfg = result["config"]
    assert cfg["dataset"]["name"] == "digits" and cfg["generator"]["epochs"] == 2
    assert cfg["detector"]["dim"] == 32 and cfg["augment"]["ratio"] == 0.5 and cfg["seed"] == 1
    assert result["seed"] == 1 and result["device"] == "cpu"
    assert "torch" in result["versions"] and "benchbox" in result["versions"]
    assert set(result["timings"]) >= {"fit generator", "fit policy", "augment", "fit detector", "score", "total"}
    assert result["data"]["n_generated"] == round(0.5 * result["data"]["n_train"])
    assert result["plugins"]["detectors"]["distribution"] == "benchbox"
    assert "image_auroc" in out.stdout  # the rich metrics table


def test_run_help_lists_plugin_options():
    out = bb("run", "--dataset", "digits", "--help")
    assert out.returncode == 0
    for opt in ("--dataset.normal-class", "--dataset.train-limit", "--generator.latent-dim", "--detector.epochs",
                "--policy.step-size", "--policy.role", "--augment.ratio", "--seed", "--device"):
        assert opt in out.stdout, opt


def test_unknown_plugin_is_one_line(tmp_path):
    out = bb("run", "--detector", "transfomer", "--out", str(tmp_path))
    assert out.returncode == 2
    lines = [ln for ln in out.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "did you mean: transformer" in lines[0] and "Traceback" not in out.stderr
    assert not any(tmp_path.iterdir())


def test_bad_option_value_is_rejected(tmp_path):
    out = bb("run", *TINY, "--out", str(tmp_path), "--dataset.normal-class", "42")
    assert out.returncode == 2 and "normal-class 42" in out.stderr and "Traceback" not in out.stderr
    assert not any(tmp_path.iterdir()), "a failed run must leave no result folder behind"


def test_cuda_request_without_gpu_fails_clearly(tmp_path):
    import pytest
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the no-GPU error cannot be triggered here")
    out = bb("run", *TINY[:-2], "--device", "cuda", "--out", str(tmp_path))
    assert out.returncode == 2 and "--device cpu" in out.stderr


def test_list_and_unknown_command():
    out = bb("list", "detectors")
    assert out.returncode == 0 and "transformer" in out.stdout and "mnist" not in out.stdout
    out = bb("rnu")
    assert out.returncode == 2 and "did you mean 'run'" in out.stderr


# ------------------------------------------------------------------------------------------------
# Every user-facing error is one line naming the option and what it expects (exit code 2)
# ------------------------------------------------------------------------------------------------

import pytest  # noqa: E402

from benchbox import cli  # noqa: E402


def _one_line_error(capsys, *argv: str) -> str:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    lines = [ln for ln in captured.err.splitlines() if ln.strip()]
    assert code == 2, captured.err
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ") and "╭" not in captured.err and "usage:" not in captured.err
    return lines[0]


@pytest.mark.parametrize("argv,expected", [
    (["--detector.epochs", "abc"], "--detector.epochs expects an integer, got 'abc'"),
    (["--detector.epochs=abc"], "--detector.epochs expects an integer, got 'abc'"),
    (["--augment.ratio", "lots"], "--augment.ratio expects a number, got 'lots'"),
    (["--device", "gpu"], "--device expects one of auto, cpu, cuda, got 'gpu'"),
    (["--policy.role", "both"], "--policy.role expects one of normal, anomaly, got 'both'"),
    (["--detector.epochs"], "--detector.epochs needs a value: an integer"),
    (["--detector.epoch", "3"], "detector 'transformer' has no option --detector.epoch; did you mean --detector.epochs?"),
    (["--detector", "ae", "--detector.mask-ratio", "0.5"],
     "detector 'ae' has no option --detector.mask-ratio (benchbox run --detector ae --help lists the options)"),
    (["--seeds", "1"], "unknown option --seeds; did you mean --seed?"),
    (["digits"], "unexpected argument 'digits'"),
    (["--detector", "anomalib-padim", "--detector.pretrained", "false"],
     "--detector.pretrained is a switch and takes no value (got 'false'): use --detector.pretrained for true, "
     "--detector.no-pretrained for false"),
])
def test_run_option_errors_are_one_line(capsys, tmp_path, argv, expected):
    line = _one_line_error(capsys, "run", "--dataset", "digits", "--out", str(tmp_path), *argv)
    assert expected in line
    assert not any(tmp_path.iterdir())


def test_debug_shows_the_parser_message_and_traceback():
    out = bb("run", "--dataset", "digits", "--detector.epochs", "abc", "--debug")
    assert out.returncode == 2
    assert "Traceback" in out.stderr and "invalid literal for int()" in out.stderr  # tyro's own box
    assert out.stderr.strip().splitlines()[-1] == "error: --detector.epochs expects an integer, got 'abc'"


@pytest.mark.parametrize("argv,expected", [
    (["--seeds", "0,x"], "benchbox grid: --seeds: "),
    (["--threads", "two"], "benchbox grid: --threads expects an integer, got 'two'"),
    (["--workers", "1.5"], "benchbox grid: --workers expects an integer, got '1.5'"),
    (["--device", "gpu"], "benchbox grid: --device: invalid choice: 'gpu'"),
    (["--bogus"], "benchbox grid: unknown option --bogus"),
    (["--cache-dirr", "c"], "benchbox grid: unknown option --cache-dirr; did you mean --cache-dir?"),
    (["--datasets", "digits", "--set", "generator.epochs=abc", "--dry-run"],
     "generator 'ae' option 'epochs' expects an integer, got 'abc'"),
    (["--datasets", "digits", "--set", "generator.epoch=2", "--dry-run"],
     "[options.generator] 'epoch': no chosen generator has this option"),
])
def test_grid_option_errors_are_one_line(capsys, tmp_path, argv, expected):
    line = _one_line_error(capsys, "grid", *argv, "--results", str(tmp_path / "r.jsonl"))
    assert expected in line
    assert not (tmp_path / "r.jsonl").exists()


@pytest.mark.parametrize("argv,expected", [
    (["--verbos"], "benchbox list: unknown option --verbos; did you mean --verbose?"),
    (["--all"], "benchbox list: unknown option --all (options: --check, --verbose)"),
    (["detecters"], "unknown plugin group 'detecters'; expected one of: datasets, generators, policies, detectors; "
                    "did you mean detectors?"),
    (["datasets", "detectors"], "benchbox list takes at most one GROUP, got: datasets detectors"),
])
def test_list_errors_are_one_line(capsys, argv, expected):
    assert expected in _one_line_error(capsys, "list", *argv)


@pytest.mark.parametrize("argv,expected", [
    ([], "benchbox leaderboard: the following arguments are required: results"),
    (["r.jsonl", "--outt", "d"], "benchbox leaderboard: unknown option --outt; did you mean --out?"),
])
def test_leaderboard_errors_are_one_line(capsys, argv, expected):
    assert expected in _one_line_error(capsys, "leaderboard", *argv)


def test_list_verbose_shows_options_types_defaults_and_docs(capsys):
    assert cli.main(["list", "policies", "--verbose"]) == 0
    out = capsys.readouterr().out
    assert "random (policy, benchbox" in out and "Random dz ~ N(0, (sigma * std_z)^2)" in out
    sections: dict[str, dict[str, list[str]]] = {}  # plugin -> its option rows (several policies share names)
    for ln in out.splitlines():
        if ln and not ln.startswith(" "):
            rows = sections.setdefault(ln.split()[0], {})
        elif ln.strip().startswith("--policy."):
            rows[ln.split()[0]] = ln.split(None, 3)[1:]
    rows = sections["random"]
    assert rows["--policy.sigma"][:2] == ["float", "0.5"]
    assert rows["--policy.sigma"][2].startswith("Step size in units of the per-dimension std")
    from benchbox_plugins.policies.ppo import PPOPolicy

    assert sections["ppo"]["--policy.role"][:2] == ["{normal,anomaly}", "'normal'"]
    assert sections["ppo"]["--policy.total-timesteps"][:2] == ["int", str(PPOPolicy.Config().total_timesteps)]
    assert "none (policy, benchbox" in out and "(no options)" in out
    assert "--detector." not in out and "--dataset." not in out
