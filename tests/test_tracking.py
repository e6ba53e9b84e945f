"""Tracking export: a 4-cell digits grid logged to a real local MLflow store and a real TensorBoard
event file, both read back with the libraries' own readers (MlflowClient, EventAccumulator)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchbox import tracking
from benchbox.errors import ConfigError

# sqlalchemy 2.1 warns about a loader strategy MLflow's store still uses; nothing of ours
pytestmark = pytest.mark.filterwarnings("ignore:.*noload.*:DeprecationWarning")
SKIP = "the tracking extra is not installed: pip install 'benchbox[tracking]'"


def _has(*modules: str) -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in modules)



# ---------------------------------------------------------------------------------------------
# Pure helpers: exact values
# ---------------------------------------------------------------------------------------------


def test_flatten_params_metrics_curves_exact():
    row = {
        "config": {"dataset": {"name": "digits", "train_limit": 60}, "generator": {"name": "ae", "sizes": [8, 16]},
                   "policy": {"name": "none"}, "augment": {}, "seed": 1, "device": "cpu"},
        "config_hash": "abc123def456",
        "metrics": {"image_auroc": 0.75, "pixel_auroc": None, "gen_fid": float("nan"), "note": "x", "flag": True},
        "timings": {"fit generator": 1.5, "total": 2.0},
        "curves": {"generator": {"train/loss": [[1.0, 0.5], [2.0, 0.25]]},
                   "policy": {"reward": [[0.5, 1.0], [1.5, float("inf")], [2.5, 3.0]]}, "detector": {}},
    }
    assert tracking.params(row) == {
        "dataset.name": "digits", "dataset.train_limit": "60", "generator.name": "ae", "generator.sizes": "[8, 16]",
        "policy.name": "none", "augment": "{}", "seed": "1", "device": "cpu", "config_hash": "abc123def456"}
    assert tracking.metrics(row) == {"image_auroc": 0.75, "time/fit generator": 1.5, "time/total": 2.0}
    # integral steps are kept; a series with fractional steps is indexed 0, 1, 2 (the inf point dropped)
    assert tracking.curves(row) == {"generator/train/loss": [(1, 0.5), (2, 0.25)], "policy/reward": [(0, 1.0), (2, 3.0)]}
    assert tracking.run_name(row) == "digits-ae-none-?-s?-abc123"


def test_unknown_kind_and_missing_extra_are_one_line(monkeypatch):
    with pytest.raises(ConfigError, match=r"--log 'wandb': expected one of mlflow, tensorboard"):
        tracking.require("wandb")
    monkeypatch.setitem(sys.modules, "mlflow", None)  # what an environment without the extra looks like
    with pytest.raises(ConfigError) as err:
        tracking.require("mlflow")
    assert str(err.value) == ("--log mlflow needs the mlflow package, which is not installed: "
                              "pip install 'benchbox[tracking]'")
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.raises(ConfigError, match=r"--log tensorboard needs the tensorboard package.*benchbox\[tracking\]"):
        tracking.require("tensorboard")


def test_load_reads_results_files_run_folders_and_skips_torn_lines(tmp_path):
    a = {"config_hash": "h1", "status": "failed", "metrics": {}}
    b = {"config_hash": "h1", "status": "ok", "metrics": {"image_auroc": 0.5}}
    c = {"config_hash": "h2", "status": "ok", "metrics": {}}
    f = tmp_path / "r.jsonl"
    f.write_text(json.dumps(a) + "\n" + json.dumps(b) + "\nnot json\n" + json.dumps(c) + "\n{\"torn\": ")
    assert tracking.load(f) == [b, c]  # the rerun supersedes the failure
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "result.json").write_text(json.dumps(c))
    assert tracking.load(tmp_path / "run") == [c]
    with pytest.raises(ConfigError, match="no such run folder"):
        tracking.load(tmp_path / "missing")


def _leaves(d: dict) -> int:
    return sum(_leaves(v) if isinstance(v, dict) and v else 1 for v in d.values())


# ---------------------------------------------------------------------------------------------
# A real 4-cell grid, exported and read back
# ---------------------------------------------------------------------------------------------


GRID = ["grid", "--datasets", "digits", "--generators", "ae", "--policies", "none,random", "--detectors", "ae",
        "--seeds", "0,1", "--device", "cpu", "--threads", "1", "--augment-ratio", "0.5",
        "--set", "generator.epochs=3", "--set", "generator.base_channels=8", "--set", "generator.latent_dim=8",
        "--set", "detector.epochs=1", "--set", "detector.base_channels=8", "--set", "dataset.train_limit=200",
        "--no-cache"]  # a stage-cache hit carries no curves of the cached stage: every cell fits its own


@pytest.fixture(scope="module")
def grid_results(tmp_path_factory) -> tuple[Path, list[dict]]:
    """digits x ae x {none, random} x ae detector x seeds {0, 1}: 4 cells with run folders."""
    import os

    tmp = tmp_path_factory.mktemp("grid")
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", BENCHBOX_CACHE=str(tmp / "cache"))
    proc = subprocess.run([sys.executable, "-m", "benchbox.cli", *GRID, "--results", str(tmp / "results.jsonl")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [json.loads(line) for line in (tmp / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(r["status"] == "ok" and Path(r["path"]).is_dir() for r in rows)
    return tmp / "results.jsonl", rows


@pytest.mark.skipif(not _has("mlflow", "sqlalchemy", "alembic"), reason=SKIP)
def test_mlflow_store_read_back_with_mlflow_client(grid_results, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    results, rows = grid_results
    monkeypatch.chdir(tmp_path)  # the default store is relative: sqlite:///mlruns/mlflow.db
    ids = tracking.export(results, "mlflow", experiment="tiny-grid")
    assert len(ids) == 4
    assert (tmp_path / "mlruns" / "mlflow.db").is_file()

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("tiny-grid")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 4 and {r.info.status for r in runs} == {"FINISHED"}
    by_hash = {r.data.tags["benchbox.config_hash"]: r for r in runs}
    assert set(by_hash) == {row["config_hash"] for row in rows}
    for row in rows:
        run = by_hash[row["config_hash"]]
        p, m = run.data.params, run.data.metrics
        # params: every leaf of the resolved config (counted here by hand) plus the config hash
        assert len(p) == _leaves(row["config"]) + 1, sorted(p)
        assert p["generator.epochs"] == "3" and p["dataset.name"] == "digits" and p["seed"] == str(row["seed"])
        assert p["policy.name"] == row["config"]["policy"]["name"] and p["config_hash"] == row["config_hash"]
        # metrics: the finite result metrics (bit-exact), the stage timings, the last point of each curve
        assert m["image_auroc"] == row["metrics"]["image_auroc"]
        assert m["time/fit generator"] == row["timings"]["fit generator"]
        gen_fid = row["metrics"].get("gen_fid")
        assert ("gen_fid" in m) == (gen_fid is not None)  # random generates (FID), none does not
        history = client.get_metric_history(run.info.run_id, "generator/train/loss")
        assert [(h.step, h.value) for h in history] == [(int(s), v) for s, v in row["curves"]["generator"]["train/loss"]]
        assert [h.step for h in history] == [1, 2, 3]
        assert sorted(a.path for a in client.list_artifacts(run.info.run_id)) == ["curves.png", "result.json",
                                                                                 "samples.png"]
        assert run.info.run_name == row["id"]
        # metrics: one key per finite result metric, per stage timing and per curve (none are lost)
        finite = [v for v in row["metrics"].values() if isinstance(v, float) and v == v]
        n_curves = sum(len(series) for series in row["curves"].values())
        assert len(m) == len(finite) + len(row["timings"]) + 1 + n_curves  # + peak_rss_mb
    print("mlflow read-back:", {r.data.params["policy.name"] + " s" + r.data.params["seed"]:
                                f"{len(r.data.params)} params, {len(r.data.metrics)} metrics, "
                                f"{len(client.list_artifacts(r.info.run_id))} artifacts" for r in runs})
    # exporting the same results again adds nothing (a resumed grid may export again)
    assert tracking.export(results, "mlflow", experiment="tiny-grid") == []
    assert len(client.search_runs([exp.experiment_id])) == 4


@pytest.mark.skipif(not _has("tensorboard"), reason=SKIP)
def test_tensorboard_events_read_back_with_event_accumulator(grid_results, tmp_path):
    from PIL import Image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    results, rows = grid_results
    folders = tracking.export(results, "tensorboard", uri=str(tmp_path / "tb"), experiment="tiny-grid")
    assert len(folders) == 4 and all(Path(f).parent == tmp_path / "tb" / "tiny-grid" for f in folders)
    for row in rows:
        ea = EventAccumulator(str(tmp_path / "tb" / "tiny-grid" / row["id"]), size_guidance={"images": 0})
        ea.Reload()
        tags = ea.Tags()
        auroc = ea.Scalars("metrics/image_auroc")
        assert len(auroc) == 1 and auroc[0].value == pytest.approx(row["metrics"]["image_auroc"], rel=1e-6)
        loss = ea.Scalars("generator/train/loss")
        assert [e.step for e in loss] == [1, 2, 3]
        assert [e.value for e in loss] == pytest.approx([v for _, v in row["curves"]["generator"]["train/loss"]],
                                                        rel=1e-6)
        assert sorted(tags["images"]) == ["curves", "samples"]
        png = Image.open(Path(row["path"]) / "samples.png")
        assert (ea.Images("samples")[0].width, ea.Images("samples")[0].height) == png.size
        expected = {f"metrics/{k}" for k in tracking.metrics(row)} | set(tracking.curves(row))
        assert set(tags["scalars"]) == expected
    print(f"tensorboard read-back: {len(folders)} event folders, {len(tags['scalars'])} scalar tags, "
          f"{len(tags['images'])} images per cell")
    assert tracking.export(results, "tensorboard", uri=str(tmp_path / "tb"), experiment="tiny-grid") == []


@pytest.mark.skipif(not _has("tensorboard"), reason=SKIP)
def test_cli_run_with_log_tensorboard(tmp_path, capsys):
    """`benchbox run --log tensorboard --log-uri DIR`: the finished cell lands in DIR/<experiment>/<run id>."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from benchbox.cli import main

    code = main(["run", "--dataset", "digits", "--generator", "ae", "--policy", "none", "--detector", "ae",
                 "--generator.epochs", "2", "--detector.epochs", "1", "--dataset.train-limit", "60", "--device", "cpu",
                 "--out", str(tmp_path / "runs"), "--log", "tensorboard", "--log-uri", str(tmp_path / "tb"),
                 "--log-experiment", "cli", "--quiet"])
    assert code == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    ea = EventAccumulator(str(tmp_path / "tb" / "cli" / run_dir.name))
    ea.Reload()
    row = json.loads((run_dir / "result.json").read_text())
    assert ea.Scalars("metrics/image_auroc")[0].value == pytest.approx(row["metrics"]["image_auroc"], rel=1e-6)
    assert [e.step for e in ea.Scalars("generator/train/loss")] == [1, 2]
    assert "logged to TensorBoard" in " ".join(capsys.readouterr().out.split())
