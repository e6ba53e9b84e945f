"""The Python API (benchbox.run / grid / load_results / leaderboard): its docstring examples run,
options are checked before anything runs, and results round-trip through a DataFrame."""

from __future__ import annotations

import doctest
import json

import pytest

import benchbox
from benchbox import api
from benchbox.errors import ConfigError


def test_docstring_examples_run():
    """The examples in benchbox.api's docstrings (a real tiny run and a 2-cell grid) pass as written."""
    outcome = doctest.testmod(api, optionflags=doctest.ELLIPSIS)
    assert outcome.attempted >= 15 and outcome.failed == 0


def test_grid_and_leaderboard_are_modules_and_functions():
    import benchbox.grid
    import benchbox.leaderboard
    from benchbox.grid import run_grid  # the module's names still import

    assert callable(benchbox.grid) and callable(benchbox.leaderboard) and callable(run_grid)
    assert benchbox.grid.__name__ == "benchbox.grid" and hasattr(benchbox.leaderboard, "build")


@pytest.mark.parametrize("kwargs, message", [
    ({"sed": 1}, "benchbox.run got an unknown option 'sed'; did you mean 'seed'?"),
    ({"detector_epoch": 3}, "detector 'ae' has no option 'epoch' (did you mean 'epochs'?)"),
    ({"detector_epochs": "3"}, "detector 'ae' option 'epochs' expects an integer, got '3'"),
    ({"augment": "lots"}, "augment must be a ratio or a dict of ratio, batch_size, got 'lots'"),
    ({"device": "tpu"}, "run option 'device' must be one of 'auto', 'cpu', 'cuda', got 'tpu'"),
])
def test_bad_options_fail_before_anything_runs(tmp_path, kwargs, message):
    with pytest.raises(ConfigError) as err:
        benchbox.run(dataset="digits", generator="ae", policy="none", detector="ae", out=str(tmp_path / "runs"),
                     **kwargs)
    assert str(err.value) == message
    assert not (tmp_path / "runs").exists()


def _rows() -> list[dict]:
    """6 ok rows (none/random x 3 seeds) and one failed row, with hand-set AUROCs."""
    rows = []
    auroc = {("none", 0): 0.80, ("none", 1): 0.82, ("none", 2): 0.84,
             ("random", 0): 0.85, ("random", 1): 0.86, ("random", 2): 0.90}
    for (policy, seed), value in auroc.items():
        cfg = {"dataset": {"name": "digits", "train_limit": 60}, "generator": {"name": "ae", "epochs": 2},
               "policy": {"name": policy, **({"sigma": 0.5} if policy == "random" else {})},
               "detector": {"name": "ae", "epochs": 1}, "augment": {"ratio": 1.0, "batch_size": 256},
               "seed": seed, "device": "cpu"}
        rows.append({"id": f"{policy}-{seed}", "status": "ok", "config": cfg, "config_hash": f"{policy}{seed}",
                     "seed": seed, "metrics": {"image_auroc": value, "pixel_auroc": None},
                     "data": {"category": "0"}, "timings": {"total": 1.5}})
    rows.append({"status": "failed", "error": "stage 'fit policy' failed: boom", "config": rows[0]["config"],
                 "config_hash": "broken", "seed": 0, "metrics": {}})
    return rows


def test_load_results_flattens_and_leaderboard_reads_frame_or_file_alike(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _rows()) + "{torn")
    df = benchbox.load_results(path)
    assert len(df) == 7 and sorted(df["status"]) == ["failed"] + ["ok"] * 6
    ok = benchbox.load_results(path, status="ok")
    assert len(ok) == 6
    row = ok[(ok.policy == "random") & (ok.seed == 2)].iloc[0]
    assert (row["dataset"], row["dataset.train_limit"], row["generator.epochs"], row["policy.sigma"],
            row["image_auroc"], row["time.total"], row["category"]) == ("digits", 60, 2, 0.5, 0.90, 1.5, "0")
    from_file = benchbox.leaderboard(path)
    from_frame = benchbox.leaderboard(df)
    cols = ["policy", "image_auroc_mean", "delta", "p_value", "n_pairs", "verdict"]
    import pandas as pd

    pd.testing.assert_frame_equal(from_file[cols], from_frame[cols])
    rnd = from_frame[from_frame.policy == "random"].iloc[0]
    assert rnd["delta"] == pytest.approx((0.05 + 0.04 + 0.06) / 3) and rnd["n_pairs"] == 3
    out = tmp_path / "board"
    benchbox.leaderboard(df[df.status == "ok"], out=out, title="t")
    assert sorted(p.name for p in out.iterdir()) == ["leaderboard.csv", "leaderboard.html", "leaderboard.json",
                                                     "leaderboard.md"]


def test_leaderboard_of_garbage_says_how_many_lines_were_unreadable(tmp_path):
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("hello\n\n{not json\n[1, 2]\n")
    with pytest.raises(ConfigError, match=r"none of its 3 non-empty line\(s\) is a benchbox result row"):
        benchbox.leaderboard(garbage)
