"""Leaderboard statistics (protocol: t-CI, paired test vs none, ties, < 3 seeds marked) and formats."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from benchbox.leaderboard import build, to_markdown, write_all


def row(policy, seed, auroc, generator="ae", detector="transformer", dataset="digits", category="0", fid=None):
    metrics = {"image_auroc": auroc, "pixel_auroc": None, "pixel_aupro": None}
    if fid is not None:
        metrics["gen_fid"] = fid
    return {
        "status": "ok", "seed": seed, "metrics": metrics, "config_hash": f"{dataset}{generator}{policy}{detector}{seed}",
        "data": {"category": category},
        "config": {"dataset": {"name": dataset, "normal_class": 0}, "generator": {"name": generator, "epochs": 1},
                   "policy": {"name": policy}, "detector": {"name": detector, "epochs": 1},
                   "augment": {"ratio": 1.0, "batch_size": 256}, "seed": seed, "device": "cpu"},
    }


NONE = [0.80, 0.82, 0.81]
RANDOM = [0.85, 0.88, 0.86]  # clearly better, paired
PPO = [0.81, 0.80, 0.83]  # noise around none: a tie


def rows():
    out = []
    for s in range(3):
        out += [row("none", s, NONE[s]), row("random", s, RANDOM[s], fid=10.0 + s), row("ppo", s, PPO[s], fid=12.0)]
    out += [row("none", s, 0.7 + s / 100, generator="vae") for s in range(2)]  # only 2 seeds
    out.append({"status": "failed", "config_hash": "f", "seed": 0, "error": "boom", "metrics": {},
                "config": out[0]["config"]})
    return out


def test_ci_delta_paired_test_tie_and_rank():
    t = build(rows())
    r = t[(t.generator == "ae") & (t.policy == "random")].iloc[0]
    x = np.array(RANDOM)
    assert r.image_auroc_mean == pytest.approx(x.mean())
    assert r.image_auroc_ci95 == pytest.approx(stats.t.ppf(0.975, 2) * x.std(ddof=1) / math.sqrt(3))
    assert r.delta == pytest.approx(np.mean(np.array(RANDOM) - np.array(NONE)))
    assert r.p_value == pytest.approx(stats.ttest_rel(RANDOM, NONE).pvalue)
    assert r.p_value < 0.05 and r.verdict == "better" and r.n_pairs == 3 and r["rank"] == 1
    p = t[(t.generator == "ae") & (t.policy == "ppo")].iloc[0]
    assert p.p_value > 0.05 and p.verdict == "tie"
    assert t[(t.generator == "ae") & (t.policy == "none")].iloc[0].verdict == "control"
    few = t[t.generator == "vae"].iloc[0]
    assert few.few_seeds and few.n_seeds == 2
    assert r.gen_fid_mean == pytest.approx(11.0)
    assert len(t) == 4  # the failed row is not ranked


def test_equal_printed_means_share_a_rank():
    rs = [row("none", s, 0.8) for s in range(3)] + [row("random", s, 0.8 + 1e-5 * (s - 1)) for s in range(3)]
    t = build(rs)
    assert list(t["rank"]) == [1, 1]
    assert t[t.policy == "random"].iloc[0].verdict == "tie"


def test_markdown_marks_few_seeds_and_reports_the_test():
    md = to_markdown(build(rows()))
    assert "| 2* |" in md and "paired t-test" in md and "± " in md and "better" in md and "tie" in md
    assert "FID" in md


def test_cli_writes_all_formats(tmp_path):
    res = tmp_path / "r.jsonl"
    res.write_text("".join(json.dumps(r) + "\n" for r in rows()) + '{"torn')
    out = subprocess.run([sys.executable, "-m", "benchbox.cli", "leaderboard", str(res), "--out", str(tmp_path / "lb")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "ignored 1 torn" in out.stderr
    files = {p.name for p in (tmp_path / "lb").iterdir()}
    assert files == {"leaderboard.md", "leaderboard.csv", "leaderboard.json", "leaderboard.html"}
    data = json.loads((tmp_path / "lb" / "leaderboard.json").read_text())
    assert len(data) == 4 and {"image_auroc_mean", "image_auroc_ci95", "delta", "p_value", "rank"} <= set(data[0])
    html = (tmp_path / "lb" / "leaderboard.html").read_text()
    assert "http://" not in html and "https://" not in html  # no external resources


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("Chromium is not installed and cannot be installed here (needs root and apt-get): "
                    "apt-get install chromium")
    inst = subprocess.run("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium",
                          shell=True, capture_output=True, text=True, timeout=900)
    path = shutil.which("chromium")
    if inst.returncode or not path:
        pytest.skip(f"apt-get install chromium failed: {(inst.stderr or inst.stdout).strip().splitlines()[-1:]}")
    return path


def test_html_renders_in_headless_chromium(tmp_path):
    browser = _chromium()
    run = tmp_path / "run"
    run.mkdir()
    from benchbox.plotting import save_sample_grid
    import torch

    save_sample_grid(run / "samples.png", {"originals": torch.rand(4, 1, 8, 8)})
    rs = rows()
    rs[0]["path"] = str(run)  # thumbnail for the ae/none row
    table = build(rs)
    write_all(table, tmp_path / "lb")
    page = tmp_path / "lb" / "leaderboard.html"
    out = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          "--disable-component-update", "--disable-sync", "--no-first-run",
                          f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    dom = out.stdout
    body = dom.split("<tbody>")[1].split("</tbody>")[0]
    assert len(re.findall(r"<tr[ >]", body)) == len(table) == 4
    assert 'data-sortable="ready"' in dom  # the inline script ran
    assert dom.count("data:image/png;base64,") == 1
