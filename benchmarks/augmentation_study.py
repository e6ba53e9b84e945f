"""The augmentation study of issue 18: do latent policies that see the detector beat none / random / mixup?

    python benchmarks/augmentation_study.py --tune            # design choices, on digits only
    python benchmarks/augmentation_study.py --run core        # MNIST-5k, 50 normals (resumable chunks)
    python benchmarks/augmentation_study.py --run full        # MNIST-5k, the full training set (none)
    python benchmarks/augmentation_study.py --run ceiling     # analysis-only ceiling + diagnosis (seed cells)
    python benchmarks/augmentation_study.py --report          # .json + .md + figure + leaderboard page

Files: the grid's results file lives beside the stage cache (``--cache``, resumable); ``--report``
writes ``benchmarks/results/augmentation_study.jsonl`` (those rows without their training curves),
``.json`` (config, seeds, versions, device, commit, wall time, summary), ``.md`` and ``.png`` from it,
and the leaderboard page ``leaderboards/augmentation_study/``; ``--tune`` writes ``_tune.json/.md``.

Every cell runs through the grid runner (:func:`benchbox.grid`): its row carries the full resolved
config, the code fingerprint and timings; cells already in the results file are skipped (resumable),
fitted generators come from the stage cache, shared by all policies of a (class, seed).
``--max-minutes`` stops starting new chunks (one policy x one class) past that time, so each
command fits a CPU slot; run it again to continue.

Design (all choices made with ``--tune`` on ``digits``, never on the MNIST-5k test split):
MNIST-5k (embedded), normal class c in 0..9, 50 training normals (the rest of the training pool
unused), 5 seeds; generator ``ae`` at its defaults (16-d latent, 40 epochs); ``--augment.ratio 5``
(250 generated images for 50 real ones, issue 18's budget); detector ``knn`` (1-NN, raw pixels).
Policies: ``none``, ``random``, ``mixup`` (controls), ``select`` (best of N by the loop reward, no
learning), ``ppo-proxy`` (the old realism + novelty reward), ``ppo-loop`` (the detector-in-the-loop
reward, same weights as ``select``).

Analysis-only rows, computed here outside the grid (marked as such, never offered to a policy):

* ``ceiling (decoded extra real normals)``: the latents of the *remaining* real training normals
  of the same seed's pool (the ~220 not among the 50), decoded by the cell's cached generator and
  added to the 50 -- extra real data no policy gets: how much of the gap this generator can reach;
* a diagnosis of where the generated images land: for each test image, whether its nearest
  neighbour in the augmented memory is a generated image -- the share of test normals and of test
  anomalies "captured" by generated images (a policy helps 1-NN only if it captures normals more
  than anomalies), and the distance of each generated image to its nearest test normal vs its
  nearest test anomaly. After the fact, on the published cells; nothing is tuned on it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BOARD = ROOT / "leaderboards" / "augmentation_study"

RATIO = 5.0
TRAIN_LIMIT = 50
CLASSES = list(range(10))
SEEDS = [0, 1, 2, 3, 4]
GENERATOR: dict[str, Any] = {"name": "ae"}  # defaults: latent_dim 16, 40 epochs
TRANSFORMER_EPOCHS = 10  # the transformer at a reduced budget (default 60 epochs)
DETECTORS: dict[str, dict[str, Any]] = {"knn": {"name": "knn"},  # 1-NN on raw pixels
                                        "transformer": {"name": "transformer", "epochs": TRANSFORMER_EPOCHS}}

# --- chosen by --tune on digits (see TUNE below and augmentation_study_tune.md) ----------------
LOOP_REWARD = {"w_coverage": 1.0, "w_plausibility": 0.0, "w_duplicate": 0.0}
SELECT_FACTOR = 10 * RATIO  # N = 10 x the budget (issue 18's 2,500 candidates for 250)
PPO_STEPS = 8192  # 64 batched steps of 128 latent environments (default 32,768: 4x the CPU)

POLICIES: dict[str, dict[str, Any]] = {
    "none": {"name": "none"},
    "random": {"name": "random"},
    "mixup": {"name": "mixup"},
    "select": {"name": "select", "factor": SELECT_FACTOR, "keep": RATIO,
               "w_plausibility": LOOP_REWARD["w_plausibility"], "w_duplicate": LOOP_REWARD["w_duplicate"]},
    "ppo-proxy": {"name": "ppo", "reward": "proxy", "total_timesteps": PPO_STEPS},
    "ppo-loop": {"name": "ppo", "reward": "loop", "total_timesteps": PPO_STEPS, **LOOP_REWARD},
    "ddpg-loop": {"name": "ddpg", "reward": "loop", "total_timesteps": PPO_STEPS, **LOOP_REWARD},
}
CORE = ["none", "random", "mixup", "select", "ppo-loop", "ppo-proxy"]
TRANSFORMER_POLICIES, TRANSFORMER_SEEDS = "none,random,mixup,select,ppo-loop", "0,1"  # the reduced transformer block
CEILING = "ceiling (decoded extra real normals)"
FULL = "none @ full set"

# --tune: variants on digits (10 training normals, ratio 5, 10 classes x 3 seeds)
TUNE_LIMIT, TUNE_SEEDS = 10, [0, 1, 2]
REWARDS = {  # three reward designs of the loop term
    "R1 coverage": {"w_coverage": 1.0, "w_plausibility": 0.0, "w_duplicate": 0.0},
    "R2 coverage+plausibility": {"w_coverage": 1.0, "w_plausibility": 1.0, "w_duplicate": 0.0},
    "R3 coverage+plausibility+duplicate": {"w_coverage": 1.0, "w_plausibility": 1.0, "w_duplicate": 1.0},
}


def tune_policies() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {"none": {"name": "none"}, "random": {"name": "random"}, "mixup": {"name": "mixup"}}
    for rname, w in REWARDS.items():
        tag = rname.split()[0]
        for factor in (2, 10):
            out[f"select {tag} N={factor}x"] = {"name": "select", "factor": factor * RATIO, "keep": RATIO,
                                                "w_plausibility": w["w_plausibility"], "w_duplicate": w["w_duplicate"]}
        out[f"ppo-loop {tag}"] = {"name": "ppo", "reward": "loop", "total_timesteps": PPO_STEPS, **w}
    out["ppo-loop R1 32k"] = {"name": "ppo", "reward": "loop", "total_timesteps": 32768, **REWARDS["R1 coverage"]}
    out["ppo-proxy"] = {"name": "ppo", "reward": "proxy", "total_timesteps": PPO_STEPS}
    r1 = REWARDS["R1 coverage"]
    out["ppo-both R1+proxy"] = {"name": "ppo", "reward": "both", "total_timesteps": PPO_STEPS, **r1}
    out["select R1 N=10x infeat"] = {**out["select R1 N=10x"], "features": "infeat"}
    out["ppo-loop R1 infeat"] = {**out["ppo-loop R1"], "loop_features": "infeat"}
    out["select R1 N=10x val-only"] = {**out["select R1 N=10x"], "reference": "val"}
    out["ppo-loop R1 val-only"] = {**out["ppo-loop R1"], "loop_reference": "val"}
    out["ddpg-loop R1"] = {"name": "ddpg", "reward": "loop", "total_timesteps": PPO_STEPS, **r1}
    return out


# -----------------------------------------------------------------------------------------------
# running
# -----------------------------------------------------------------------------------------------


def spec(dataset: str, classes: list[int], limit: int, policy: dict[str, Any], seeds: list[int],
         generator: dict[str, Any] | None = None, detectors: list[str] | None = None) -> dict[str, Any]:
    return {"datasets": [{"name": dataset, "normal_class": c, "train_limit": limit} for c in classes],
            "generators": [generator or GENERATOR], "policies": [policy],
            "detectors": [DETECTORS[d] for d in detectors or ["knn"]], "seeds": seeds,
            "device": "cpu", "threads": 1, "augment": {"ratio": RATIO}}


STARTED = time.perf_counter()  # --max-minutes counts from here, for the whole invocation


def run_chunks(chunks: list[tuple[str, dict[str, Any]]], results: Path, cache: Path, max_minutes: float) -> bool:
    """Run (label, grid spec) chunks in order until done or out of time; True when all are done."""
    import benchbox

    last = 0.0
    for label, gs in chunks:
        elapsed = time.perf_counter() - STARTED
        if elapsed + last > max_minutes * 60:
            print(f"stopping: {elapsed / 60:.1f} min used (next chunk ~{last / 60:.1f} min); run again to continue")
            return False
        t = time.perf_counter()
        g = benchbox.grid(gs, results=results, write_runs=False, cache=cache, progress=False)
        if g.failed:
            print(f"{label}: {g.failed} failed: {g.failures[:2]}")
        ran = g.ok + g.failed
        if ran:
            last = time.perf_counter() - t
            print(f"{label}: {ran} cells in {last:.0f} s ({g.skipped} already there)", flush=True)
    return True


def core_chunks(policies: list[str], detectors: list[str]) -> list[tuple[str, dict[str, Any]]]:
    # class-major: a cut (out of time) leaves whole classes out, never a policy
    return [(f"{p} class {c}", spec("mnist", [c], TRAIN_LIMIT, POLICIES[p], SEEDS, detectors=detectors))
            for c in CLASSES for p in policies]


def full_chunks(policies: list[str], detectors: list[str]) -> list[tuple[str, dict[str, Any]]]:
    # `none` generates nothing: its generator is never used, so the full-set none cells fit it for 1 epoch
    # (the detector sees the real training images only; the AUROC does not depend on the generator)
    out = []
    for p in policies:
        gen = {**GENERATOR, "epochs": 1} if p == "none" else GENERATOR
        out += [(f"{p} full class {c}", spec("mnist", [c], 0, POLICIES[p], SEEDS, gen, detectors)) for c in CLASSES]
    return out


def tune_chunks() -> list[tuple[str, dict[str, Any]]]:
    return [(f"tune {k}", spec("digits", CLASSES, TUNE_LIMIT, v, TUNE_SEEDS)) for k, v in tune_policies().items()]


# -----------------------------------------------------------------------------------------------
# analysis-only rows: ceiling and diagnosis (need the cells' cached generators / augmented sets)
# -----------------------------------------------------------------------------------------------


def _cell(dataset: dict[str, Any], policy: dict[str, Any], seed: int, generator: dict[str, Any] | None = None) -> Any:
    import benchbox

    return benchbox.api.cell_spec((dataset["name"], {k: v for k, v in dataset.items() if k != "name"}),
                                  (GENERATOR["name"], {k: v for k, v in (generator or GENERATOR).items() if k != "name"}),
                                  (policy["name"], {k: v for k, v in policy.items() if k != "name"}),
                                  ("knn", {}),  # the stage-cache keys do not depend on the detector
                                  augment={"ratio": RATIO}, seed=seed, device="cpu", threads=1)


def _stage(cache: Path, cell: Any, stage: str) -> Any:
    from benchbox.cache import StageCache, default_root, stage_keys

    store = StageCache(str(default_root(str(cache))))
    value, status = store.load(stage, stage_keys(cell, "cpu")[stage])
    if status != "hit":
        raise RuntimeError(f"no cached {stage} for {cell.resolved()['dataset']} seed {cell.run.seed}: run --run core first")
    return value


def _score(detector: str, memory: Any, test: Any, seed: int) -> Any:
    """Image scores of ``test`` by the study's ``detector`` fitted on ``memory`` (the runner's seed offset)."""
    import torch

    from benchbox import registry
    from benchbox.interfaces import FitContext
    from benchbox.options import build_config

    cfg = dict(DETECTORS[detector])
    cls = registry.load("detectors", cfg.pop("name"))
    det = cls(build_config(cls.Config, cfg, detector))
    torch.manual_seed(seed * 101 + 3)
    det.fit(memory, FitContext(device=torch.device("cpu"), seed=seed * 101 + 3))
    return det.score(test).image


def analysis(cache: Path, out: Path, max_minutes: float, detectors: list[str]) -> None:
    """Ceiling AUROC per (class, seed) and the nearest-neighbour diagnosis per (class, seed, policy)."""
    import torch

    from benchbox import registry
    from benchbox.metrics import image_metrics

    done = {(r["kind"], r["class"], r["seed"], r.get("policy") or r.get("detector")) for r in _read(out)}
    mnist = registry.load("datasets", "mnist")
    for seed in SEEDS:
        for c in CLASSES:
            if time.perf_counter() - STARTED > max_minutes * 60:
                print("stopping analysis: out of time; run again to continue")
                return
            rows = []
            data = {"name": "mnist", "normal_class": c, "train_limit": TRAIN_LIMIT}
            small = mnist(mnist.Config(normal_class=c, train_limit=TRAIN_LIMIT)).load(seed)
            test = small.test
            for det in detectors:
                if ("ceiling", c, seed, det) in done:
                    continue
                full = mnist(mnist.Config(normal_class=c, train_limit=0)).load(seed)
                assert torch.equal(full.train[:TRAIN_LIMIT], small.train)  # the 50 are the first of the same pool
                extra = full.train[TRAIN_LIMIT:]
                gen = _stage(cache, _cell(data, POLICIES["none"], seed), "generator")
                decoded = gen.decode(gen.encode(extra)).clamp(0, 1)
                scores = _score(det, torch.cat([small.train, decoded]), test.images, seed)
                rows.append({"kind": "ceiling", "detector": det, "class": c, "seed": seed, "n_extra": len(extra),
                             "image_auroc": image_metrics(test.labels, scores)["image_auroc"]})
            base = _score("knn", small.train, test.images, seed)
            for p in CORE:
                if "knn" not in detectors or p == "none" or ("diagnosis", c, seed, p) in done:
                    continue
                try:
                    aug = _stage(cache, _cell(data, POLICIES[p], seed), "augment")
                except RuntimeError:
                    continue
                rows.append({"kind": "diagnosis", "class": c, "seed": seed, "policy": p,
                             **_diagnose(small.train, aug["generated"], test, base)})
            with out.open("a") as fh:
                for r in rows:
                    fh.write(json.dumps(r) + "\n")
            print(f"analysis class {c} seed {seed}: {len(rows)} rows", flush=True)


def _diagnose(train: Any, generated: Any, test: Any, base: Any) -> dict[str, Any]:
    """Where the generated images land relative to the test normals and anomalies (1-NN in pixels)."""
    import torch

    from benchbox_plugins.rl.loop_rewards import pairwise_distances

    f = lambda x: x.float().flatten(1)  # noqa: E731
    tx, gx, qx = f(train), f(generated), f(test.images)
    d_gen = pairwise_distances(qx, gx).min(1).values
    captured = d_gen < base.float()  # the test image's nearest neighbour becomes a generated image
    normal = test.labels == 0
    drop = (base.float() - torch.minimum(base.float(), d_gen))  # score decrease of each test image
    g_to = pairwise_distances(gx, qx)
    g_norm, g_anom = g_to[:, normal].min(1).values, g_to[:, ~normal].min(1).values
    d_train = pairwise_distances(gx, tx).min(1).values
    hist_edges = torch.linspace(-3, 3, 25)
    ratio = torch.log(g_norm / g_anom.clamp_min(1e-9))
    return {"captured_normals": float(captured[normal].float().mean()),
            "captured_anomalies": float(captured[~normal].float().mean()),
            "score_drop_normals": float(drop[normal].mean()), "score_drop_anomalies": float(drop[~normal].mean()),
            "gen_closer_to_anomaly": float((g_anom < g_norm).float().mean()),
            "gen_nn_test_normal": float(g_norm.median()), "gen_nn_test_anomaly": float(g_anom.median()),
            "gen_nn_train": float(d_train.median()),
            "log_ratio_hist": torch.histc(ratio.clamp(-2.999, 2.999), bins=24, min=-3, max=3).int().tolist(),
            "hist_edges": [round(float(e), 3) for e in hist_edges]}


# -----------------------------------------------------------------------------------------------
# report
# -----------------------------------------------------------------------------------------------


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def label_of(policy: dict[str, Any], table: dict[str, dict[str, Any]]) -> str | None:
    """The most specific entry of ``table`` whose every option the row's policy config has."""
    hits = [(len(v), k) for k, v in table.items() if all(policy.get(a) == b for a, b in v.items())]
    return max(hits)[1] if hits else None


def frame(results: Path, table: dict[str, dict[str, Any]], limit: int) -> Any:
    """One line per (policy label, class, seed): image AUROC and times, rows of the current study design only."""
    import benchbox

    df = benchbox.load_results(results, status="ok")
    df = df[df["dataset.train_limit"] == limit].copy()
    labels = []
    for _, r in df.iterrows():
        pol = {"name": r["policy"], **{k.split(".", 1)[1]: r[k] for k in df.columns
                                       if k.startswith("policy.") and not (isinstance(r[k], float) and math.isnan(r[k]))}}
        labels.append(label_of(pol, table))
    df["label"] = labels
    df["det"] = [label_of({"name": r["detector"], **{k.split(".", 1)[1]: r[k] for k in df.columns
                                                    if k.startswith("detector.")}}, DETECTORS) for _, r in df.iterrows()]
    df = df[df["label"].notna() & df["det"].notna()]
    df["class"] = df["dataset.normal_class"].astype(int)
    return df


def paired(a: Any, b: Any) -> dict[str, Any]:
    """Paired t-test (and Wilcoxon) of a - b over the shared (class, seed) pairs."""
    import numpy as np
    from scipy import stats

    j = a.to_frame("a").join(b.to_frame("b"), how="inner").dropna()
    d = (j["a"] - j["b"]).to_numpy()
    n = len(d)
    if n < 3:
        return {"n": n, "mean": float(d.mean()) if n else None, "p": None}
    ci = float(stats.t.ppf(0.975, n - 1) * d.std(ddof=1) / math.sqrt(n)) if n > 1 else None
    p = float(stats.ttest_rel(j["a"], j["b"]).pvalue) if d.std() > 0 else 1.0
    pw = float(stats.wilcoxon(d).pvalue) if n >= 6 and np.any(d != 0) else None
    return {"n": n, "mean": float(d.mean()), "ci95": ci, "p": p, "p_wilcoxon": pw, "wins": int((d > 0).sum()),
            "losses": int((d < 0).sum())}


def summarise(df: Any, full: Any, ceiling: list[dict[str, Any]], diag: list[dict[str, Any]],
              order: list[str]) -> dict[str, Any]:
    import pandas as pd

    auc = df.pivot_table(index=["class", "seed"], columns="label", values="image_auroc")
    none = auc["none"]
    ceil = pd.Series({(r["class"], r["seed"]): r["image_auroc"] for r in ceiling}, dtype=float)
    if len(ceil):
        ceil.index = pd.MultiIndex.from_tuples(ceil.index, names=["class", "seed"])
    fauc = full.pivot_table(index=["class", "seed"], columns="label", values="image_auroc") if len(full) else None
    full_none = fauc.get("none") if fauc is not None else None
    gap = float(full_none.mean() - none.loc[full_none.index].mean()) if full_none is not None and len(full_none) else None
    full_rows = {p: {"cells": int(fauc[p].notna().sum()), "mean_auroc": float(fauc[p].mean()),
                     "vs_none_full": paired(fauc[p], full_none) if p != "none" else None,
                     "vs_none_50": paired(fauc[p], none)} for p in (fauc.columns if fauc is not None else [])}
    rows = {}
    cols = [p for p in order if p in auc.columns] + ([CEILING] if len(ceil) else [])
    for p in cols:
        s = ceil.reindex(none.index) if p == CEILING else auc[p]
        r: dict[str, Any] = {"cells": int(s.notna().sum()), "mean_auroc": float(s.mean()),
                             "vs_none": paired(s, none)}
        for ctrl in ("random", "mixup"):
            if ctrl in auc.columns and p not in ("none", ctrl):
                r[f"vs_{ctrl}"] = paired(s, auc[ctrl])
        if p.endswith("-loop") and "select" in auc.columns:
            r["vs_select"] = paired(s, auc["select"])
        if gap:
            r["gap_closed"] = r["vs_none"]["mean"] / gap if r["vs_none"]["mean"] is not None else None
        if p != CEILING:
            sub = df[df["label"] == p]
            r["seconds_per_cell"] = float(sub["time.total"].mean())
            r["fit_policy_seconds_per_cell"] = float(sub["time.fit policy"].mean())
            r["seconds_total"] = float(sub["time.total"].sum())
            for k in ("dz_rms", "dz_spread", "gen_spread"):
                if k in sub.columns and sub[k].notna().any():
                    r[k] = float(sub[k].mean())
        d = [x for x in diag if x.get("policy") == p]
        if d:
            r["diagnosis"] = {k: float(sum(x[k] for x in d) / len(d)) for k in
                              ("captured_normals", "captured_anomalies", "score_drop_normals", "score_drop_anomalies",
                               "gen_closer_to_anomaly", "gen_nn_test_normal", "gen_nn_test_anomaly", "gen_nn_train")}
            r["diagnosis"]["log_ratio_hist"] = [sum(x["log_ratio_hist"][i] for x in d) for i in range(24)]
            r["diagnosis"]["cells"] = len(d)
        rows[p] = r
    series = {**{p: auc[p] for p in auc.columns}, CEILING: ceil.reindex(none.index) if len(ceil) else None}
    per_class = {p: {int(c): paired(series[p].xs(c, level="class"), none.xs(c, level="class"))
                     for c in sorted(auc.index.get_level_values(0).unique())}
                 for p in cols if p != "none"}
    return {"policies": rows, "per_class_delta": per_class, "full": full_rows,
            "none_full_mean": float(full_none.mean()) if full_none is not None else None,
            "none_50_mean_on_full_pairs": float(none.loc[full_none.index].mean()) if full_none is not None else None,
            "gap": gap}


def _fmt(x: Any, spec: str = "+.4f") -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _ptxt(t: dict[str, Any] | None) -> str:
    if not t or t.get("p") is None:
        return "–"
    verdict = "better" if t["p"] < 0.05 and t["mean"] > 0 else "worse" if t["p"] < 0.05 else "tie"
    return f"{t['mean']:+.4f} (p={t['p']:.3g}, {t['wins']}/{t['n']}) {verdict}"


def write_figure(summaries: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(len(summaries), 1, figsize=(11, 3.6 * len(summaries)), squeeze=False)
    for ax, (det, summary) in zip(axes[:, 0], summaries.items()):
        per = summary["per_class_delta"]
        pols = list(per)
        width = 0.8 / max(1, len(pols))
        for i, p in enumerate(pols):
            cls = sorted(per[p], key=int)
            off = (i - (len(pols) - 1) / 2) * width
            x = np.array([int(c) for c in cls] + [10.5]) + off
            allp = summary["policies"][p]["vs_none"]
            m = [per[p][c]["mean"] for c in cls] + [allp["mean"]]
            e = [per[p][c].get("ci95") or 0 for c in cls] + [allp.get("ci95") or 0]
            m = [np.nan if v is None else v for v in m]  # a class without a pair (cut by time)
            ax.errorbar(x, m, yerr=e, fmt="o", ms=3.5, capsize=2, label=p, ls="none")
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(list(range(10)) + [10.5], [str(c) for c in range(10)] + ["mean"])
        ax.set_ylabel("Δ image AUROC vs none")
        ax.set_title(f"{det}: MNIST-5k, {TRAIN_LIMIT} training normals + {int(RATIO * TRAIN_LIMIT)} generated; 95 % CI "
                     "over seeds (per class) or class x seed (mean)", fontsize=9)
        ax.legend(fontsize=7, ncol=4)
    axes[-1, 0].set_xlabel("normal class")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _policy_table(s: dict[str, Any]) -> list[str]:
    L = ["| policy | cells | mean image AUROC | Δ vs none | vs random | vs mixup | loop vs select | gap closed | "
         "s / cell (fit policy) |", "|---|---|---|---|---|---|---|---|---|"]
    for p, r in s["policies"].items():
        L.append(f"| {p} | {r['cells']} | {r['mean_auroc']:.4f} | {_ptxt(r['vs_none']) if p != 'none' else '–'} | "
                 f"{_ptxt(r.get('vs_random'))} | {_ptxt(r.get('vs_mixup'))} | {_ptxt(r.get('vs_select'))} | "
                 f"{_fmt(r.get('gap_closed'), '+.0%')} | "
                 + (f"{r['seconds_per_cell']:.1f} ({r['fit_policy_seconds_per_cell']:.1f}) |" if 'seconds_per_cell' in r
                    else "analysis only |"))
    for p, r in s.get("full", {}).items():
        vs = r.get("vs_none_full")
        L.append(f"| {p} @ full set | {r['cells']} | {r['mean_auroc']:.4f} | {_ptxt(r['vs_none_50'])} (vs none @ "
                 f"{TRAIN_LIMIT}) | | | | {'100%' if p == 'none' else ''} | "
                 + (f"vs none @ full: {_ptxt(vs)}" if vs else "") + " |")
    return L


def write_md(data: dict[str, Any], tune: dict[str, Any] | None) -> str:
    dets = data["summary"]
    L = [f"# Augmentation study (issue 18): MNIST-5k, {TRAIN_LIMIT} training normals", "",
         f"Written by `benchmarks/augmentation_study.py --report` from `augmentation_study.json` (commit "
         f"{data['commit']}, {data['device'].get('platform', '')}, {data['device'].get('torch_threads', 1)} torch "
         f"thread(s); summed wall time of the cells {data['cells_wall_seconds'] / 60:.1f} min).", "",
         f"Design: MNIST-5k (embedded), normal classes 0-9; generator `ae` at its defaults ({data['generator_note']}); "
         f"`--augment.ratio {RATIO}` ({int(RATIO * TRAIN_LIMIT)} generated images for {TRAIN_LIMIT} real normals); "
         "detectors " + ", ".join(f"`{d}` ({json.dumps(DETECTORS[d])})" for d in dets) + ". "
         "Every design choice (reward weights, band, reference set, select's N, PPO's budget) was made with "
         "`--tune` on `digits` (`augmentation_study_tune.md`), never on the MNIST-5k test split.", "",
         "Paired tests are over (class, seed) pairs: paired t-test mean Δ (p, wins/pairs); `better`/`worse` only at "
         "p < 0.05, else `tie` (no multiple-comparison correction here; the per-class leaderboard page "
         "`leaderboards/augmentation_study/` applies Holm over seeds). Gap = none on the full training set − none at "
         f"{TRAIN_LIMIT}, on the same (class, seed) pairs; `gap closed` = Δ vs none / gap.", ""]
    for det, s in dets.items():
        L += [f"## Detector `{det}`: seeds {s['seeds']}, classes {s['classes']}", "",
              f"Gap: none @ full {_fmt(s['none_full_mean'], '.4f')} − none @ {TRAIN_LIMIT} "
              f"{_fmt(s['none_50_mean_on_full_pairs'], '.4f')} = {_fmt(s['gap'])}.", ""]
        L += _policy_table(s) + ["", "**Verdict.** " + s["verdict"], ""]
        L += ["Per class, Δ image AUROC vs none (mean over seeds):", "",
              "| policy | " + " | ".join(str(c) for c in CLASSES) + " |", "|---|" + "---|" * len(CLASSES)]
        for p, per in s["per_class_delta"].items():
            L.append(f"| {p} | " + " | ".join(_fmt((per.get(c) or per.get(str(c)) or {}).get("mean")) for c in CLASSES)
                     + " |")
        L.append("")
    L += [f"`{CEILING}` is analysis only: the latents of the training pool's remaining real normals (~220, never "
          "given to a policy; the 50 are the first of the same shuffled pool) decoded by the cell's own generator and "
          f"added to the {TRAIN_LIMIT}: how much of the gap this generator reaches with real extra data. `s / cell` "
          "counts the policy's own cells (the generator is fitted once per (class, seed), in the `none` cell, and "
          "comes from the stage cache for the others). Full-set `none` cells fit their (unused) generator for 1 epoch.",
          "", "![Δ AUROC vs none per class](augmentation_study.png)", ""]
    knn = dets.get("knn", {}).get("policies", {})
    if any("diagnosis" in r for r in knn.values()):
        L += ["## Where the generated images land (knn, pixels; analysis after the fact, not used for any choice)", "",
              "Per cell: a test image is *captured* when its nearest neighbour in the augmented memory is a generated "
              "image; 1-NN AUROC rises only if generated images lower the scores of test normals more than those of "
              "anomalies. `score drop` is the mean decrease of the 1-NN distance; last column: median distance of a "
              "generated image to its nearest test normal / test anomaly / real training normal. Means over cells.", "",
              "| policy | cells | captured normals | captured anomalies | score drop normals | score drop anomalies | "
              "generated closer to an anomaly than a normal | median NN dist normal / anomaly / train |",
              "|---|---|---|---|---|---|---|---|"]
        for p, r in knn.items():
            d = r.get("diagnosis")
            if d:
                L.append(f"| {p} | {d['cells']} | {d['captured_normals']:.3f} | {d['captured_anomalies']:.3f} | "
                         f"{d['score_drop_normals']:.3f} | {d['score_drop_anomalies']:.3f} | "
                         f"{d['gen_closer_to_anomaly']:.3f} | {d['gen_nn_test_normal']:.2f} / "
                         f"{d['gen_nn_test_anomaly']:.2f} / {d['gen_nn_train']:.2f} |")
        L += ["", "Histogram of log(d(generated, nearest test normal) / d(generated, nearest test anomaly)), bins of "
              "0.25 from -3 to 3 (negative: nearer a normal), summed over cells:", "", "```"]
        for p, r in knn.items():
            if r.get("diagnosis"):
                L.append(f"{p:>10} " + " ".join(f"{v:d}" for v in r["diagnosis"]["log_ratio_hist"]))
        L += ["```", ""]
    L += ["## What was cut (CPU budget: ~75 min of one 1-thread slot, not the issue's ~4 h on 2 cores)", ""]
    L += [f"- {c}" for c in data["cut"]]
    L += ["", "## Commands", "", "```"] + data["commands"] + ["```", ""]
    if tune:
        L += ["## Tuning on digits", "", f"`augmentation_study_tune.md`; chosen: {json.dumps(tune.get('chosen'))}.", ""]
    return "\n".join(L) + "\n"


CUT = [
    "the role `anomaly` block, `ddpg-loop` on MNIST and the textures set: not run;",
    f"detector `transformer` at {TRANSFORMER_EPOCHS} epochs (default 60) and only on the seeds listed in its section;",
    "detector `ae`: not run;",
    "full-set rows only for `none` (1-epoch generator: `none` never uses it) and `mixup`; no full-set loop rows;",
    f"PPO budget {PPO_STEPS} environment steps (default 32,768), chosen on digits;",
]


def verdict(s: dict[str, Any]) -> str:
    pols = s["policies"]
    lines = []
    for p, r in pols.items():
        if not p.endswith("-loop"):
            continue
        ok = all((r.get(k) or {}).get("p") is not None and r[k]["p"] < 0.05 and r[k]["mean"] > 0
                 for k in ("vs_none", "vs_random", "vs_mixup"))
        g = r.get("gap_closed")
        met = ok and g is not None and g >= 0.30
        lines.append(f"{p}: target **{'MET' if met else 'NOT met'}** -- Δ vs none {_ptxt(r['vs_none'])}, vs random "
                     f"{_ptxt(r.get('vs_random'))}, vs mixup {_ptxt(r.get('vs_mixup'))}, gap closed "
                     f"{_fmt(g, '+.0%')}; vs select on the same reward {_ptxt(r.get('vs_select'))}.")
    best = max((p for p in pols if p not in ("none", CEILING)), key=lambda p: pols[p]["mean_auroc"], default=None)
    if best:
        lines.append(f"Best policy reached: {best}, {pols[best]['mean_auroc']:.4f} "
                     f"(Δ vs none {_ptxt(pols[best]['vs_none'])}, gap closed {_fmt(pols[best].get('gap_closed'), '+.0%')}).")
    if CEILING in pols:
        c = pols[CEILING]
        lines.append(f"Ceiling with this generator (decoded extra real normals, analysis only): Δ vs none "
                     f"{_ptxt(c['vs_none'])}, gap closed {_fmt(c.get('gap_closed'), '+.0%')}.")
    return " ".join(lines)


def report(results: Path, tune_results: Path, analysis_file: Path, t0: float, commands: list[str],
           generator_note: str) -> None:
    import benchbox
    from provenance import provenance

    keep = [{k: v for k, v in r.items() if k != "curves"} for r in _read(results)]
    (RESULTS / "augmentation_study.jsonl").write_text("".join(json.dumps(r) + "\n" for r in keep))
    df_all = frame(RESULTS / "augmentation_study.jsonl", POLICIES, TRAIN_LIMIT)
    full_all = frame(RESULTS / "augmentation_study.jsonl", {"none": POLICIES["none"], "mixup": POLICIES["mixup"]}, 0)
    extra = _read(analysis_file)
    (RESULTS / "augmentation_study_analysis.jsonl").write_text("".join(json.dumps(r) + "\n" for r in extra))
    diag = [r for r in extra if r["kind"] == "diagnosis"]
    summaries = {}
    for det in [d for d in DETECTORS if d in set(df_all["det"])]:
        df = df_all[df_all["det"] == det]
        n_pol = df["label"].nunique()  # keep the (class, seed) pairs every policy has (a time cut leaves some out)
        full_pairs = df.groupby(["class", "seed"])["label"].transform("nunique") == n_pol
        df = df[full_pairs]
        full = full_all[full_all["det"] == det] if len(full_all) else full_all
        ceiling = [r for r in extra if r["kind"] == "ceiling" and r.get("detector", "knn") == det]
        order = [p for p in POLICIES if p in set(df["label"])]
        s = summarise(df, full, ceiling, diag if det == "knn" else [], order)
        s["seeds"] = sorted(int(x) for x in set(df["seed"]))
        s["classes"] = sorted(int(x) for x in set(df["class"]))
        s["verdict"] = verdict(s)
        summaries[det] = s
    tune = _tune_summary(tune_results) if tune_results.exists() else None
    data = {"config": {"dataset": "mnist (embedded MNIST-5k)", "classes": CLASSES, "train_limit": TRAIN_LIMIT,
                       "augment_ratio": RATIO, "generator": GENERATOR, "detectors": DETECTORS,
                       "policies": POLICIES, "loop_reward": LOOP_REWARD,
                       "results": "benchmarks/results/augmentation_study.jsonl (the grid's rows without their "
                                  "training curves)"},
            "seeds": sorted(int(x) for x in set(df_all["seed"])), "summary": summaries,
            "cut": CUT if "transformer" in summaries else
            ["detector `transformer`: not run (no CPU slot left before the deadline; the script runs it with "
             f"`--detectors transformer`, {TRANSFORMER_EPOCHS} epochs)"] + [c for c in CUT if "transformer" not in c],
            "commands": commands, "generator_note": generator_note,
            "cells_wall_seconds": float(df_all["time.total"].sum() + (full_all["time.total"].sum() if len(full_all) else 0)),
            "tune": tune, **provenance("cpu", t0)}
    (RESULTS / "augmentation_study.json").write_text(json.dumps(data, indent=1, default=float) + "\n")
    write_figure(summaries, RESULTS / "augmentation_study.png")
    (RESULTS / "augmentation_study.md").write_text(write_md(data, tune))
    rows = benchbox.load_results(RESULTS / "augmentation_study.jsonl", status="ok")
    benchbox.leaderboard(rows, out=BOARD, title="Augmentation study (issue 18): MNIST-5k per class and data size")
    print(f"wrote {RESULTS / 'augmentation_study.md'}, .json, .png and {BOARD}")


def _tune_summary(path: Path) -> dict[str, Any]:
    df = frame(path, tune_policies(), TUNE_LIMIT)
    auc = df.pivot_table(index=["class", "seed"], columns="label", values="image_auroc")
    out = {p: {"mean_auroc": float(auc[p].mean()), "vs_none": paired(auc[p], auc["none"]),
               "vs_mixup": paired(auc[p], auc["mixup"]) if p != "mixup" else None,
               "seconds_per_cell": float(df[df["label"] == p]["time.total"].mean())} for p in auc.columns}
    return {"variants": out, "chosen": {"loop_reward": LOOP_REWARD, "select_factor": SELECT_FACTOR,
                                        "ppo_steps": PPO_STEPS}}


def write_tune(path: Path, t0: float) -> None:
    from provenance import provenance

    t = _tune_summary(path)
    data = {"config": {"dataset": "digits", "classes": CLASSES, "seeds": TUNE_SEEDS, "train_limit": TUNE_LIMIT,
                       "augment_ratio": RATIO, "variants": tune_policies()}, "seeds": TUNE_SEEDS, **t,
            **provenance("cpu", t0)}
    (RESULTS / "augmentation_study_tune.json").write_text(json.dumps(data, indent=1, default=float) + "\n")
    L = ["# Augmentation study: design choices on digits (never on MNIST-5k or textures)", "",
         f"Written by `benchmarks/augmentation_study.py --tune` from `augmentation_study_tune.json` (commit {data['commit']}). "
         f"digits, 10 classes x seeds {TUNE_SEEDS}, {TUNE_LIMIT} training normals, ratio {RATIO}, generator ae, "
         "detector knn (pixels). Δ and paired t-tests over (class, seed) pairs.", "",
         "Reward designs of the loop term (select ranks candidates by it, ppo-loop / ddpg-loop learn from it): "
         "R1 = coverage only; R2 = coverage + plausibility (own 1-NN score inside the 5-95th percentile band of "
         "the validation normals' scores); R3 = R2 + duplicate penalty; `ppo-both` = R1 + the old proxy terms "
         "(realism + novelty band - size). Variants: select's N = 2x or 10x the budget; loop feature space "
         "pixels or `infeat`; reference normals validation + leave-one-out (default) or validation only; PPO "
         "8,192 or 32,768 steps. The grid's rows stay in the cache folder (`--cache`), not in git.", "",
         "| variant | mean image AUROC | Δ vs none | Δ vs mixup | s / cell |", "|---|---|---|---|---|"]
    for p, r in sorted(t["variants"].items(), key=lambda kv: -kv[1]["mean_auroc"]):
        L.append(f"| {p} | {r['mean_auroc']:.4f} | {_ptxt(r['vs_none']) if p != 'none' else '–'} | "
                 f"{_ptxt(r['vs_mixup'])} | {r['seconds_per_cell']:.1f} |")
    v = t["variants"]
    sel = [k for k in v if k.startswith("select ") and "infeat" not in k and "val-only" not in k]
    best = max(sel, key=lambda k: v[k]["mean_auroc"]) if sel else None
    L += ["", "Rule (fixed before the MNIST runs): the loop reward and select's N are those of the best `select` "
          "variant (search isolates the reward from the RL); feature space and reference set stay pixels / "
          "validation + leave-one-out unless a variant beats them by > 0.001; PPO keeps 8,192 steps unless "
          "32,768 beats it by > 0.001 (4x the CPU). "
          f"Best select variant here: `{best}`.", "",
          f"Chosen for the study: {json.dumps(t['chosen'])}.", ""]
    (RESULTS / "augmentation_study_tune.md").write_text("\n".join(L) + "\n")
    print(f"wrote {RESULTS / 'augmentation_study_tune.md'}")


def main(argv: list[str] | None = None) -> int:
    global CLASSES, SEEDS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tune", action="store_true", help="run the digits design variants and write the tune report")
    ap.add_argument("--run", choices=["core", "full", "ceiling"], action="append", default=[])
    ap.add_argument("--policies", default=",".join(CORE), help="study policies of --run core/full")
    ap.add_argument("--classes", default=",".join(map(str, CLASSES)), help="MNIST normal classes (a cut design)")
    ap.add_argument("--seeds", default=",".join(map(str, SEEDS)), help="seeds (a cut design)")
    ap.add_argument("--detectors", default="knn", help="study detectors of --run core/full/ceiling: "
                    + ", ".join(DETECTORS))
    ap.add_argument("--generator-note", default="the generator backbone on main",
                    help="what the .md says about the generator backbone the cells ran on")
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--max-minutes", type=float, default=13.0, help="start no chunk past this many minutes")
    ap.add_argument("--until", default="", help="UTC HH:MM: also start no chunk past this time of day")
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "benchbox-study")
    ap.add_argument("--results", type=Path, default=None,
                    help="the grid's results file (default: in --cache; --report commits a copy without curves)")
    a = ap.parse_args(argv)
    try:
        CLASSES, SEEDS = [int(c) for c in a.classes.split(",")], [int(c) for c in a.seeds.split(",")]
    except ValueError:
        print(f"augmentation_study.py: --classes / --seeds must be comma-separated integers, got {a.classes!r}, "
              f"{a.seeds!r}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    if a.until:
        import datetime as dt

        now = dt.datetime.now(dt.timezone.utc)
        hh, mm = (int(x) for x in a.until.split(":"))
        left = (now.replace(hour=hh, minute=mm, second=0, microsecond=0) - now).total_seconds() / 60
        a.max_minutes = min(a.max_minutes, max(0.0, left + (time.perf_counter() - STARTED) / 60))
    pols = [p.strip() for p in a.policies.split(",") if p.strip()]
    bad = [p for p in pols if p not in POLICIES]
    if bad:
        print(f"augmentation_study.py: --policies: unknown {', '.join(bad)}; expected some of {', '.join(POLICIES)}",
              file=sys.stderr)
        return 2
    a.results = a.results or a.cache / "augmentation_study.jsonl"
    tune_results = a.results.with_name("augmentation_study_tune.jsonl")
    analysis_file = a.results.with_name("augmentation_study_analysis.jsonl")
    dets = [d.strip() for d in a.detectors.split(",") if d.strip()]
    if any(d not in DETECTORS for d in dets):
        print(f"augmentation_study.py: --detectors: expected some of {', '.join(DETECTORS)}, got {a.detectors!r}",
              file=sys.stderr)
        return 2
    if a.tune:
        if run_chunks(tune_chunks(), tune_results, a.cache, a.max_minutes):
            write_tune(tune_results, t0)
    for what in a.run:  # out of time: the rest is skipped (a --report still runs, on what is there)
        if what == "core" and not run_chunks(core_chunks(pols, dets), a.results, a.cache, a.max_minutes):
            break
        if what == "full" and not run_chunks(full_chunks([p for p in pols if p in ("none", "mixup")], dets), a.results,
                                             a.cache, a.max_minutes):
            break
        if what == "ceiling":
            analysis(a.cache, analysis_file, a.max_minutes, dets)
    if a.report:
        commands = ["python benchmarks/augmentation_study.py --tune",
                    "python benchmarks/augmentation_study.py --run core --run full --run ceiling   # repeated until "
                    "done (resumable, <= 14 min each)",
                    f"python benchmarks/augmentation_study.py --run core --run full --detectors transformer "
                    f"--policies {TRANSFORMER_POLICIES} --seeds {TRANSFORMER_SEEDS}   # repeated until done",
                    "python benchmarks/augmentation_study.py --report --generator-note '...'",
                    "(each through /work/notes/cpu: 1 torch thread)"]
        report(a.results, tune_results, analysis_file, t0, commands, a.generator_note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
