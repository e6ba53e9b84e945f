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
    assert 0.0 <= result["metrics"]["image_auroc"] <= 1.0
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
    import torch

    if torch.cuda.is_available():
        return
    out = bb("run", *TINY[:-2], "--device", "cuda", "--out", str(tmp_path))
    assert out.returncode == 2 and "--device cpu" in out.stderr


def test_list_and_unknown_command():
    out = bb("list", "detectors")
    assert out.returncode == 0 and "transformer" in out.stdout and "mnist" not in out.stdout
    out = bb("rnu")
    assert out.returncode == 2 and "did you mean 'run'" in out.stderr
