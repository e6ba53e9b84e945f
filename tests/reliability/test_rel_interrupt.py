"""Ctrl-C during a grid keeps every finished cell's row, leaves no partial files, and a rerun resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from benchbox.grid import read_rows
from rel_util import GRID_TINY, bb, bb_cmd, env, leftovers


def test_sigint_mid_grid_keeps_finished_rows_and_rerun_resumes(tmp_path):
    results, runs, cache = tmp_path / "r.jsonl", tmp_path / "runs", tmp_path / "cache"
    # 12 cells: enough work left after the first row that the signal lands mid-grid even on a loaded machine
    seeds, total = "0,1,2,3,4,5", 12
    args = ["grid", *GRID_TINY, "--policies", "none,random", "--seeds", seeds, "--results", str(results),
            "--runs-dir", str(runs), "--cache-dir", str(cache)]
    # its own process group, so the signal reaches it the way a terminal's Ctrl-C does
    # SIG_DFL in the child: a test run started in the background by a non-interactive shell inherits
    # SIGINT as ignored, and Python would then install no KeyboardInterrupt handler at all
    proc = subprocess.Popen(bb_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env(cache), start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not read_rows(results)[0]:
        time.sleep(0.05)
    assert proc.poll() is None, f"the grid ended before it could be interrupted: {proc.communicate()}"
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    rows, torn = read_rows(results)
    finished = len(rows)
    assert torn == 0 and 1 <= finished < total and all(r["status"] == "ok" for r in rows)
    assert f"interrupted: {finished} of {total} cells are in" in " ".join(err.split()) and "Traceback" not in err
    # every finished cell has its run folder; the interrupted one left nothing behind
    assert sorted(p.name for p in runs.iterdir()) == sorted(r["id"] for r in rows)
    assert not leftovers(tmp_path), leftovers(tmp_path)

    again = bb(*args, cache=cache)
    assert again.returncode == 0, again.stderr
    assert f"{total - finished} run, {finished} already in results, 0 failed" in again.stdout
    rows, torn = read_rows(results)
    assert torn == 0 and len(rows) == total == len({r["config_hash"] for r in rows})
    assert len(list(runs.iterdir())) == total and not leftovers(tmp_path)
