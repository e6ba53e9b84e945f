"""examples/study.py (the notebook-style API example) runs as written and prints its Δ AUROC table."""

from __future__ import annotations

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
    for r in rows:  # each Δ is a signed AUROC difference, mean within [min, max]
        mean, lo, hi = (float(v) for v in r[1:4])
        assert -1 <= lo <= mean <= hi <= 1
    assert (tmp_path / "out" / "delta_auroc.png").stat().st_size > 1000
    print(out)
