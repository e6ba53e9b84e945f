"""benchmarks/gpu_check.sh: bad arguments, the results file it writes, and (slow) a real run on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
HELPER = ROOT / "benchmarks" / "gpu_check.py"


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS="1")
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=ROOT)


@pytest.mark.parametrize("args, message", [
    (["--device", "tpu"], "--device must be cuda or cpu, got 'tpu'"),
    (["--parts", "default_cell,warp"], "--parts: unknown part 'warp'"),
    (["--frobnicate"], "unknown option '--frobnicate'"),
    (["b"], "one RESULTS_DIR only"),
])
def test_bad_arguments_are_one_line_and_exit_2(tmp_path, args, message):
    out = tmp_path / "out"
    proc = run(str(out), *args)
    assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()  # checked before anything is made


def test_collect_writes_the_json_and_the_md_from_it(tmp_path):
    """Parts recorded by the helper (one passed, one failed, one skipped) -> one JSON with provenance, an .md
    from it, exit code 1 because a part failed."""
    steps, work = tmp_path / "steps.jsonl", tmp_path / "work"
    (work / "latent_env").mkdir(parents=True)
    (work / "latent_env" / "latent_env_speed_cpu.json").write_text(json.dumps(
        {"rows": [{"num_envs": 4, "vector_steps_per_s": 10.0, "step_over_floor": 1.1, "rounds": {}}]}))
    log = tmp_path / "x.log"
    log.write_text("line\n" * 1000)
    py = [sys.executable, str(HELPER)]
    subprocess.run([*py, "record", str(steps), "latent_env", "0", "10.0", "12.5", "60", str(log), "--", "python",
                    "x.py"], check=True)
    subprocess.run([*py, "record", str(steps), "backbone", "124", "0", "60", "60", str(log), "--", "b"], check=True)
    subprocess.run([*py, "skip", str(steps), "grid_ray", "no namespace"], check=True)
    out = tmp_path / "results"
    out.mkdir()
    proc = subprocess.run([*py, "collect", str(work), str(steps), str(out), "cpu", "0", "1"], capture_output=True,
                          text=True)
    assert proc.returncode == 1, proc.stderr
    doc = json.loads((out / "gpu_check_cpu.json").read_text())
    assert not doc["passed"] and doc["config"]["quick"]
    parts = {p["part"]: p for p in doc["parts"]}
    assert parts["latent_env"]["numbers"] == [{"num_envs": 4, "vector_steps_per_s": 10.0, "step_over_floor": 1.1}]
    assert parts["latent_env"]["wall_s"] == 2.5 and parts["latent_env"]["command"] == "python x.py"
    assert parts["backbone"]["timed_out"] and parts["backbone"]["numbers"] is None
    assert len(parts["backbone"]["log_tail"]) == 1500
    assert parts["grid_ray"] == {"part": "grid_ray", "skipped": "no namespace"}
    assert {"versions", "device", "commit", "wall_seconds"} <= set(doc["provenance"])
    md = (out / "gpu_check_cpu.md").read_text()
    assert "| backbone | 124 (timed out) | 60.0 |" in md and "| grid_ray | - | - | skipped: no namespace |" in md


@pytest.mark.slow
def test_the_script_runs_on_the_cpu(tmp_path):
    """--device cpu --quick for the parts that fit a test: the latent env speed and the default cell."""
    proc = run("--device", "cpu", "--quick", "--parts", "latent_env,default_cell", str(tmp_path), timeout=180)
    doc = json.loads((tmp_path / "gpu_check_cpu.json").read_text())
    assert proc.returncode == 0 and doc["passed"], proc.stderr + json.dumps(doc["parts"], indent=1)
    parts = {p["part"]: p for p in doc["parts"]}
    assert [r["num_envs"] for r in parts["latent_env"]["numbers"]] == [1, 64, 1024]
    assert 0.5 < parts["default_cell"]["numbers"]["image_auroc"] <= 1.0
    assert parts["default_cell"]["numbers"]["device"] == "cpu"
    assert (tmp_path / "gpu_check_cpu.md").read_text().startswith("# GPU readiness check (cpu, quick budgets)")
