"""Grid runner: cells, resume, failures, torn lines, SIGKILL resume, process pool and Ray backends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchbox.grid import run_grid
from benchbox.gridspec import GridSpec
from benchbox.results import append_row, latest_rows, read_rows

TINY_OPTS = {
    "generator": {"epochs": 1, "base_channels": 8, "latent_dim": 8},
    "detector": {"epochs": 1, "transformer": {"dim": 32, "depth": 1, "heads": 2, "score_rounds": 1}},
    "policy": {"ppo": {"total_timesteps": 256, "num_steps": 16, "num_envs": 4, "n_epochs": 1}},
    "dataset": {"train_limit": 200},
}
SET = [f"--set={k}.{o}={v}" for k, t in TINY_OPTS.items() for o, v in t.items() if not isinstance(v, dict)]
SET += [f"--set={k}.{p}.{o}={v}" for k, t in TINY_OPTS.items() for p, d in t.items() if isinstance(d, dict)
        for o, v in d.items()]


def tiny_grid(**axes) -> GridSpec:
    base = dict(datasets=["digits"], generators=["ae"], policies=["none", "random"], detectors=["ae"], seeds=[0],
                device="cpu", threads=1, augment={"ratio": 0.5}, options=json.loads(json.dumps(TINY_OPTS)))
    base.update(axes)
    return GridSpec(**base)


def bb(*args: str, cwd: Path | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchbox.cli", *args], capture_output=True, text=True, cwd=cwd, **kw)


def test_cells_product_and_options(tmp_path):
    cells = tiny_grid(generators=["ae", "vae"], detectors=["ae", "transformer"], seeds=[0, 1]).cells()
    assert len(cells) == 2 * 2 * 2 * 2 and len({c.hash() for c in cells}) == 16
    t = next(c for c in cells if c["detector"].name == "transformer")
    assert t["detector"].config.dim == 32 and t["detector"].config.epochs == 1 and t["generator"].config.epochs == 1
    a = next(c for c in cells if c["detector"].name == "ae")
    assert a["detector"].config.epochs == 1
    # cells sharing a generator (and seed) are adjacent, so the cache is hit right away
    gens = [(c["generator"].name, c.run.seed) for c in cells]
    assert gens == sorted(gens, key=gens.index)


def test_spec_errors_are_one_line(tmp_path):
    from benchbox.errors import ConfigError

    with pytest.raises(ConfigError, match="no chosen generator has this option"):
        tiny_grid(options={"generator": {"epoch": 1}}).cells()
    bad = tmp_path / "bad.toml"
    bad.write_text("[grid]\ndatasets = ['digits']\nseed = [0]\n")
    with pytest.raises(ConfigError, match="unknown key.*seed"):
        GridSpec.from_toml(bad)


def test_default_grid_spec_parses():
    spec = GridSpec.from_toml(Path(__file__).parents[1] / "benchmarks" / "default_grid.toml")
    cells = spec.cells()
    assert len(spec.seeds) >= 3 and "none" in spec.policies and len(cells) >= 12


def test_run_resume_failure_and_torn_line(tmp_path):
    results = tmp_path / "r.jsonl"
    spec = tiny_grid(policies=["none", {"name": "random", "sigma": 0.25}, "random"])
    cells = spec.cells(out=str(tmp_path / "runs"))
    bad = next(c for c in cells if c["policy"].name == "random" and c["policy"].config.sigma == 0.25)
    bad["policy"].config.sigma = -1.0  # set past the spec's checks: the runner's own check fails this cell
    out = run_grid(cells, results, str(tmp_path / "cache"))
    assert (out.ok, out.failed, out.skipped) == (2, 1, 0)
    assert out.generator_trainings == 1  # the second ok cell reused the generator
    rows, bad = read_rows(results)
    assert bad == 0 and len(rows) == 3
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 1 and "\n" not in failed[0]["error"]
    assert failed[0]["error"] == "ConfigError: --policy.sigma expects a number >= 0, got -1.0"
    # a killed writer's torn tail: ignored and reported, and the next row still lands on its own line
    with open(results, "ab") as fh:
        fh.write(b'{"config_hash": "torn", "status": "o')
    again = run_grid(cells, results, str(tmp_path / "cache"))
    assert (again.ok, again.failed, again.skipped, again.torn_lines) == (0, 0, 3, 1)
    append_row(results, {"config_hash": "x", "status": "ok"})
    rows, bad = read_rows(results)
    assert bad == 1 and rows[-1]["config_hash"] == "x" and len(rows) == 4


def test_cli_dry_run_shows_cached_stages_and_exit_code(tmp_path):
    args = ["grid", "--datasets", "digits", "--generators", "ae", "--policies", "none,nope", "--detectors", "ae",
            "--seeds", "0", "--device", "cpu", *SET, "--results", str(tmp_path / "r.jsonl"),
            "--cache-dir", str(tmp_path / "c")]
    out = bb(*args)
    assert out.returncode == 2 and "unknown policy 'nope'" in out.stderr and "Traceback" not in out.stderr
    args[args.index("none,nope")] = "none"
    out = bb(*args, "--dry-run")
    table = out.stdout.split("combinations:")[0]  # the cell table, before the plan's summary lines
    assert out.returncode == 0 and "todo" in table and "generator" not in table.split("seed")[-1]
    out = bb(*args, "--no-run-folders")
    assert out.returncode == 0, out.stderr
    assert "1 generator trainings" in out.stdout
    out = bb(*args, "--dry-run")
    assert "ok" in out.stdout and "generator, policy, augment" in out.stdout


@pytest.mark.slow
def test_sigkill_mid_grid_then_rerun_gives_each_cell_once(tmp_path):
    results = tmp_path / "r.jsonl"
    args = ["grid", "--datasets", "digits", "--generators", "ae", "--policies", "none,random",
            "--detectors", "ae", "--seeds", "0,1,2", "--device", "cpu", "--threads", "1", *SET,
            "--results", str(results), "--cache-dir", str(tmp_path / "c"), "--no-run-folders"]
    proc = subprocess.Popen([sys.executable, "-m", "benchbox.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if len(read_rows(results)[0]) >= 2:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the grid finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = len(read_rows(results)[0])
    assert 2 <= before < 6
    out = bb(*args)
    assert out.returncode == 0, out.stderr
    rows, bad = read_rows(results)
    hashes = [r["config_hash"] for r in rows]
    assert len(hashes) == 6 == len(set(hashes)), hashes
    assert all(r["status"] == "ok" for r in rows)
    assert f"{before} already in results" in out.stdout


@pytest.mark.slow
def test_process_pool_matches_sequential(tmp_path):
    cells = tiny_grid().cells(out=str(tmp_path / "runs"))
    seq = run_grid(cells, tmp_path / "a.jsonl", None, write_runs=False)
    par = run_grid(cells, tmp_path / "b.jsonl", str(tmp_path / "c"), workers=2, write_runs=False)
    assert seq.ok == par.ok == 2
    a = {h: r["metrics"] for h, r in latest_rows(read_rows(tmp_path / "a.jsonl")[0]).items()}
    b = {h: r["metrics"] for h, r in latest_rows(read_rows(tmp_path / "b.jsonl")[0]).items()}
    assert a == b


@pytest.mark.slow
def test_ray_backend_matches_sequential(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'benchbox[grid-ray]')")
    cells = tiny_grid(policies=["none", "random"], detectors=["ae"]).cells(out=str(tmp_path / "runs"))
    seq = run_grid(cells, tmp_path / "seq.jsonl", str(tmp_path / "c1"), write_runs=False)
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    except Exception as exc:  # pragma: no cover - environment without a usable Ray
        pytest.skip(f"a local Ray could not be started here: {type(exc).__name__}: {exc}")
    try:
        out = run_grid(cells, tmp_path / "ray.jsonl", str(tmp_path / "c2"), backend="ray", write_runs=False)
    finally:
        ray.shutdown()
    assert seq.ok == out.ok == 2 and out.failed == 0
    a = {h: r["metrics"] for h, r in latest_rows(read_rows(tmp_path / "seq.jsonl")[0]).items()}
    b = {h: r["metrics"] for h, r in latest_rows(read_rows(tmp_path / "ray.jsonl")[0]).items()}
    assert a == b and len(a) == 2
