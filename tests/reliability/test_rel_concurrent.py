"""Several writers on one results file at once lose no rows and tear no lines."""

from __future__ import annotations

import json
import multiprocessing as mp
import subprocess

from benchbox.grid import append_row, latest_rows, read_rows
from rel_util import GRID_TINY, bb_cmd, env

WRITERS, ROWS = 4, 120
PAD = "x" * 9000  # rows longer than PIPE_BUF (4 KiB): O_APPEND alone would not keep them whole


def _writer(path: str, writer: int) -> None:
    for i in range(ROWS):
        append_row(__import__("pathlib").Path(path), {"config_hash": f"{writer}-{i}", "status": "ok", "pad": PAD})


def test_parallel_appends_keep_every_row_whole(tmp_path):
    path = tmp_path / "r.jsonl"
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(path), w)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    rows, torn = read_rows(path)
    assert torn == 0 and len(rows) == WRITERS * ROWS
    assert {r["config_hash"] for r in rows} == {f"{w}-{i}" for w in range(WRITERS) for i in range(ROWS)}
    assert all(r["pad"] == PAD for r in rows)
    assert len(path.read_bytes().splitlines()) == WRITERS * ROWS


def test_two_grids_on_one_results_file(tmp_path):
    results, cache = tmp_path / "r.jsonl", tmp_path / "cache"
    common = ["grid", *GRID_TINY, "--policies", "none", "--results", str(results), "--cache-dir", str(cache),
              "--no-run-folders"]
    grids = [subprocess.Popen(bb_cmd(*common, "--seeds", seeds), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env(cache)) for seeds in ("0,1", "1,2")]  # seed 1 in both
    outs = [g.communicate(timeout=300) for g in grids]
    for g, (out, err) in zip(grids, outs):
        assert g.returncode == 0, err
    rows, torn = read_rows(results)
    assert torn == 0
    # each grid appended each of its cells (neither saw the other's rows at its start); nothing lost
    assert len(rows) == 4 and sorted(r["seed"] for r in rows) == [0, 1, 1, 2]
    assert len(latest_rows(rows)) == 3
    twins = [r for r in rows if r["seed"] == 1]
    assert twins[0]["config_hash"] == twins[1]["config_hash"] and twins[0]["metrics"] == twins[1]["metrics"]
    for line in results.read_text().splitlines():
        json.loads(line)
