"""``benchbox leaderboard RESULTS``: tables from grid results, following docs' benchmark protocol.

One row per method (generator + config, policy + config, detector + config, augment config)
within each dataset and category:

* mean ± 95 % confidence interval over seeds, t distribution (``t_{0.975, n-1} · s / √n``) for
  image AUROC, and pixel AUROC, AUPRO and FID where present;
* Δ image AUROC vs the ``none`` control of the same generator, detector and data, paired by seed,
  with a paired t-test (``scipy.stats.ttest_rel``) and its p-value; the verdict is ``better`` /
  ``worse`` only when p < 0.05, otherwise ``tie`` -- ties are ties;
* rank by mean image AUROC at the printed precision (equal printed means share a rank);
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
MIN_SEEDS = 3
ALPHA = 0.05


def _label(cfg: dict[str, Any], kind: str, ambiguous: bool) -> str:
    part = cfg[kind]
    return part["name"] + (f"[{config_hash(part, 6)}]" if ambiguous else "")


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """One line per ok cell: identity columns, seed, and the metrics."""
    recs = []
    for r in rows:
        if r.get("status") != "ok":
            continue
        c = r["config"]
        m = r.get("metrics", {})
        recs.append({
            "dataset": c["dataset"]["name"], "category": (r.get("data") or {}).get("category", ""),
            "dataset_cfg": config_hash({k: v for k, v in c["dataset"].items()}, 8),
            "generator_cfg": config_hash(c["generator"], 8), "policy_cfg": config_hash(c["policy"], 8),
            "detector_cfg": config_hash(c["detector"], 8), "augment_cfg": config_hash(c["augment"], 8),
            "generator": c["generator"]["name"], "policy": c["policy"]["name"], "detector": c["detector"]["name"],
            "seed": r["seed"], "path": r.get("path"), "_config": c,
            **{k: (float(m[k]) if m.get(k) is not None else np.nan) for k in METRICS},
        })
    return pd.DataFrame(recs)


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


def build(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The leaderboard table (one row per method and data), sorted by data then rank."""
    from scipy import stats

    df = frame(rows)
    if df.empty:
        raise ConfigError("no successful rows in the results: nothing to rank")
    group = ["dataset", "category", "dataset_cfg", "generator", "generator_cfg", "policy", "policy_cfg",
             "detector", "detector_cfg", "augment_cfg"]
    # a name used with several configs gets a short config hash in its label
    amb = {k: df.groupby(k)[f"{k}_cfg"].nunique().to_dict() for k in ("generator", "policy", "detector")}
    out = []
    for key, g in df.groupby(group, sort=True, dropna=False):
        ident = dict(zip(group, key))
        cfg = g["_config"].iloc[0]
        rec: dict[str, Any] = {
            "dataset": ident["dataset"], "category": ident["category"],
            **{k: _label(cfg, k, amb[k][ident[k]] > 1) for k in ("generator", "policy", "detector")},
            "n_seeds": int(g["seed"].nunique()), "seeds": ",".join(str(s) for s in sorted(g["seed"].unique())),
        }
        rec["few_seeds"] = rec["n_seeds"] < MIN_SEEDS
        for m in METRICS:
            mean, half = _ci(g[m].to_numpy(dtype=float))
            rec[f"{m}_mean"], rec[f"{m}_ci95"] = mean, half
        # paired comparison with the none control of the same data, generator and detector
        ctrl = df[(df.dataset == ident["dataset"]) & (df.category == ident["category"])
                  & (df.dataset_cfg == ident["dataset_cfg"]) & (df.generator_cfg == ident["generator_cfg"])
                  & (df.generator == ident["generator"]) & (df.detector == ident["detector"])
                  & (df.detector_cfg == ident["detector_cfg"]) & (df.policy == "none")]
        rec.update(delta=math.nan, delta_ci95=math.nan, p_value=math.nan, n_pairs=0, test="", verdict="")
        if ident["policy"] == "none":
            rec["verdict"] = "control"
        elif not ctrl.empty:
            a = g.groupby("seed")["image_auroc"].mean()
            b = ctrl.groupby("seed")["image_auroc"].mean()
            common = sorted(set(a.dropna().index) & set(b.dropna().index))
            rec["n_pairs"] = len(common)
            if common:
                d = a.loc[common].to_numpy() - b.loc[common].to_numpy()
                rec["delta"], rec["delta_ci95"] = _ci(d)
                rec["test"] = "paired t-test over seeds"
                if len(common) >= 2 and np.std(d, ddof=1) > 0:
                    rec["p_value"] = float(stats.ttest_rel(a.loc[common], b.loc[common]).pvalue)
                elif len(common) >= 2:  # identical differences: no variance to test
                    rec["p_value"] = 0.0 if np.all(d != 0) else 1.0
                p = rec["p_value"]
                rec["verdict"] = ("better" if rec["delta"] > 0 else "worse") if p == p and p < ALPHA else "tie"
        rec["sample"] = next((p for p in g["path"] if isinstance(p, str) and (Path(p) / "samples.png").is_file()), None)
        out.append(rec)
    table = pd.DataFrame(out)
    table["rank"] = (table.groupby(["dataset", "category"])["image_auroc_mean"]
                     .transform(lambda s: s.round(3).rank(ascending=False, method="min")).astype("Int64"))
    return table.sort_values(["dataset", "category", "rank", "generator", "policy", "detector"]).reset_index(drop=True)


def _fmt(mean: float, half: float, digits: int = 3) -> str:
    if mean != mean:
        return "–"
    return f"{mean:.{digits}f} ± {half:.{digits}f}" if half == half else f"{mean:.{digits}f} (n=1)"


def _display(table: pd.DataFrame) -> pd.DataFrame:
    present = [m for m in METRICS if table[f"{m}_mean"].notna().any()]
    disp = pd.DataFrame({
        "rank": table["rank"].astype(str), "dataset": table["dataset"], "category": table["category"].astype(str),
        "generator": table["generator"], "policy": table["policy"], "detector": table["detector"],
        "seeds": [f"{n}*" if few else str(n) for n, few in zip(table["n_seeds"], table["few_seeds"])],
    })
    for m in present:
        disp[METRICS[m]] = [_fmt(a, b, 1 if m == "gen_fid" else 3) for a, b in zip(table[f"{m}_mean"], table[f"{m}_ci95"])]
    disp["Δ AUROC vs none"] = [("" if d != d else f"{d:+.3f}" + (f" ± {h:.3f}" if h == h else ""))
                               for d, h in zip(table["delta"], table["delta_ci95"])]
    disp["p (paired t)"] = ["" if p != p else f"{p:.3g}" for p in table["p_value"]]
    disp["verdict"] = table["verdict"]
    return disp


FOOTER = ("Mean ± 95 % CI over seeds (t distribution). Δ: image AUROC minus the `none` control of the same "
          "generator, detector and data, paired by seed; p from a paired t-test; `better`/`worse` only at "
          f"p < {ALPHA}, else `tie`. `*`: fewer than {MIN_SEEDS} seeds (below the protocol's minimum).")


def to_markdown(table: pd.DataFrame, title: str = "benchbox leaderboard") -> str:
    disp = _display(table)
    lines = [f"# {title}", ""]
    for (ds, cat), part in disp.groupby(["dataset", "category"], sort=False):
        lines += [f"## {ds}" + (f" / {cat}" if cat else ""), ""]
        cols = [c for c in part.columns if c not in ("dataset", "category")]
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
            cls = f" class='{r[c]}'" if c == "verdict" else ""
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

    from .grid import latest_rows, read_rows

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
    table = build(list(latest_rows(rows).values()))
    files = write_all(table, Path(args.out), args.title)
    err = Console(stderr=True)
    if torn:
        err.print(f"[yellow]warning:[/] ignored {torn} torn or unreadable line(s)")
    print(to_markdown(table, args.title))
    err.print(f"wrote {', '.join(str(f) for f in files)}", highlight=False, soft_wrap=True)
    return 0
