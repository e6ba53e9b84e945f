"""Leaderboard statistics (protocol: t-CI, paired test vs none by seed, >= 3 pairs, Holm, ties, < 3 seeds marked,
groups by dataset config) and formats."""

from __future__ import annotations

import json
import math
import random
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from benchbox.leaderboard import build, holm, to_markdown, write_all


def row(policy, seed, auroc, generator="ae", detector="transformer", dataset="digits", category="0", fid=None,
        **data_options):
    metrics = {"image_auroc": auroc, "pixel_auroc": None, "pixel_aupro": None}
    if fid is not None:
        metrics["gen_fid"] = fid
    return {
        "status": "ok", "seed": seed, "metrics": metrics, "config_hash": f"{dataset}{generator}{policy}{detector}{seed}{data_options}",
        "data": {"category": category},
        "config": {"dataset": {"name": dataset, "normal_class": 0, **data_options}, "generator": {"name": generator, "epochs": 1},
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


def pairs(deltas, control=(0.80, 0.81, 0.82, 0.83, 0.84, 0.85, 0.86, 0.87), **kw):
    """Rows of a none control and one policy per entry of ``deltas`` (name -> per-seed differences)."""
    out = [row("none", s, control[s], **kw) for s in range(max(len(d) for d in deltas.values()))]
    for policy, d in deltas.items():
        out += [row(policy, s, control[s] + x, **kw) for s, x in enumerate(d)]
    return out


def test_two_seed_difference_gets_no_verdict():
    t = build(pairs({"random": [0.05, 0.06]}))
    r = t[t.policy == "random"].iloc[0]
    assert r.n_pairs == 2 and r.delta == pytest.approx(0.055)
    assert r.p_value != r.p_value and r.p_holm != r.p_holm  # no test from two pairs
    assert r.verdict == "n/a (<3 pairs)"
    assert "n/a (<3 pairs)" in to_markdown(t)


def test_identical_differences_use_the_exact_sign_test():
    # 0.85-0.80, 0.86-0.81, 0.87-0.82 differ only by float noise: a t-test would give p ~ 1e-31 ("better")
    t = build(pairs({"random": [0.05, 0.05, 0.05]}))
    r = t[t.policy == "random"].iloc[0]
    assert r.test == "sign test (identical differences)"
    assert r.p_value == pytest.approx(0.25) and r.verdict == "tie"  # 2 * 0.5**3
    six = build(pairs({"random": [-0.02] * 6}))
    r6 = six[six.policy == "random"].iloc[0]
    assert r6.p_value == pytest.approx(2 * 0.5**6) and r6.verdict == "worse"  # 0.03125 < 0.05
    zero = build(pairs({"random": [0.0] * 3}))
    rz = zero[zero.policy == "random"].iloc[0]
    assert rz.p_value == 1.0 and rz.verdict == "tie"
    assert "(sign)" in to_markdown(t)


def test_holm_adjusts_by_hand():
    nan = float("nan")
    # sorted: 0.01 x 4 = 0.04; 0.03 x 3 = 0.09; 0.04 x 2 = 0.08 -> 0.09 (monotone); 0.5 x 1; NaN is no test
    adj = holm([0.01, 0.04, 0.03, nan, 0.5])
    assert adj[:3] == pytest.approx([0.04, 0.09, 0.09]) and adj[3] != adj[3] and adj[4] == pytest.approx(0.5)
    assert holm([0.5, 0.6]) == [1.0, 1.0]  # capped at 1


def test_holm_across_the_policies_of_one_control():
    deltas = {"a": [0.02, 0.03, 0.025, 0.035], "b": [0.01, 0.02, 0.03, 0.01], "c": [0.01, -0.02, 0.03, 0.0]}
    t = build(pairs(deltas)).set_index("policy")
    raw = {k: stats.ttest_1samp(d, 0.0).pvalue for k, d in deltas.items()}  # ~0.0034, ~0.035, ~0.66
    for k in deltas:
        assert t.loc[k, "p_value"] == pytest.approx(raw[k], rel=1e-6)
    assert t.loc["a", "p_holm"] == pytest.approx(3 * raw["a"], rel=1e-6)
    assert t.loc["b", "p_holm"] == pytest.approx(2 * raw["b"], rel=1e-6)
    assert t.loc["c", "p_holm"] == pytest.approx(raw["c"], rel=1e-6)
    assert raw["b"] < 0.05 < t.loc["b", "p_holm"]
    assert list(t.loc[["a", "b", "c"], "verdict"]) == ["better", "tie", "tie"]  # b: significant raw, not adjusted
    # a policy of another generator is another family: its own m
    other = pairs({"a": deltas["a"]}, generator="vae")
    t2 = build(pairs(deltas) + other)
    assert t2[(t2.generator == "vae") & (t2.policy == "a")].iloc[0].p_holm == pytest.approx(raw["a"], rel=1e-6)


def test_pairing_is_by_seed_not_row_order():
    control = {0: 0.70, 1: 0.95, 2: 0.80, 3: 0.60, 4: 0.90}
    method = {0: 0.75, 2: 0.83, 3: 0.66, 4: 0.91, 5: 0.50}  # seed 1 missing here, seed 5 has no control
    rs = [row("none", s, v) for s, v in control.items()] + [row("random", s, v) for s, v in method.items()]
    random.Random(0).shuffle(rs)
    r = build(rs).set_index("policy").loc["random"]
    common = [0, 2, 3, 4]
    d = [method[s] - control[s] for s in common]  # 0.05, 0.03, 0.06, 0.01
    assert r.n_pairs == 4 and r.delta == pytest.approx(np.mean(d))
    assert r.p_value == pytest.approx(stats.ttest_rel([method[s] for s in common], [control[s] for s in common]).pvalue)
    # pairing by position (sorted or shuffled order) would give other numbers
    assert abs(np.mean(np.array(list(method.values())[:4]) - np.array(list(control.values())[:4])) - r.delta) > 0.01


def test_wilcoxon_from_six_pairs():
    d6 = [0.01, 0.03, -0.005, 0.02, 0.04, 0.015]
    t = build(pairs({"random": d6})).set_index("policy")
    assert t.loc["random", "p_wilcoxon"] == pytest.approx(stats.wilcoxon(d6).pvalue)  # 2 * 2 / 64 (exact)
    assert t.loc["random", "p_wilcoxon"] == pytest.approx(4 / 64)
    assert "| p Wilcoxon |" in to_markdown(build(pairs({"random": d6})))
    five = build(pairs({"random": d6[:5]})).set_index("policy")
    assert five.loc["random", "p_wilcoxon"] != five.loc["random", "p_wilcoxon"]
    assert "| p Wilcoxon |" not in to_markdown(build(pairs({"random": d6[:5]})))


def test_groups_are_keyed_by_the_full_dataset_config():
    full = pairs({"random": [0.05, 0.06, 0.04]}, dataset="mnist", train_limit=0)
    small = pairs({"random": [-0.05, -0.06, -0.04]}, dataset="mnist", train_limit=50,
                  control=(0.60, 0.61, 0.62))
    t = build(full + small)
    assert len(t) == 4 and set(t.data_config) == {"normal_class=0, train_limit=0", "normal_class=0, train_limit=50"}
    assert list(t.groupby("data_config")["rank"].apply(sorted)) == [[1, 2], [1, 2]]  # ranked within each group
    by = t.set_index(["data_config", "policy"])
    assert by.loc[("normal_class=0, train_limit=0", "random"), "verdict"] == "better"
    assert by.loc[("normal_class=0, train_limit=50", "random"), "verdict"] == "worse"  # paired with its own control
    assert by.loc[("normal_class=0, train_limit=50", "random"), "delta"] == pytest.approx(-0.05)
    md = to_markdown(t)
    assert md.count("## mnist / 0") == 2 and "data config: `normal_class=0, train_limit=50`" in md


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
    """The installed headless browser; the test skips (never installs one: .ci/run does) when there is none."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no Chromium on PATH (chromium, chromium-browser or google-chrome): the HTML page is not "
                "rendered here; .ci/run installs it with apt-get install chromium")


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
