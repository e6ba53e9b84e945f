"""Measure the quality floors asserted in tests/test_quality_floors.py, with the tests' own budgets.

Each detector: fit on `digits` normal class 0 (the 96 training normals) with the test's budgets
(``conftest.TINY`` plus ``DETECTOR_OPTIONS``), score the fixed test subset the test uses (every test
normal + the first 200 test anomalies), image AUROC. Each learned latent policy: mean reward of
its proposals vs random moves. Each generator: reconstruction MSE on the
held-out test normals vs the MSE of the mean training image (the trivial reconstruction). Data,
budgets and the measuring functions are imported from tests/test_quality_floors.py: one source. Repeated over seeds
0-4, so a floor is set below the worst seed with a stated margin, not at one lucky draw.

    python benchmarks/test_floors.py [--seeds 0,1,2,3,4] [--only detectors|generators] [--names a,b]

Writes benchmarks/results/test_floors.json (per name and seed, plus config, versions, device,
commit, wall time) and test_floors.md made from it. Parts can be run separately; a run merges its
rows into an existing JSON (same name+seed replaced) so the table can be built in chunks.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the suite's budgets: conftest.TINY / tiny_config

from provenance import commit, write_results  # noqa: E402  (benchmarks/provenance.py: the one git commit + dirty check)

OUT = ROOT / "benchmarks" / "results" / "test_floors"


def markdown(data: dict) -> str:
    lines = ["# Quality floors of the default test suite (digits, normal class 0, test budgets)", "",
             f"Written by `benchmarks/test_floors.py` from `test_floors.json` (device {data['device']}, "
             f"torch {data['versions']['torch']}, commit `{data['commit']}`).", "",
             "## Detectors: image AUROC (every test normal + first 200 test anomalies)", "",
             "Floor rule: at least 0.05 below the worst seed (and far above chance, 0.5).", "",
             "| detector | seeds | min | mean | max | floor in the test | margin (min - floor) |",
             "|---|---|---|---|---|---|---|"]
    from test_quality_floors import (BEATS_RANDOM, DETECTOR_FLOORS, POLICY_GAIN, RECON_MARGIN,  # the floors the tests assert
                                     STAY_GAIN)

    for name, per_seed in sorted(data["detectors"].items()):
        v = np.array(list(per_seed.values()))
        lines.append(f"| {name} | {len(v)} | {v.min():.3f} | {v.mean():.3f} | {v.max():.3f} | "
                     f"{DETECTOR_FLOORS.get(name, '–')} | {v.min() - DETECTOR_FLOORS.get(name, math.nan):.3f} |")
    lines += ["", f"## Generators: reconstruction MSE of held-out normals vs the mean training image "
              "(budgets: `GENERATOR_OPTIONS` in the test)", "",
              "| generator | seeds | max MSE / mean-image MSE | mean ratio | test asserts ratio < |",
              "|---|---|---|---|---|"]
    for name, per_seed in sorted(data["generators"].items()):
        r = np.array([m / b for m, b in per_seed.values()])
        lines.append(f"| {name} | {len(r)} | {r.max():.3f} | {r.mean():.3f} | {RECON_MARGIN} |")
    lines += ["", "## Latent policies: mean reward of propose()'s moves vs random moves of the same kind and vs "
              "standing still (dz = 0) (ae on the digits training normals; budgets: `POLICY_OPTIONS` in the test)", "",
              "| policy | seeds | min gain vs random | mean gain vs random | min gain vs dz = 0 | learned (mean) | "
              "random (mean) | dz = 0 (mean) | test asserts |", "|---|---|---|---|---|---|---|---|---|"]
    for name, per_seed in sorted(data["policies"].items()):
        values = np.array([v if len(v) == 3 else [*v, math.nan] for v in per_seed.values()]).T
        learned, rand, stay = values
        gain = learned - rand
        asserts = f"gain vs dz = 0 > {STAY_GAIN}" + (f", vs random > {POLICY_GAIN}" if name in BEATS_RANDOM else "")
        lines.append(f"| {name} | {len(gain)} | {gain.min():.3f} | {gain.mean():.3f} | {(learned - stay).min():.3f} | "
                     f"{learned.mean():.3f} | {rand.mean():.3f} | {stay.mean():.3f} | {asserts} |")
    lines += ["", f"Wall time of the last chunk: {data['wall_seconds']:.0f} s.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from benchbox import registry

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--only", choices=["detectors", "generators", "policies"])
    p.add_argument("--names", default="", help="comma-separated plugin names (default: all of the group)")
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    torch.set_num_threads(min(2, torch.get_num_threads()))
    path = OUT.with_suffix(".json")
    data = json.loads(path.read_text()) if path.is_file() else {}
    for group in ("detectors", "generators", "policies"):
        data.setdefault(group, {})
    t0 = time.perf_counter()
    from conftest import SLOW_PLUGINS
    from conftest import TINY
    from test_quality_floors import (DETECTOR_OPTIONS, GENERATOR_OPTIONS, N_ANOMALIES, POLICY_OPTIONS, detector_auroc,
                                     policy_rewards, reconstruction_ratio)

    for group in ("detectors", "generators", "policies"):
        if args.only and args.only != group:
            continue
        names = [n for n in args.names.split(",") if n] or (sorted(POLICY_OPTIONS) if group == "policies" else [
            q.name for q in registry.list_plugins(group) if not q.broken and q.name not in SLOW_PLUGINS])
        for name in names:
            if name not in {q.name for q in registry.list_plugins(group)}:
                continue
            for seed in seeds:
                t = time.perf_counter()
                measure = {"detectors": detector_auroc, "generators": reconstruction_ratio, "policies": policy_rewards}
                value = measure[group](name, seed)
                data[group].setdefault(name, {})[str(seed)] = value
                print(f"{group} {name} seed {seed}: {value} ({time.perf_counter() - t:.1f} s)", flush=True)
    import benchbox

    data.update({
        "config": {"dataset": "digits", "normal_class": 0, "n_anomalies": N_ANOMALIES, "seeds": seeds,
                   "budgets": {"all": TINY, "detectors": DETECTOR_OPTIONS, "generators": GENERATOR_OPTIONS,
                               "policies": POLICY_OPTIONS}},
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "benchbox": benchbox.__version__,
                     "numpy": np.__version__},
        "device": "cpu", "threads": torch.get_num_threads(), "platform": platform.platform(),
        "commit": commit(), "wall_seconds": time.perf_counter() - t0,
    })
    write_results(path, data, OUT.with_suffix(".md"), markdown(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
