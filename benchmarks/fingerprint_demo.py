"""Must-show #1 of issue 17: results tied to the code that made them.

    .venv/bin/python benchmarks/fingerprint_demo.py [--out benchmarks/results/fingerprint_demo.json]

On a temporary copy of the checkout's ``benchbox/`` and ``plugins/`` (``git archive HEAD`` when run
from a git checkout, else a plain copy -- never the working tree itself), a finished 4-cell grid
(digits, ae generator, policies {none, random} x detectors {knn, ae}, seed 0, tiny budgets) is:

1. run (expect 4 cells run),
2. rerun unchanged (expect 0 run, 4 already in results),
3. rerun after changing one line of ``policies/random.py`` (``torch.randn(z.shape, ...)`` ->
   ``torch.randn(tuple(z.shape), ...)``: same numbers, other source) -- expect exactly the 2
   random cells rerun as stale, the generator served by the stage cache (0 generator trainings),
4. rerun after reverting the line (expect 0 run: the first rows are current again).

How the copy is used: the venv's editable install maps ``benchbox`` and ``benchbox_plugins`` to
the checkout through a meta-path finder that Python consults *after* ``sys.path``, and the entry
points (``benchbox.policies`` -> ``benchbox_plugins.policies.random:RandomDelta``) are module paths
resolved on import; so ``PYTHONPATH=<copy>:<copy>/plugins`` makes every ``benchbox grid`` below
import the copy (checked: each step records the file ``benchbox`` was imported from). The stage
cache and the feature-extractor cache live in the temporary folder too.

Writes the JSON (counts per step, the changed line, the expectation and whether it held, versions,
device, commit and wall time from ``benchmarks/provenance.py``) and the ``.md`` beside it, written
from the JSON. Exit code 1 when a step does not give the expected counts.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from provenance import ROOT, provenance  # noqa: E402  (benchmarks/provenance.py: versions, device, commit, wall time)

from benchbox.io import atomic_write_json, atomic_write_text  # noqa: E402

GRID = ["--datasets", "digits", "--generators", "ae", "--policies", "none,random", "--detectors", "knn,ae",
        "--seeds", "0", "--device", "cpu", "--threads", "1", "--augment-ratio", "0.5",
        "--set", "dataset.train_limit=60", "--set", "generator.epochs=1", "--set", "generator.base_channels=8",
        "--set", "generator.latent_dim=8", "--set", "detector.ae.epochs=1", "--set", "detector.ae.base_channels=8",
        "--no-run-folders", "--quiet"]
EDITED = "policies/random.py"
OLD = "noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(seed))"
NEW = "noise = torch.randn(tuple(z.shape), generator=torch.Generator().manual_seed(seed))"
SUMMARY = re.compile(r"(\d+) cells: (\d+) run, (\d+) already in results(?:; (\d+) stale \(made by other code\) rerun)?, "
                     r"(\d+) failed.*?; (\d+) generator trainings, (\d+) stage-cache hits; ([\d.]+) s")
EXPECTED = {  # step -> (run, already in results, stale rerun, generator trainings)
    "1 first run": (4, 0, 0, 1),
    "2 rerun, unchanged": (0, 4, 0, 0),
    f"3 rerun after a one-line change of {EDITED}": (2, 2, 2, 0),
    "4 rerun after reverting it": (0, 4, 0, 0),
}


def copy_checkout(dest: Path) -> str:
    """benchbox/ and plugins/ of HEAD (git archive) into ``dest``; returns what was copied."""
    try:
        data = subprocess.run(["git", "archive", "--format=tar", "HEAD", "benchbox", "plugins"], cwd=ROOT,
                              capture_output=True, check=True).stdout
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(dest, filter="data")
        return f"git archive {head} benchbox plugins"
    except (OSError, subprocess.CalledProcessError):
        for part in ("benchbox", "plugins"):
            shutil.copytree(ROOT / part, dest / part, ignore=shutil.ignore_patterns("__pycache__"))
        return "copy of the working tree's benchbox/ and plugins/ (not a git checkout)"


def grid(copy: Path, results: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=f"{copy}{os.pathsep}{copy / 'plugins'}", BENCHBOX_CACHE=str(copy / "cache"),
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    env.pop("BENCHBOX_DEBUG", None)
    where = subprocess.run([sys.executable, "-c", "import benchbox, benchbox_plugins.policies.random as r; "
                            "print(benchbox.__file__); print(r.__file__)"], cwd=copy, env=env, capture_output=True,
                           text=True, check=True).stdout.split()
    if not all(Path(w).is_relative_to(copy) for w in where):
        raise SystemExit(f"the copy is not what gets imported: {where}")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "benchbox.cli", "grid", *GRID, "--results", str(results)], cwd=copy,
                          env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    m = SUMMARY.search(proc.stdout)
    if proc.returncode or not m:
        raise SystemExit(f"benchbox grid failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    total, ran, done, stale, failed, trainings, hits, _ = m.groups()
    return {"cells": int(total), "run": int(ran), "already_in_results": int(done), "stale_rerun": int(stale or 0),
            "failed": int(failed), "generator_trainings": int(trainings), "stage_cache_hits": int(hits),
            "wall_s": round(wall, 1), "summary": m.group(0), "imported_from": [str(Path(w).relative_to(copy)) for w in where]}


def rows_of(results: Path, start: int) -> list[dict]:
    lines = results.read_text().splitlines() if results.exists() else []
    return [json.loads(line) for line in lines[start:] if line.strip()]


def measure(keep: bool) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="fingerprint-demo-"))
    try:
        copied = copy_checkout(tmp)
        results = tmp / "results.jsonl"
        source = tmp / "plugins" / "benchbox_plugins" / EDITED
        original = source.read_text()
        if original.count(OLD) != 1:
            raise SystemExit(f"{EDITED}: the line to change ({OLD!r}) is not there once; update this script")
        steps, n_rows = [], 0
        for step, edit in zip(EXPECTED, (None, None, NEW, OLD)):
            if edit is not None:
                source.write_text(original.replace(OLD, edit))
            out = grid(tmp, results)
            new = rows_of(results, n_rows)
            n_rows += len(new)
            out["step"] = step
            out["rows_written"] = [{"policy": r["config"]["policy"]["name"], "detector": r["config"]["detector"]["name"],
                                    "image_auroc": r["metrics"].get("image_auroc"), "code_hash": r["code"]["hash"],
                                    "cache": {s: v["status"] for s, v in r.get("cache", {}).items()}} for r in new]
            run, done, stale, trainings = EXPECTED[step]
            out["expected"] = {"run": run, "already_in_results": done, "stale_rerun": stale, "generator_trainings": trainings}
            out["as_expected"] = all(out[k] == v for k, v in out["expected"].items()) and out["failed"] == 0
            steps.append(out)
        first = {(r["policy"], r["detector"]): r["image_auroc"] for r in steps[0]["rows_written"]}
        edited = {(r["policy"], r["detector"]): r["image_auroc"] for r in steps[2]["rows_written"]}
        return {"copied": copied, "steps": steps, "edited_file": f"plugins/benchbox_plugins/{EDITED}",
                "line_before": OLD, "line_after": NEW,
                "same_auroc_after_edit": all(first[k] == v for k, v in edited.items()) and bool(edited),
                "as_expected": all(s["as_expected"] for s in steps)}
    finally:
        if keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def markdown(data: dict) -> str:
    lines = ["# Code fingerprint: a one-line plugin change reruns exactly the cells it touched (issue 17)", "",
             "Written by `benchmarks/fingerprint_demo.py` from `fingerprint_demo.json`. A 4-cell grid (digits, ae "
             "generator, policies none/random x detectors knn/ae, seed 0, tiny budgets) on a temporary copy of the "
             f"checkout ({data['config']['copied']}), run four times:", "",
             "| step | cells run | already in results | stale (other code) rerun | generator trainings | stage-cache hits "
             "| wall s | as expected |", "|---|---|---|---|---|---|---|---|"]
    for s in data["results"]["steps"]:
        lines.append(f"| {s['step']} | {s['run']} | {s['already_in_results']} | {s['stale_rerun']} | "
                     f"{s['generator_trainings']} | {s['stage_cache_hits']} | {s['wall_s']} | "
                     f"{'yes' if s['as_expected'] else '**no**'} |")
    r = data["results"]
    rerun = r["steps"][2]["rows_written"]
    lines += ["", f"The change (`{r['edited_file']}`): `{r['line_before']}` -> `{r['line_after']}` (same numbers, "
              "other source).", "",
              "Rerun after the change: " + "; ".join(
                  f"{x['policy']} x {x['detector']} (stages: {', '.join(f'{k} {v}' for k, v in x['cache'].items())})"
                  for x in rerun) + ".",
              f"Image AUROC of the rerun cells identical to the first run's: {'yes' if r['same_auroc_after_edit'] else 'no'}.",
              "", f"Commit {data['commit']}"
              + (" (dirty: the working tree differs; the grid ran on the archived commit, not on it)"
                 if str(data["commit"]).endswith("+dirty") and data["config"]["copied"].startswith("git archive") else "")
              + f"; {data['device'].get('platform', '')}; torch "
              f"{data['versions'].get('torch', '?')}; wall time {data['wall_seconds']} s.", ""]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "fingerprint_demo.json"))
    p.add_argument("--keep", action="store_true", help="keep the temporary copy (printed) for inspection")
    args = p.parse_args()
    t0 = time.perf_counter()
    results = measure(args.keep)
    data = {"config": {"grid": GRID, "copied": results.pop("copied"), "expected": {k: list(v) for k, v in EXPECTED.items()},
                       "expected_columns": ["run", "already_in_results", "stale_rerun", "generator_trainings"]},
            "results": results, **provenance("cpu", t0)}
    out = Path(args.out)
    atomic_write_json(out, data)
    atomic_write_text(out.with_suffix(".md"), markdown(data))
    print(markdown(data))
    return 0 if results["as_expected"] else 1


if __name__ == "__main__":
    sys.exit(main())
