"""Issue 19 part 6: grid axes take glob patterns, combinations the plugins declare cannot run together
are skipped with their reason, and --dry-run prints the cell count and a wall-time estimate.

Nothing here trains a model: patterns and skips are spec expansion, and the estimate is checked
against hand-computed medians of hand-written results rows."""

from __future__ import annotations

import json

import pytest

import benchbox
from benchbox import registry
from benchbox.cli import main
from benchbox.errors import ConfigError
from benchbox.gridspec import GridSpec, expand_axis, incompatibility

ANOMALIB = ["anomalib-dfm", "anomalib-efficientad", "anomalib-fastflow", "anomalib-ganomaly", "anomalib-padim",
            "anomalib-patchcore", "anomalib-reverse-distillation", "anomalib-stfpm"]


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = main(list(args))
    except SystemExit as exc:
        code = exc.code
    cap = capsys.readouterr()
    return code, cap.out, cap.err


# ------------------------------------------------------------------------------------- patterns


def test_patterns_expand_against_the_registry_in_its_order():
    assert [n for n, _ in expand_axis("detectors", ["anomalib-*"])] == ANOMALIB
    assert [n for n, _ in expand_axis("policies", ["*"])] == registry.names("policies")
    assert [n for n, _ in expand_axis("policies", ["n?ne", "[rm]*"])] == ["none", "mixup", "random"]
    # a name and a pattern that also matches it: once; a table's options go to every match
    assert expand_axis("policies", ["random", "r*"]) == [("random", {})]
    assert expand_axis("detectors", [{"name": "anomalib-p*", "image_size": 32}]) == [
        ("anomalib-padim", {"image_size": 32}), ("anomalib-patchcore", {"image_size": 32})]


def test_a_pattern_matching_nothing_is_one_error_naming_the_axis():
    with pytest.raises(ConfigError, match=r"^grid axis detectors: pattern 'nope-\*' matches no registered detector "
                                          r"\(registered: ae, anomalib-dfm, "):
        GridSpec(detectors=["nope-*"]).cells()


def test_cli_and_toml_patterns_give_the_same_cells(tmp_path, capsys):
    spec = tmp_path / "g.toml"
    spec.write_text('[grid]\ndatasets = ["digits"]\ngenerators = ["ae"]\npolicies = ["*"]\n'
                    'detectors = ["anomalib-p*", "knn"]\nseeds = [0]\ndevice = "cpu"\n')
    cells = GridSpec.from_toml(spec).cells()
    assert len(cells) == len(registry.names("policies")) * 3
    assert {c["detector"].name for c in cells} == {"anomalib-padim", "anomalib-patchcore", "knn"}
    code, out, err = run_cli(capsys, "grid", "--datasets", "digits", "--generators", "ae", "--policies", "*",
                             "--detectors", "anomalib-p*,knn", "--seeds", "0", "--device", "cpu",
                             "--results", str(tmp_path / "r.jsonl"), "--cache-dir", str(tmp_path / "c"), "--dry-run")
    assert code == 0, err
    assert f"{len(cells)} combinations: {len(cells)} cells ({len(cells)} to run, 0 already in results), 0 skipped" in out


def test_cli_pattern_matching_nothing_exits_2_with_one_line(tmp_path, capsys):
    code, out, err = run_cli(capsys, "grid", "--detectors", "nope-*", "--results", str(tmp_path / "r.jsonl"))
    assert code == 2
    assert err.strip().startswith("error: grid axis detectors: pattern 'nope-*' matches no registered detector")
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "r.jsonl").exists()


# ------------------------------------------------------------------------------ skipped combos

REFUSES = ("detector 'knn' does not train on pseudo-anomalies, and policy 'ppo' generates them (role anomaly)")
NEEDS_NONE = ("detector 'transformer' needs pseudo-anomalies (a policy with role anomaly); policy 'none' "
              "generates nothing")
NEEDS_NORMAL = ("detector 'transformer' needs pseudo-anomalies (a policy with role anomaly); policy 'random' "
                "generates normal images (role normal)")


def _role_grid(**kw) -> GridSpec:
    return GridSpec(datasets=["digits"], generators=["ae"], policies=["none", "random", "ppo"],
                    detectors=["knn", "transformer"], seeds=[0, 1], device="cpu",
                    options={"policy": {"ppo": {"role": "anomaly"}}, "detector": {"transformer": {"mode": "classify"}}},
                    **kw)


def test_declared_incompatibilities_are_skipped_with_their_reason():
    cells, skipped = _role_grid().expand()
    ran = {(c["policy"].name, c["detector"].name) for c in cells}
    assert ran == {("none", "knn"), ("random", "knn"), ("ppo", "transformer")}
    assert len(cells) == 6 and len(skipped) == 6
    reasons = {(c["policy"].name, c["detector"].name): r for c, r in skipped}
    assert reasons == {("ppo", "knn"): REFUSES, ("none", "transformer"): NEEDS_NONE,
                       ("random", "transformer"): NEEDS_NORMAL}
    assert _role_grid().cells() == cells  # cells() is the runnable part


def test_no_generated_images_means_no_pseudo_anomalies():
    """With augment ratio 0 the anomaly-role policy adds nothing: knn can run it, classify cannot."""
    cells, skipped = _role_grid(augment={"ratio": 0}).expand()
    assert {(c["policy"].name, c["detector"].name) for c in cells} == {("none", "knn"), ("random", "knn"),
                                                                       ("ppo", "knn")}
    assert all(r.startswith("detector 'transformer' needs pseudo-anomalies") for _, r in skipped)


def test_the_declarations_the_skips_read():
    tr = registry.load("detectors", "transformer")
    assert tr.pseudo_anomaly_use(tr.Config()) == "refuses" and tr.pseudo_anomaly_use(tr.Config(mode="classify")) == "needs"
    assert all(registry.load("detectors", n).pseudo_anomaly_use(registry.load("detectors", n).Config()) == "refuses"
               for n in ("ae", "knn", "anomalib-padim"))
    ppo, none = registry.load("policies", "ppo"), registry.load("policies", "none")
    assert ppo.output_role(ppo.Config()) == "normal" and ppo.output_role(ppo.Config(role="anomaly")) == "anomaly"
    assert none.output_role(none.Config()) is None
    default = GridSpec(policies=["*"], detectors=["*"], seeds=[0]).expand()[1]
    assert default == []  # at default options every registered pair can run


def test_cli_lists_skipped_combinations_and_runs_nothing_for_them(tmp_path, capsys):
    results = tmp_path / "r.jsonl"
    code, out, err = run_cli(capsys, "grid", "--datasets", "digits", "--generators", "ae", "--policies", "none",
                             "--detectors", "transformer", "--set", "detector.transformer.mode=classify", "--seeds", "0,1",
                             "--device", "cpu", "--results", str(results), "--cache-dir", str(tmp_path / "c"), "--quiet")
    assert code == 0, err
    assert f"skipped (cannot run together): 2 cell(s): {NEEDS_NONE}" in out
    assert "0 cells: 0 run, 0 already in results, 0 failed, 2 skipped (cannot run together)" in out
    assert not results.exists() or results.read_text() == ""


def test_api_grid_reports_skipped_combinations(tmp_path):
    g = benchbox.grid({"datasets": ["digits"], "generators": ["ae"], "policies": ["none"], "detectors": ["transformer"],
                       "seeds": [0], "device": "cpu", "options": {"detector": {"mode": "classify"}}},
                      results=tmp_path / "r.jsonl", write_runs=False, cache=tmp_path / "c")
    assert (g.total, g.ok, g.failed) == (0, 0, 0)
    assert g.skipped_combinations == [f"1 cell(s): {NEEDS_NONE}"]


# ------------------------------------------------------------------------------ dry-run estimate


def _rows(spec: GridSpec, seed: int, timings: dict[str, dict[str, float]], gen_hit: dict[str, bool]) -> list[dict]:
    """ok rows for ``spec``'s cells at another seed, with the given per-policy stage timings."""
    rows = []
    for c in GridSpec(**{**spec.__dict__, "seeds": [seed]}).cells():
        p = c["policy"].name
        rows.append({"status": "ok", "config": c.resolved(), "config_hash": c.hash(), "seed": seed, "device": "cpu",
                     "timings": {**timings[p], "total": sum(timings[p].values()) + 1},  # 1 s outside the stages
                     "cache": {"generator": {"status": "hit" if gen_hit[p] else "miss"}, "policy": {"status": "miss"},
                               "augment": {"status": "miss"}}})
    return rows


def test_dry_run_counts_cells_and_estimates_from_measured_stage_medians(tmp_path, capsys):
    spec = GridSpec(datasets=["digits"], generators=["ae"], policies=["none", "random"], detectors=["ae"], seeds=[0],
                    device="cpu", options={"generator": {"epochs": 1}, "detector": {"epochs": 1}})
    t = lambda load, gen, pol, aug, det, score: {"load data": load, "fit generator": gen, "fit policy": pol,  # noqa: E731
                                                 "augment": aug, "fit detector": det, "score": score}
    hits = {"none": False, "random": True}  # random's rows reused the generator: their 0.1 s is a load, not a fit
    rows = _rows(spec, 10, {"none": t(1, 10, 0, 0, 4, 1), "random": t(1, 0.1, 2, 3, 6, 1)}, hits)
    rows += _rows(spec, 11, {"none": t(3, 20, 0, 0, 6, 1), "random": t(3, 0.1, 4, 5, 8, 1)}, hits)
    results = tmp_path / "r.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["grid", "--datasets", "digits", "--generators", "ae", "--policies", "none,random", "--seeds", "0",
            "--device", "cpu", "--set", "generator.epochs=1", "--set", "detector.epochs=1",
            "--cache-dir", str(tmp_path / "c"), "--dry-run"]
    code, out, err = run_cli(capsys, *args, "--detectors", "ae", "--results", str(results))
    assert code == 0, err
    assert "2 combinations: 2 cells (2 to run, 0 already in results), 0 skipped (cannot run together)" in out
    # medians: load data (1, 1, 3, 3) -> 2 per cell; fit generator (10, 20) -> 15 once (both cells share it);
    # fit policy none 0, random 3; augment none 0, random 4; fit detector none 5, random 7; score 1 per cell
    # = 2*2 + 15 + 3 + 4 + 5 + 7 + 2*1 = 40 s over 11 stage runs, + 1 s per cell outside the stages = 42 s
    assert "estimated wall time: ~42 s sequential on cpu (13 measured timings)" in out
    assert "per cell      set-up, metrics, writing: 1.0 s x 2 (median of 4 row(s) in r.jsonl, total minus the stages)" in out
    assert "fit generator generator ae: 15.0 s x 1 (median of 2 row(s) in r.jsonl, same config)" in out
    assert "fit detector  detector ae: 6.0 s x 2 (median of 2 row(s) in r.jsonl, same config)" in out

    # other options of the same plugins: still an estimate, saying so; a detector never measured: said too
    code, out, err = run_cli(capsys, *args[:-1], "--set", "generator.latent_dim=4", "--dry-run",
                             "--detectors", "ae,knn", "--results", str(tmp_path / "r2.jsonl"),
                             "--estimate-from", str(results))
    assert code == 0, err
    assert "(median of 2 row(s) in r2.jsonl + r.jsonl, same plugins, other options)" in out
    assert "fit detector  no measurement: knn x 2" in out and "unmeasured, counted as 0 s, so more" in out

    code, out, err = run_cli(capsys, *args, "--detectors", "ae", "--results", str(tmp_path / "empty.jsonl"))
    assert code == 0 and "estimated wall time: unknown -- no earlier ok rows on cpu in empty.jsonl" in out

    code, out, err = run_cli(capsys, *args, "--detectors", "ae", "--results", str(results),
                             "--estimate-from", str(tmp_path / "missing.jsonl"))
    assert code == 2 and err.strip() == f"error: --estimate-from {tmp_path / 'missing.jsonl'}: no such results file"


def test_dry_run_lists_skipped_combinations_with_reasons(tmp_path, capsys):
    code, out, err = run_cli(capsys, "grid", "--datasets", "digits", "--generators", "ae", "--policies", "none,random",
                             "--detectors", "ae,transformer", "--set", "detector.transformer.mode=classify",
                             "--seeds", "0", "--device", "cpu", "--results", str(tmp_path / "r.jsonl"),
                             "--cache-dir", str(tmp_path / "c"), "--dry-run")
    assert code == 0, err
    assert "4 combinations: 2 cells (2 to run, 0 already in results), 2 skipped (cannot run together)" in out
    assert f"skipped: 1 cell(s): {NEEDS_NONE}" in out and f"skipped: 1 cell(s): {NEEDS_NORMAL}" in out


def test_run_of_a_pair_that_cannot_run_together_is_one_line_before_any_stage(tmp_path, capsys, monkeypatch):
    digits = registry.load("datasets", "digits")
    monkeypatch.setattr(digits, "load", lambda self, seed: pytest.fail("data loaded before the pair was refused"))
    code, out, err = run_cli(capsys, "run", "--dataset", "digits", "--policy", "random", "--detector", "transformer",
                             "--detector.mode", "classify", "--device", "cpu", "--out", str(tmp_path / "runs"))
    assert code == 2 and err.strip() == f"error: {NEEDS_NORMAL}: they cannot run together"
    assert not (tmp_path / "runs").exists()
