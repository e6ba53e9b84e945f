"""examples/study.py (the notebook-style API example) runs as written and prints its Δ AUROC table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_study_example_runs_and_prints_the_delta_table(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", BENCHBOX_CACHE=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "study.py"), str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "6 cells ok, 0 failed, 0 already there" in out
    table = out.split("Δ image AUROC vs none (paired by seed)")[1].split("wrote")[0]
    rows = [line.split() for line in table.strip().splitlines() if line.split()[0] in ("mixup", "random")]
    assert [r[0] for r in rows] == ["mixup", "random"]
    # the printed Δ, recomputed by hand from the raw result rows: AUROC(policy, seed) - AUROC(none, same seed)
    raw = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    auroc = {(r["config"]["policy"]["name"], r["seed"]): r["metrics"]["image_auroc"] for r in raw}
    for r in rows:
        deltas = [auroc[(r[0], s)] - auroc[("none", s)] for s in (0, 1)]
        expected = (sum(deltas) / 2, min(deltas), max(deltas))
        assert [float(v) for v in r[1:4]] == [float(f"{v:+.4f}") for v in expected], (r, expected)
    board = out.split("verdict")[-1]  # the leaderboard's rows: two pairs are too few for a verdict
    assert board.count("n/a (<3 pairs)") == 2 and "better" not in board and "worse" not in board
    assert (tmp_path / "out" / "delta_auroc.png").stat().st_size > 1000
    print(out)
