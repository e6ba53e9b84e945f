"""``benchbox leaderboard RESULTS``: tables from grid results, following docs' benchmark protocol.

Rows are grouped by the *full* dataset config (dataset, category and every dataset option: a
``train_limit = 50`` run and a full-data run of the same cell are different groups, each with its
own section and ranks). Within a group, one row per method (generator + config, policy + config,
detector + config, augment config):

* mean ± 95 % confidence interval over seeds, t distribution (``t_{0.975, n-1} · s / √n``) for
  image AUROC, and pixel AUROC, AUPRO and FID where present;
* Δ image AUROC vs the ``none`` control of the same generator, detector and data, paired by
  *seed* (never by row order; seeds present on one side only are left out, ``pairs`` says how
  many remain);
* a test of Δ only from ≥ 3 pairs (``MIN_PAIRS``; fewer: no p-value and the verdict
  ``n/a (<3 pairs)``). The test is the paired t-test (``scipy.stats.ttest_rel``), except when every
  difference is the same number: the t statistic is then 0/0 (zero variance), so p comes from the
  exact two-sided sign test, which needs no variance -- identical differences from 3 seeds give
  p = 0.25, never the p = 0 a zero-variance t-test would claim;
* Holm–Bonferroni across all policies compared with the same control in the group (``p_holm``,
  beside the raw ``p_value``); the verdict is ``better`` / ``worse`` only when the Holm-adjusted
  p < 0.05, otherwise ``tie`` -- ties are ties;
* with ≥ 6 pairs (``MIN_WILCOXON``) also the Wilcoxon signed-rank p (``p_wilcoxon``), shown beside
  the t-test as a check that does not assume normal differences (the verdict uses the t-test);
* rank by mean image AUROC at the printed precision within the group (equal printed means share
  a rank);
* rows with fewer than 3 seeds are marked (``seeds`` column, and ``*`` in Markdown).

Formats: Markdown (for committing), CSV, JSON and one static HTML page (sortable table through a
few lines of inline JS, sample-image thumbnails as data URIs, no external resources).
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .config import config_hash
from .errors import ConfigError

METRICS = {"image_auroc": "image AUROC", "pixel_auroc": "pixel AUROC", "pixel_aupro": "AUPRO", "gen_fid": "FID"}
MIN_SEEDS = 3  # fewer seeds: the row is marked
MIN_PAIRS = 3  # fewer paired seeds: no test, no verdict
MIN_WILCOXON = 6  # the signed-rank test's smallest two-sided exact p is 2 / 2**n: n >= 6 can reach p < 0.05
ALPHA = 0.05
IDENTICAL = 1e-9  # differences (in AUROC) closer than this are the same number: float noise, not variance
GROUP = ["dataset", "category", "dataset_cfg"]  # one section, one ranking, one Holm family per control
METHOD = ["generator", "generator_cfg", "policy", "policy_cfg", "detector", "detector_cfg", "augment_cfg"]
CONTROL = ["generator", "generator_cfg", "detector", "detector_cfg"]  # what a policy is compared within


def _label(cfg: dict[str, Any], kind: str, ambiguous: bool) -> str:
    part = cfg[kind]
    return part["name"] + (f"[{config_hash(part, 6)}]" if ambiguous else "")


def data_label(dataset: dict[str, Any]) -> str:
    """The dataset options of a row (all but the name), ``key=value`` sorted by key."""
    return ", ".join(f"{k}={json.dumps(v) if isinstance(v, str) else v}"
                     for k, v in sorted(dataset.items()) if k != "name")


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """One line per ok cell: identity columns, seed, and the metrics."""
    recs = []
    for r in rows:
        if r.get("status") != "ok":
            continue
        c = r["config"]
        m = r.get("metrics", {})
        recs.append({
            "dataset": c["dataset"]["name"], "category": str((r.get("data") or {}).get("category", "")),
            "dataset_cfg": config_hash(c["dataset"], 8), "data_config": data_label(c["dataset"]),
            "generator_cfg": config_hash(c["generator"], 8), "policy_cfg": config_hash(c["policy"], 8),
            "detector_cfg": config_hash(c["detector"], 8), "augment_cfg": config_hash(c["augment"], 8),
            "generator": c["generator"]["name"], "policy": c["policy"]["name"], "detector": c["detector"]["name"],
            "seed": r["seed"], "path": r.get("path"), "_config": c, "stale": r.get("_stale"),
            **{k: (float(m[k]) if m.get(k) is not None else np.nan) for k in METRICS},
        })
    return pd.DataFrame(recs)


def current_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per cell (config hash): the last row made by the code installed now, else the last row.

    Each returned row is a copy with ``_stale``: False (current code), True (made by other code:
    another benchbox version or plugin source, or rows from before code fingerprints) or None
    (cannot tell: a plugin of the row is not installed here).
    """
    from .fingerprint import staleness

    flags = staleness(rows)
    best: dict[str, tuple[dict[str, Any], bool | None]] = {}
    for i, r in enumerate(rows):
        prev = best.get(r["config_hash"])
        if prev is None or not (prev[1] is False and flags[i] is not False):
            best[r["config_hash"]] = (r, flags[i])
    return [{**r, "_stale": flag} for r, flag in best.values()]


def _ci(values: np.ndarray) -> tuple[float, float]:
    from scipy import stats

    values = values[~np.isnan(values)]
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = float(values.mean())
    if n < 2:
        return mean, math.nan
    return mean, float(stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / math.sqrt(n))


def paired(method: pd.Series, control: pd.Series) -> dict[str, Any]:
    """Δ = method - control over the seeds both have (the Series are indexed by seed), and its test.

    Keys: ``n_pairs``, ``delta``, ``delta_ci95``, ``p_value`` (raw, NaN below ``MIN_PAIRS``),
    ``test`` and ``p_wilcoxon`` (NaN below ``MIN_WILCOXON`` pairs).
    """
    from scipy import stats

    common = sorted(set(method.dropna().index) & set(control.dropna().index))
    d = np.array([method[s] - control[s] for s in common], dtype=float)
    out: dict[str, Any] = {"n_pairs": len(common), "delta": math.nan, "delta_ci95": math.nan,
                           "p_value": math.nan, "test": "", "p_wilcoxon": math.nan}
    if not common:
        return out
    out["delta"], out["delta_ci95"] = _ci(d)
    if len(d) < MIN_PAIRS:
        out["test"] = f"none (< {MIN_PAIRS} pairs)"
        return out
    if np.ptp(d) <= IDENTICAL:  # zero variance: the t statistic is 0/0; the sign test needs none
        d = np.where(np.abs(d) <= IDENTICAL, 0.0, d)
        nonzero = int(np.count_nonzero(d))
        out["p_value"] = float(stats.binomtest(int((d > 0).sum()), nonzero, 0.5).pvalue) if nonzero else 1.0
        out["test"] = "sign test (identical differences)"
    else:
        out["p_value"] = float(stats.ttest_1samp(d, 0.0).pvalue)  # == ttest_rel(method, control)
        out["test"] = "paired t-test"
    if len(d) >= MIN_WILCOXON and np.count_nonzero(np.abs(d) > IDENTICAL):
        out["p_wilcoxon"] = float(stats.wilcoxon(np.where(np.abs(d) <= IDENTICAL, 0.0, d)).pvalue)
    return out


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (step-down, monotone, capped at 1), in the input order.

    NaN entries (no test) are not part of the family and stay NaN.
    """
    idx = [i for i, p in enumerate(p_values) if p == p]
    m = len(idx)
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def _verdict(rec: dict[str, Any]) -> str:
    if rec["_control"]:
        return "control"
    if not rec["_has_control"]:
        return "no control"
    p = rec["p_holm"]
    if p != p:
        return f"n/a (<{MIN_PAIRS} pairs)"
    return ("better" if rec["delta"] > 0 else "worse") if p < ALPHA else "tie"


def build(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The leaderboard table (one row per method and data group), sorted by group then rank."""
    df = frame(rows)
    if df.empty:
        raise ConfigError("no successful rows in the results: nothing to rank")
    # a name used with several configs gets a short config hash in its label
    amb = {k: df.groupby(k)[f"{k}_cfg"].nunique().to_dict() for k in ("generator", "policy", "detector")}
    by_seed = lambda g: g.groupby("seed")["image_auroc"].mean()  # noqa: E731
    out = []
    for key, g in df.groupby(GROUP + METHOD, sort=True, dropna=False):
        ident = dict(zip(GROUP + METHOD, key))
        cfg = g["_config"].iloc[0]
        rec: dict[str, Any] = {
            "dataset": ident["dataset"], "category": ident["category"], "data_config": g["data_config"].iloc[0],
            "dataset_cfg": ident["dataset_cfg"],
            **{k: _label(cfg, k, amb[k][ident[k]] > 1) for k in ("generator", "policy", "detector")},
            "_family": tuple(ident[k] for k in GROUP + CONTROL), "_control": ident["policy"] == "none",
            "_has_control": False,
            "n_seeds": int(g["seed"].nunique()), "seeds": ",".join(str(s) for s in sorted(g["seed"].unique())),
            "n_stale": int((g["stale"] == True).sum()),  # noqa: E712  (None: cannot tell, not stale)
        }
        rec["few_seeds"] = rec["n_seeds"] < MIN_SEEDS
        for m in METRICS:
            mean, half = _ci(g[m].to_numpy(dtype=float))
            rec[f"{m}_mean"], rec[f"{m}_ci95"] = mean, half
        rec.update(paired(pd.Series(dtype=float), pd.Series(dtype=float)))
        if ident["policy"] != "none":
            sel = np.logical_and.reduce([df[k] == ident[k] for k in GROUP + CONTROL]) & (df.policy == "none")
            if sel.any():
                rec.update(paired(by_seed(g), by_seed(df[sel])), _has_control=True)
        rec["sample"] = next((p for p in g["path"] if isinstance(p, str) and (Path(p) / "samples.png").is_file()), None)
        out.append(rec)
    table = pd.DataFrame(out)
    table["p_holm"] = math.nan
    for _, fam in table[~table["_control"]].groupby("_family", sort=False):
        table.loc[fam.index, "p_holm"] = holm(fam["p_value"].tolist())
    table["verdict"] = [_verdict(r) for r in table.to_dict("records")]
    table = table.drop(columns=["_family", "_control", "_has_control"])
    table["rank"] = (table.groupby(GROUP)["image_auroc_mean"]
                     .transform(lambda s: s.round(3).rank(ascending=False, method="min")).astype("Int64"))
    return table.sort_values(["dataset", "category", "data_config", "rank", "generator", "policy", "detector"]
                             ).reset_index(drop=True)


def _fmt(mean: float, half: float, digits: int = 3) -> str:
    if mean != mean:
        return "–"
    return f"{mean:.{digits}f} ± {half:.{digits}f}" if half == half else f"{mean:.{digits}f} (n=1)"


def _p(p: float) -> str:
    return "" if p != p else f"{p:.3g}"


def _display(table: pd.DataFrame) -> pd.DataFrame:
    present = [m for m in METRICS if table[f"{m}_mean"].notna().any()]
    disp = pd.DataFrame({
        "rank": table["rank"].astype(str), "dataset": table["dataset"], "category": table["category"].astype(str),
        "data config": table["data_config"],
        "generator": table["generator"], "policy": table["policy"], "detector": table["detector"],
        "seeds": [f"{n}*" if few else str(n) for n, few in zip(table["n_seeds"], table["few_seeds"])],
    })
    for m in present:
        disp[METRICS[m]] = [_fmt(a, b, 1 if m == "gen_fid" else 3) for a, b in zip(table[f"{m}_mean"], table[f"{m}_ci95"])]
    disp["Δ AUROC vs none"] = [("" if d != d else f"{d:+.3f}" + (f" ± {h:.3f}" if h == h else ""))
                               for d, h in zip(table["delta"], table["delta_ci95"])]
    disp["pairs"] = [str(n) if v != "control" else "" for n, v in zip(table["n_pairs"], table["verdict"])]
    disp["p raw"] = [_p(p) + (" (sign)" if t.startswith("sign") else "") for p, t in zip(table["p_value"], table["test"])]
    disp["p Holm"] = [_p(p) for p in table["p_holm"]]
    if table["p_wilcoxon"].notna().any():
        disp["p Wilcoxon"] = [_p(p) for p in table["p_wilcoxon"]]
    disp["verdict"] = table["verdict"]
    if table["n_stale"].any():
        disp["stale"] = [str(n) if n else "" for n in table["n_stale"]]
    return disp


FOOTER = ("Groups: one dataset config each (dataset, category and all dataset options). Mean ± 95 % CI over "
          "seeds (t distribution). Δ: image AUROC minus the `none` control of the same generator, detector and "
          f"data, paired by seed; tested only from {MIN_PAIRS} pairs (`n/a` below). p raw: paired t-test, or the "
          "exact sign test `(sign)` when all differences are identical (no variance for a t-test); p Holm: "
          "Holm–Bonferroni across the policies compared with the same control; p Wilcoxon: signed-rank test, "
          f"from {MIN_WILCOXON} pairs. `better`/`worse` only at Holm p < {ALPHA}, else `tie`. `*`: fewer than "
          f"{MIN_SEEDS} seeds (below the protocol's minimum). stale (shown when any): seeds whose row was made by "
          "other code than is installed now (benchbox version or a plugin's source; rerun `benchbox grid` "
          "without --keep-stale to replace them).")


def to_markdown(table: pd.DataFrame, title: str = "benchbox leaderboard") -> str:
    disp = _display(table)
    lines = [f"# {title}", ""]
    for (ds, cat, data), part in disp.groupby(["dataset", "category", "data config"], sort=False):
        lines += [f"## {ds}" + (f" / {cat}" if cat else ""), "", f"data config: `{data}`" if data else
                  "data config: defaults", ""]
        cols = [c for c in part.columns if c not in ("dataset", "category", "data config")]
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|" + "|".join("---" for _ in cols) + "|")
        for _, r in part.iterrows():
            lines.append("| " + " | ".join(str(r[c]) for c in cols) + " |")
        lines.append("")
    return "\n".join(lines + [FOOTER, ""])


_JS = """
document.querySelectorAll('table.lb th').forEach(function (th, col) {
  th.addEventListener('click', function () {
    var body = th.closest('table').tBodies[0], asc = th.dataset.asc !== '1';
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col].dataset.v || a.cells[col].textContent, y = b.cells[col].dataset.v || b.cells[col].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    th.dataset.asc = asc ? '1' : '0';
  });
});
document.querySelector('table.lb').dataset.sortable = 'ready';
"""


def to_html(table: pd.DataFrame, title: str = "benchbox leaderboard") -> str:
    disp = _display(table)
    cols = list(disp.columns) + ["samples"]
    head = "".join(f"<th title='click to sort'>{html.escape(c)}</th>" for c in cols)
    body = []
    for i, r in disp.iterrows():
        cells = []
        for c in disp.columns:
            raw = table.loc[i, {"image AUROC": "image_auroc_mean", "rank": "rank"}.get(c, "dataset")]
            v = f" data-v='{raw}'" if c in ("image AUROC", "rank") and raw == raw else ""
            cls = f" class='{r[c].split()[0]}'" if c == "verdict" and r[c] else ""
            cells.append(f"<td{v}{cls}>{html.escape(str(r[c]))}</td>")
        sample = table.loc[i, "sample"]
        if isinstance(sample, str):
            data = base64.b64encode((Path(sample) / "samples.png").read_bytes()).decode()
            cells.append(f"<td><img alt='samples' src='data:image/png;base64,{data}'></td>")
        else:
            cells.append("<td></td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }} th, td {{ border: 1px solid #ccc; padding: 3px 7px; text-align: left; }}
th {{ cursor: pointer; background: #f3f3f3; }} td img {{ height: 48px; image-rendering: pixelated; }}
td.better {{ color: #070; font-weight: bold; }} td.worse {{ color: #a00; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<table class="lb"><thead><tr>{head}</tr></thead>
<tbody>
{chr(10).join(body)}
</tbody></table>
<p>{html.escape(FOOTER)}</p>
<script>{_JS}</script>
</body></html>
"""


def write_all(table: pd.DataFrame, out: Path, title: str = "benchbox leaderboard") -> list[Path]:
    from .io import atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    public = table.drop(columns=["sample"])
    files = {
        "leaderboard.md": to_markdown(table, title),
        "leaderboard.csv": public.to_csv(index=False),
        "leaderboard.json": json.dumps(json.loads(public.to_json(orient="records")), indent=1) + "\n",
        "leaderboard.html": to_html(table, title),
    }
    for name, text in files.items():
        atomic_write_text(out / name, text)
    return [out / n for n in files]


def cmd_leaderboard(argv: Sequence[str]) -> int:
    from rich.console import Console

    from .results import read_rows

    p = argparse.ArgumentParser(prog="benchbox leaderboard", description="Leaderboard tables from grid results.")
    p.add_argument("results", nargs="+", help="results file(s) (JSON Lines) written by benchbox grid")
    p.add_argument("--out", default="leaderboard", help="output folder (leaderboard.md/.csv/.json/.html)")
    p.add_argument("--title", default="benchbox leaderboard")
    args = p.parse_args(list(argv))
    rows, torn = [], 0
    for path in args.results:
        if not Path(path).is_file():
            raise ConfigError(f"results file {path} not found")
        r, t = read_rows(path)
        rows += r
        torn += t
    if not rows and torn:  # nothing readable: say so, rather than "no successful rows"
        raise ConfigError(f"{', '.join(args.results)}: none of its {torn} non-empty line(s) is a benchbox result "
                          "row (JSON with a config_hash); nothing to rank")
    if not rows:
        raise ConfigError(f"{', '.join(args.results)}: empty (no result rows); nothing to rank")
    table = build(current_rows(rows))
    files = write_all(table, Path(args.out), args.title)
    err = Console(stderr=True)
    if torn:
        err.print(f"[yellow]warning:[/] ignored {torn} torn or unreadable line(s)")
    print(to_markdown(table, args.title))
    err.print(f"wrote {', '.join(str(f) for f in files)}", highlight=False, soft_wrap=True)
    return 0


from .api import make_callable  # noqa: E402  (benchbox.leaderboard(df) calls benchbox.api.leaderboard)

make_callable(__name__)
