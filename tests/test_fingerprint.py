"""Results tied to the code that made them: plugin source hashes in stage keys and rows; stale rows rerun."""

from __future__ import annotations

import json
import os
import textwrap
import time

import pytest

from benchbox import cache, fingerprint, registry
from benchbox.gridspec import GridSpec
from benchbox.grid import run_grid
from benchbox.results import read_rows

from conftest import make_distribution

POLICY = '''
from dataclasses import dataclass

import torch

from benchbox.interfaces import LatentPolicy
from bbx_test_fp.helpers import scale


class Shift(LatentPolicy):
    """A fixed shift of every latent (a test policy)."""

    @dataclass
    class Config:
        step: float = 0.5

    def fit(self, generator, latents, ctx):
        self.std = latents.std(0)

    def propose(self, z, seed):
        return torch.ones_like(z) * scale(self.config.step) * self.std
'''
HELPERS = "def scale(x):\n    return 1.0 * x\n"
UNRELATED = "VALUE = 1\n"


@pytest.fixture
def fake(extra_site):
    """An editable third-party distribution with one policy plugin in a package of three modules."""
    make_distribution(extra_site, "bbx-test-fp", {"benchbox.policies": {"bbx-shift": "bbx_test_fp.policy:Shift"}}, {})
    pkg = extra_site / "bbx_test_fp"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "policy.py").write_text(textwrap.dedent(POLICY))
    (pkg / "helpers.py").write_text(HELPERS)
    (pkg / "unrelated.py").write_text(UNRELATED)
    info = next(extra_site.glob("bbx_test_fp-*.dist-info"))
    (info / "direct_url.json").write_text(json.dumps({"url": f"file://{pkg}", "dir_info": {"editable": True}}))
    cache._plugin_prefixes.cache_clear()
    fingerprint._editable.cache_clear()
    yield pkg
    cache._plugin_prefixes.cache_clear()


def _edit(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    st = path.stat()  # a new mtime even on a coarse clock, so no cached hash survives
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


def test_source_closure_follows_imports_within_the_package(fake):
    files = fingerprint.source_files("bbx_test_fp.policy")
    assert set(files) == {"bbx_test_fp", "bbx_test_fp.policy", "bbx_test_fp.helpers"}  # not unrelated.py
    before = fingerprint.plugin_code("policies", "bbx-shift")
    assert before["distribution"] == "bbx-test-fp" and before["version"] == "0.1" and len(before["source"]) == 16
    _edit(fake / "unrelated.py", "VALUE = 1", "VALUE = 2")
    assert fingerprint.plugin_code("policies", "bbx-shift") == before  # a module it never imports
    _edit(fake / "helpers.py", "1.0 * x", "2.0 * x")  # one line of a module it imports
    changed = fingerprint.plugin_code("policies", "bbx-shift")
    assert changed["source"] != before["source"]
    _edit(fake / "helpers.py", "2.0 * x", "1.0 * x")
    assert fingerprint.plugin_code("policies", "bbx-shift") == before  # reverted: the same hash again


def test_first_party_plugins_are_hashed_and_installed_releases_are_not(fake, monkeypatch):
    ae = fingerprint.plugin_code("generators", "ae")
    assert ae["distribution"] == "benchbox" and "source" in ae
    assert "benchbox_plugins.generators.base.conv_generator" in fingerprint.source_files(
        registry.info("generators", "ae").module)
    monkeypatch.setattr(fingerprint, "_editable", lambda dist: False)  # a wheel install: name + version
    assert fingerprint.plugin_code("policies", "bbx-shift") == {"distribution": "bbx-test-fp", "version": "0.1"}


def _cells(tmp_path):
    spec = GridSpec(datasets=["digits"], generators=["ae"], policies=["none", "bbx-shift"], detectors=["knn", "ae"],
                    seeds=[0], device="cpu", threads=1,
                    options={"generator": {"epochs": 1, "base_channels": 8}, "detector": {"ae": {"epochs": 1}}})
    return spec.cells(out=str(tmp_path / "runs"))


def test_a_plugin_edit_reruns_exactly_its_cells_and_a_revert_is_served_again(fake, tmp_path):
    results, stages = tmp_path / "r.jsonl", str(tmp_path / "cache")
    first = run_grid(_cells(tmp_path), results, stages, write_runs=False)
    assert (first.ok, first.skipped, first.stale) == (4, 0, 0)
    rows = read_rows(results)[0]
    assert all(r["code"]["hash"] and r["code"]["plugins"]["policy"]["distribution"] for r in rows)
    shift_hash = {r["code"]["hash"] for r in rows if r["config"]["policy"]["name"] == "bbx-shift"}

    _edit(fake / "helpers.py", "1.0 * x", "1.5 * x")  # one line of the policy's code
    again = run_grid(_cells(tmp_path), results, stages, write_runs=False)
    assert (again.ok, again.skipped, again.stale) == (2, 2, 2)  # the two bbx-shift cells, nothing else
    new = read_rows(results)[0][4:]
    assert {r["config"]["policy"]["name"] for r in new} == {"bbx-shift"}
    assert [r["cache"]["generator"]["status"] for r in new] == ["hit", "hit"]  # dataset and ae code unchanged
    assert sorted(r["cache"]["policy"]["status"] for r in new) == ["hit", "miss"]  # refit once, shared by both
    assert not shift_hash & {r["code"]["hash"] for r in new}

    kept = run_grid(_cells(tmp_path), results, stages, write_runs=False)
    assert (kept.ok, kept.skipped) == (0, 4)  # the edited code's rows are current now

    _edit(fake / "helpers.py", "1.5 * x", "1.0 * x")  # revert
    back = run_grid(_cells(tmp_path), results, stages, write_runs=False)
    assert (back.ok, back.skipped, back.stale) == (0, 4, 0)  # the first rows are current again: nothing reruns
    fresh = run_grid(_cells(tmp_path), tmp_path / "fresh.jsonl", stages, write_runs=False)
    statuses = [v["status"] for r in read_rows(tmp_path / "fresh.jsonl")[0] for v in r["cache"].values()]
    assert fresh.ok == 4 and statuses == ["hit"] * 12  # and every cached stage of the original code is served


def test_keep_stale_keeps_rows_and_the_leaderboard_marks_them(fake, tmp_path):
    from benchbox.leaderboard import build, current_rows, to_markdown

    results = tmp_path / "r.jsonl"
    run_grid(_cells(tmp_path), results, None, write_runs=False)
    _edit(fake / "helpers.py", "1.0 * x", "1.5 * x")
    kept = run_grid(_cells(tmp_path), results, None, write_runs=False, keep_stale=True)
    assert (kept.ok, kept.skipped, kept.stale) == (0, 4, 2)
    rows = current_rows(read_rows(results)[0])
    assert sorted(r["_stale"] for r in rows) == [False, False, True, True]
    table = build(rows)
    assert list(table.sort_values(["policy", "detector"]).n_stale) == [1, 1, 0, 0]
    md = to_markdown(table)
    assert "stale" in md and "| 1 |" in md
