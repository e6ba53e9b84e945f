"""benchbox's performance suite: one command, every speed and memory figure in one file.

    .venv/bin/python benchmarks/perf.py [--device cpu|cuda|auto] [--sections env generators detectors engine memory grid]

Sections (each figure is stored with the device, torch version, torch threads and the core count):

- ``env``: latent vector-environment steps/s at N = 1, 64, 1024 against a Python loop over N single
  environments; and the same environment driven by a full PPO training loop -- benchbox's PPO on the
  batched env vs stable-baselines3's PPO on ``DummyVecEnv`` of single envs (SB3 is optional: the peer
  row is skipped, and says so, when it is not installed; ``pip install -c constraints.txt -e .[perf]``).
- ``generators``: training throughput (images/s) of every registered generator at 28 px
  (MNIST-5k, grayscale) and 256 px (the same digits resized, RGB).
- ``detectors``: fit and score throughput (images/s) of every registered detector, the anomalib
  ones included, at 28 px and 256 px (anomalib models get ``--detector.image-size`` 32 / 256).
- ``engine``: anomalib's own ``Engine.fit`` + ``Engine.predict`` against benchbox's wrapper on the
  same model (Padim), images and seed: wall time and image AUROC side by side.
- ``memory``: peak resident memory (and wall time) of the default ``benchbox run``, measured on a
  child process.
- ``grid``: the grid stage cache's speed-up (``benchmarks/grid_cache_speed.py``'s grid).
- ``cells``: the two default 256 px cells of issue 16, end to end as a new user types them (a child
  ``benchbox run`` each, on data the CLI makes): ``benchbox data make-textures DIR`` then
  ``benchbox run --dataset mvtec --dataset.root DIR --dataset.category brick``, and
  ``benchbox data make-demo bmad DIR`` then the design card's ``benchbox run --generator ae --policy ppo
  --detector transformer --dataset bmad --dataset.root DIR --dataset.category Histopathology``: wall
  time, each stage's time, image AUROC, pixel AUROC / AUPRO, and the run's estimate lines. Target
  (issue 16): each under 3 minutes on 2 CPU cores.

Budgets are small and fixed (stated in the output); this suite measures cost, not quality.
Writes ``benchmarks/perf.json`` (one entry per device type; a CUDA run is kept next to the CPU
one, never mixed) and ``benchmarks/perf.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchbox import registry  # noqa: E402
from benchbox.interfaces import FitContext  # noqa: E402
from benchbox.io import atomic_write_json, atomic_write_text  # noqa: E402
from benchbox.metrics import image_metrics  # noqa: E402
from benchbox.runtime import package_versions, resolve_device  # noqa: E402

SECTIONS = ("env", "generators", "detectors", "engine", "memory", "grid", "cells")
# per-plugin budgets: enough steps to time steady state, small enough for 2 CPU cores
GEN_OPTS = {"epochs": 1, "encoder_epochs": 1}  # GANs: 1 GAN epoch + 1 encoder epoch
DET_OPTS = {"epochs": 1, "encoder_epochs": 1, "pretrained": False, "max_steps": 20}
SLOW_AT_256 = {"anomalib-efficientad"}  # minutes per image batch on CPU: timed on fewer images


def ctx(device: torch.device, **kw: Any) -> FitContext:
    return FitContext(device=device, seed=0, **kw)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float]:
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - t0


def options_for(kind: str, name: str, wanted: dict[str, Any]) -> dict[str, Any]:
    fields = {f.name for f in dataclasses.fields(registry.load(kind, name).Config)}
    return {k: v for k, v in wanted.items() if k in fields}


def image_sets(n_train: int, n_test: int) -> dict[int, dict[str, torch.Tensor]]:
    """28 px grayscale MNIST-5k class 0 and the same images at 256 px RGB."""
    splits = registry.create("datasets", "mnist", normal_class=0).load(0)
    perm = torch.randperm(len(splits.test), generator=torch.Generator().manual_seed(0))
    small = {"train": splits.train[:n_train], "test": splits.test.images[perm[:n_test]],
             "labels": splits.test.labels[perm[:n_test]]}

    def big(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=(256, 256), mode="bilinear", align_corners=False).expand(-1, 3, -1, -1).contiguous()

    return {28: small, 256: {k: (big(v) if k != "labels" else v) for k, v in small.items()}}


# ------------------------------------------------------------------------------ sections


def section_env(device: torch.device, quick: bool) -> dict:
    from latent_env_speed import loop_sps, vector_sps

    from benchbox_plugins.rl.latent_env import LatentCore, LatentEnv, LatentVectorEnv, RewardConfig
    from benchbox_plugins.rl import ppo

    splits = registry.create("datasets", "mnist", normal_class=0).load(0)
    gen = registry.create("generators", "ae", epochs=1)
    gen.fit(splits.train, ctx(device))
    core = LatentCore(gen, gen.encode(splits.train), RewardConfig(), device=device)
    seconds = 1.0 if quick else 3.0
    rows = []
    for n in (1, 64, 1024):
        v = vector_sps(core, n, seconds)
        lp = loop_sps(core, n, seconds)
        rows.append({"num_envs": n, "vector_steps_per_s": round(v, 1), "loop_steps_per_s": round(lp, 1),
                     "ratio": round(v / lp, 2)})
        print("env", rows[-1], flush=True)
    steps = 2048 if quick else 8192
    train_rows = []
    for n_envs in (8, 128):
        args = ppo.Args(seed=0, env_id="benchbox-latent", total_timesteps=steps, num_envs=n_envs,
                        num_steps=max(4, 512 // n_envs), num_minibatches=4, update_epochs=4, device=str(device),
                        progress=False)
        _, wall = timed(lambda: ppo.train(args, LatentVectorEnv(core, n_envs)), device)
        train_rows.append({"client": f"benchbox PPO, LatentVectorEnv({n_envs})", "steps": steps,
                           "steps_per_s": round(steps / wall, 1)})
        print("env", train_rows[-1], flush=True)
    if importlib.util.find_spec("stable_baselines3") is None:
        train_rows.append({"client": "stable-baselines3 PPO", "skipped": "stable-baselines3 is not installed "
                           "(optional: pip install -c constraints.txt -e .[perf])"})
    else:
        from stable_baselines3 import PPO as SB3PPO
        from stable_baselines3.common.vec_env import DummyVecEnv

        venv = DummyVecEnv([lambda: LatentEnv(core) for _ in range(8)])
        model = SB3PPO("MlpPolicy", venv, n_steps=64, batch_size=128, n_epochs=4, seed=0, device=str(device), verbose=0)
        _, wall = timed(lambda: model.learn(total_timesteps=steps), device)
        train_rows.append({"client": "stable-baselines3 PPO, DummyVecEnv(8 x LatentEnv)", "steps": steps,
                           "steps_per_s": round(steps / wall, 1)})
        print("env", train_rows[-1], flush=True)
    return {"latent_dim": core.d, "n_train_latents": len(core.latents), "step_rows": rows, "training_rows": train_rows,
            "note": "one-step episodes; the ae decoder + encoder + nearest-neighbour search dominate a step"}


def section_generators(device: torch.device, quick: bool) -> dict:
    n = 64 if quick else 256
    sets = image_sets(n, 8)
    rows = []
    for name in ONLY_GENERATORS or [p.name for p in registry.list_plugins("generators")]:
        for size, data in sets.items():
            x = data["train"] if size == 28 else data["train"][: max(16, n // 4)]
            row: dict[str, Any] = {"generator": name, "image_size": size, "n_images": len(x), "epochs": 1}
            try:
                gen = registry.create("generators", name, **options_for("generators", name, GEN_OPTS))
                _, wall = timed(lambda: gen.fit(x, ctx(device)), device)
                row.update(fit_seconds=round(wall, 2), train_images_per_s=round(len(x) / wall, 1))
                if WARM[0]:  # a second fresh model in the now warm process: no first-call costs
                    gen = registry.create("generators", name, **options_for("generators", name, GEN_OPTS))
                    _, wall = timed(lambda: gen.fit(x, ctx(device)), device)
                    row.update(warm_train_images_per_s=round(len(x) / wall, 1))
            except Exception as exc:  # a generator that cannot take this size is reported, not fatal
                row["error"] = f"{type(exc).__name__}: {exc}"[:200]
            rows.append(row)
            print("generators", row, flush=True)
    return {"rows": rows, "options": GEN_OPTS, "torch_threads": torch.get_num_threads(), "commit": _commit()}


def _commit() -> str | None:
    from provenance import commit

    return commit()


ONLY_GENERATORS: list[str] = []  # --generators: rerun these rows only, keep the others
WARM = [False]  # --warm: also time a second fresh model per row (no first-call costs)


ONLY_DETECTORS: list[str] = []  # --detectors: rerun these rows only, keep the others


def section_detectors(device: torch.device, quick: bool) -> dict:
    n_train, n_test = (32, 64) if quick else (128, 256)
    sets = image_sets(n_train, n_test)
    rows = []
    for name in ONLY_DETECTORS or [p.name for p in registry.list_plugins("detectors")]:
        for size, data in sets.items():
            opts = options_for("detectors", name, {**DET_OPTS, "image_size": 32 if size == 28 else 256})
            train, test = data["train"], data["test"]
            if name in SLOW_AT_256 or size == 256:  # 256 px: 16 images each way keeps a row under a minute
                train, test = train[:16], test[:16]
            row: dict[str, Any] = {"detector": name, "image_size": size, "n_fit": len(train), "n_score": len(test),
                                   "options": opts}
            try:
                det = registry.create("detectors", name, **opts)
                _, fit_s = timed(lambda: det.fit(train, ctx(device, stage="detector")), device)
                det.score(test[:4])  # warm-up
                _, score_s = timed(lambda: det.score(test), device)
                row.update(fit_seconds=round(fit_s, 2), fit_images_per_s=round(len(train) / fit_s, 1),
                           score_seconds=round(score_s, 2), score_images_per_s=round(len(test) / score_s, 1))
            except Exception as exc:
                row["error"] = f"{type(exc).__name__}: {exc}"[:200]
            rows.append(row)
            print("detectors", {k: v for k, v in row.items() if k != "options"}, flush=True)
    return {"rows": rows, "note": "fit = one epoch capped at max_steps optimiser steps (memory-bank models: one "
            "pass); fit images/s = training images / fit wall time"}


def section_engine(device: torch.device, quick: bool) -> dict:
    """Padim through anomalib's Engine vs through benchbox's wrapper: time and AUROC."""
    from anomalib.engine import Engine
    from anomalib.models import Padim

    from benchbox_plugins.detectors.base import anomalib_adapter as aa

    splits = registry.create("datasets", "mnist", normal_class=0).load(0)
    n_test = 1000 if quick else len(splits.test)
    perm = torch.randperm(len(splits.test), generator=torch.Generator().manual_seed(0))[:n_test]
    train, test, labels = splits.train, splits.test.images[perm], splits.test.labels[perm]
    size = 32
    det = registry.create("detectors", "anomalib-padim", pretrained=False, image_size=size)
    _, wfit = timed(lambda: det.fit(train, ctx(device, stage="detector")), device)
    ours, wscore = timed(lambda: det.score(test).image, device)
    acc, devices = aa.accelerator(device)
    with aa.quiet(), aa.seeded(0), tempfile.TemporaryDirectory() as tmp:
        model = Padim(backbone="resnet18", pre_trained=False, pre_processor=aa.pre_processor(size),
                      post_processor=False, evaluator=False, visualizer=False)
        engine = Engine(default_root_dir=tmp, logger=False, accelerator=acc, devices=devices, enable_progress_bar=False)
        _, efit = timed(lambda: engine.fit(model=model, train_dataloaders=aa.image_loader(aa.to_rgb(train), 32)), device)
        preds, epred = timed(lambda: engine.predict(model=model, dataloaders=aa.image_loader(aa.to_rgb(test), 32)), device)
    theirs = torch.cat([p.pred_score.reshape(-1) for p in preds]).float().cpu()
    auroc = lambda s: round(image_metrics(labels, s.numpy())["image_auroc"], 6)  # noqa: E731
    return {"model": "Padim (resnet18, pretrained off, 32 px)", "n_train": len(train), "n_test": len(test),
            "rows": [{"route": "benchbox wrapper (Lightning Trainer + module forward)", "fit_s": round(wfit, 2),
                      "score_s": round(wscore, 2), "image_auroc": auroc(ours.cpu())},
                     {"route": "anomalib Engine.fit + Engine.predict", "fit_s": round(efit, 2),
                      "score_s": round(epred, 2), "image_auroc": auroc(theirs)}],
            "max_abs_score_diff": float((ours.cpu() - theirs).abs().max())}


def section_memory(device: torch.device, quick: bool) -> dict:
    """Peak RSS of the default ``benchbox run``: a fresh wrapper process whose only child is the run
    reads its RUSAGE_CHILDREN high-water mark (this process's own earlier children cannot leak in)."""
    exe = Path(sys.executable).with_name("benchbox")
    probe = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
             "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
             "sys.stderr.write(p.stderr[-2000:])")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-c", probe, str(exe) if exe.exists() else "benchbox", "run", "--device", device.type,
               "--out", str(Path(tmp) / "runs")]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "BENCHBOX_CACHE": tmp})
        wall = time.perf_counter() - t0
    code, peak_kb = (int(v) for v in proc.stdout.split()[-2:])  # ru_maxrss is in kilobytes on Linux
    out = {"command": "benchbox run (defaults) --device " + device.type, "exit_code": code,
           "wall_s": round(wall, 1), "peak_rss_mb": round(peak_kb / 1024, 1)}
    if code != 0:
        out["error"] = proc.stderr.strip().splitlines()[-1:] or ["?"]
    return out


def section_grid(device: torch.device, quick: bool) -> dict:
    from grid_cache_speed import measure

    report = measure()
    return {"speedup": report["speedup"], "same_metrics": report["same_metrics"],
            "cache": report["cache"], "no_cache": report["no-cache"], "grid": report["grid"],
            "note": "grid runs on CPU (its spec fixes device cpu)"}


CELLS = {  # name: (data command after `benchbox data`, run options after `benchbox run`); DIR = the data folder
    "textures brick 256 px (defaults)": (["make-textures", "DIR"],
                                         ["--dataset", "mvtec", "--dataset.root", "DIR", "--dataset.category", "brick"]),
    "BMAD demo Histopathology (design card)": (["make-demo", "bmad", "DIR"],
                                               ["--generator", "ae", "--policy", "ppo", "--detector", "transformer",
                                                "--dataset", "bmad", "--dataset.root", "DIR",
                                                "--dataset.category", "Histopathology"]),
}


CELL_TIMEOUT_S = 280  # a cell still running then is stopped; its finished stages are kept
ONLY_CELLS: list[str] = []  # --cells: rerun the cells whose name contains one of these words, keep the others


def section_cells(device: torch.device, quick: bool) -> dict:
    """The default 256 px cells, each a child ``benchbox run`` (torch threads: the environment's)."""
    from provenance import commit

    exe = str(Path(sys.executable).with_name("benchbox"))
    rows = []
    for name, (make, run) in CELLS.items():
        if ONLY_CELLS and not any(w in name for w in ONLY_CELLS):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            data = str(Path(tmp) / "data")
            subprocess.run([exe, "data", *[data if a == "DIR" else a for a in make]], check=True, capture_output=True)
            cmd = ["run", *[data if a == "DIR" else a for a in run], "--device", device.type]
            t0 = time.perf_counter()
            try:
                proc = subprocess.run([exe, *cmd, "--out", str(Path(tmp) / "runs")], capture_output=True, text=True,
                                      env={**os.environ, "BENCHBOX_CACHE": str(Path(tmp) / "cache")},
                                      timeout=CELL_TIMEOUT_S)
            except subprocess.TimeoutExpired as exc:  # keep what the run said: its finished stages and estimates
                out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
                proc = subprocess.CompletedProcess(exc.cmd, -9, out, f"stopped after {CELL_TIMEOUT_S} s (CELL_TIMEOUT_S)")
            wall = time.perf_counter() - t0
            row: dict[str, Any] = {"cell": name, "command": "benchbox " + " ".join(cmd).replace(data, "DIR"),
                                   "exit_code": proc.returncode, "wall_s": round(wall, 1),
                                   "omp_num_threads": os.environ.get("OMP_NUM_THREADS", ""), "commit": commit(),
                                   "notes": [x for x in proc.stdout.splitlines() if ": about " in x]}
            done = [re.fullmatch(r"(.+): done in (?:(\d+) min )?([\d.]+) s.*", x) for x in proc.stdout.splitlines()]
            row["stage_lines"] = {m.group(1): 60 * int(m.group(2) or 0) + float(m.group(3)) for m in done if m}
            results = sorted((Path(tmp) / "runs").rglob("result.json"))
            if proc.returncode != 0 or not results:
                row["error"] = (proc.stderr.strip().splitlines() or ["?"])[-1][:300]
                row["timings"] = row["stage_lines"]  # the stages that finished
            else:
                res = json.loads(results[-1].read_text())
                m = res["metrics"]
                row.update(metrics={k: m.get(k) for k in ("image_auroc", "pixel_auroc", "pixel_aupro")},
                           timings=res["timings"], data=res["data"], torch_threads=res["environment"].get("torch_threads"))
        rows.append(row)
        print("cells", row, flush=True)
    return {"rows": rows, "target": "each cell under 180 s on 2 CPU cores (issue 16)"}


RUNNERS: dict[str, Callable[[torch.device, bool], dict]] = {
    "env": section_env, "generators": section_generators, "detectors": section_detectors,
    "engine": section_engine, "memory": section_memory, "grid": section_grid, "cells": section_cells}


# ------------------------------------------------------------------------------ report


def _short(commit: str | None) -> str:
    return "-" if not commit else commit[:12] + ("+dirty" if commit.endswith("+dirty") else "")


def markdown(all_runs: dict[str, dict]) -> str:
    lines = ["# benchbox performance suite", "",
             "Written by `benchmarks/perf.py`; raw figures in `benchmarks/perf.json`. Each device's figures are "
             "reported separately.", ""]
    for dev, run in all_runs.items():
        m = run["machine"]
        lines += [f"## {dev}: {m['device_name']}", "",
                  f"torch {m['torch']}, {m['torch_threads']} torch thread(s), {m['cpu_count']} CPU cores, "
                  f"{m['platform']}; run {m['date']}, load average at end {m['load_avg_at_end']}.", ""]
        s = run["sections"]
        lines += ["torch threads per section (the line above: the latest run): "
                  + ", ".join(f"{k} {v.get('torch_threads', m['torch_threads'])}" for k, v in s.items()), ""]
        if "env" in s:
            e = s["env"]
            lines += ["### Latent environment", "", "| N | vector env steps/s | Python loop steps/s | ratio |",
                      "|---:|---:|---:|---:|"]
            lines += [f"| {r['num_envs']} | {r['vector_steps_per_s']:,.0f} | {r['loop_steps_per_s']:,.0f} | "
                      f"{r['ratio']}x |" for r in e["step_rows"]]
            lines += ["", "| PPO training client | steps | steps/s |", "|---|---:|---:|"]
            lines += [f"| {r['client']} | {r.get('steps', '-')} | {r.get('steps_per_s', r.get('skipped'))} |"
                      for r in e["training_rows"]]
            lines += [""]
        if "generators" in s:
            lines += ["### Generator training throughput (1 epoch)", "",
                      "| generator | 28 px images/s | 256 px images/s | torch threads | commit |", "|---|---:|---:|---:|---|"]
            by, prov = {}, {}
            for r in s["generators"]["rows"]:
                by.setdefault(r["generator"], {})[r["image_size"]] = (
                    str(r.get("train_images_per_s", "error"))
                    + (f" (warm {r['warm_train_images_per_s']})" if "warm_train_images_per_s" in r else ""))
                prov[r["generator"]] = (r.get("torch_threads", m["torch_threads"]), _short(r.get("commit")))
            lines += [f"| {g} | {v.get(28, '-')} | {v.get(256, '-')} | {prov[g][0]} | {prov[g][1]} |"
                      for g, v in by.items()]
            lines += ["", "Issue 16 targets for `ae` on 2 CPU cores: >= 30 images/s at 256 px (1.7 before), >= 1064 at "
                      "28 px (2x the 532 before). Each row: the first epoch of a fresh model (256 images at 28 px, 64 at "
                      "256 px), so first-call costs are included; \"warm\": a second fresh model timed the same way in the same "
                      "process (`--warm`).", ""]
        if "detectors" in s:
            lines += ["### Detector throughput", "", "| detector | fit img/s 28 px | score img/s 28 px | "
                      "fit img/s 256 px | score img/s 256 px |", "|---|---:|---:|---:|---:|"]
            by = {}
            for r in s["detectors"]["rows"]:
                by.setdefault(r["detector"], {})[r["image_size"]] = r
            for d, v in by.items():
                cells = []
                for size in (28, 256):
                    r = v.get(size, {})
                    cells += ["error", "error"] if "error" in r else [str(r.get("fit_images_per_s", "-")),
                                                                      str(r.get("score_images_per_s", "-"))]
                lines.append(f"| {d} | " + " | ".join(cells) + " |")
            sizes = sorted({(r["image_size"], r["n_fit"], r["n_score"]) for r in s["detectors"]["rows"]})
            lines += ["", s["detectors"]["note"] + "; images fitted / scored: "
                      + ", ".join(f"{a} px {b} / {c}" for a, b, c in sizes) + ".", ""]
        if "engine" in s:
            e = s["engine"]
            lines += [f"### anomalib Engine vs benchbox wrapper: {e['model']}, {e['n_train']} train / {e['n_test']} test",
                      "", "| route | fit s | score s | image AUROC |", "|---|---:|---:|---:|"]
            lines += [f"| {r['route']} | {r['fit_s']} | {r['score_s']} | {r['image_auroc']:.4f} |" for r in e["rows"]]
            lines += ["", f"max |score difference| = {e['max_abs_score_diff']:.2e}", ""]
        if "memory" in s:
            mm = s["memory"]
            lines += ["### Default run", "", f"`{mm['command']}`: peak RSS {mm['peak_rss_mb']} MB, wall {mm['wall_s']} s, "
                      f"exit {mm['exit_code']}.", ""]
        if "grid" in s:
            g = s["grid"]
            lines += ["### Grid stage cache", "", f"{g['grid']}", "",
                      f"cached {g['cache']['wall_s']} s ({g['cache']['generator_trainings']} generator trainings) vs "
                      f"uncached {g['no_cache']['wall_s']} s ({g['no_cache']['generator_trainings']}): "
                      f"**{g['speedup']}x**; identical metrics: {g['same_metrics']}.", ""]
        if "cells" in s:
            lines += ["### Default 256 px cells (issue 16: each under 3 minutes on 2 CPU cores)", "",
                      "| cell | command | OMP threads | wall s | image AUROC | pixel AUROC | AUPRO | stage seconds | commit |",
                      "|---|---|---:|---:|---:|---:|---:|---|---|"]
            for r in s["cells"]["rows"]:
                m, t = r.get("metrics", {}), r.get("timings", {})
                stages = ", ".join(f"{k} {v:.0f}" for k, v in t.items() if k != "total") or "-"
                if "error" in r:
                    stages += f" ({r['error']})"
                fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
                lines.append(f"| {r['cell']} | `{r['command']}` | {r.get('omp_num_threads') or '-'} | {r['wall_s']} | "
                             f"{fmt(m.get('image_auroc'))} | {fmt(m.get('pixel_auroc'))} | {fmt(m.get('pixel_aupro'))} | "
                             f"{stages} | {_short(r.get('commit'))} |")
            within = [r for r in s["cells"]["rows"] if r.get("exit_code") == 0 and r["wall_s"] < 180]
            lines += ["", f"{len(within)} of {len(s['cells']['rows'])} cells finished under 180 s. Where the time goes: "
                      "the stage seconds above (a stopped cell: the stages it finished, and its estimate lines below)."]
            notes = [f"- {r['cell']}: {n}" for r in s["cells"]["rows"] for n in r.get("notes", [])]
            lines += ["", "The runs' own estimate lines (printed before a training stage that will take minutes):", "",
                      *(notes or ["- none in these runs' output"]), ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    ap.add_argument("--sections", nargs="*", default=list(SECTIONS), choices=SECTIONS)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--quick", action="store_true", help="smaller budgets (a smoke run; numbers are noisier)")
    ap.add_argument("--out", type=Path, default=HERE / "perf.json")
    ap.add_argument("--detectors", nargs="*", default=[], help="detectors section: only these (rows merged)")
    ap.add_argument("--warm", action="store_true", help="generators section: also time a second fresh model per row")
    ap.add_argument("--cells", nargs="*", default=[], help="cells section: only the cells whose name has one of these")
    ap.add_argument("--generators", nargs="*", default=[], help="generators section: only these (rows merged)")
    ap.add_argument("--markdown-only", action="store_true", help="rewrite perf.md from perf.json; run nothing")
    args = ap.parse_args()
    if args.markdown_only:
        atomic_write_text(args.out.with_suffix(".md"), markdown(json.loads(args.out.read_text())["runs"]))
        return
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    all_runs = json.loads(args.out.read_text()).get("runs", {}) if args.out.exists() else {}
    run = all_runs.get(device.type, {"sections": {}})
    for name in args.sections:
        t0 = time.perf_counter()
        ONLY_DETECTORS[:] = args.detectors
        ONLY_GENERATORS[:] = args.generators
        ONLY_CELLS[:] = args.cells
        WARM[0] = args.warm
        result = RUNNERS[name](device, args.quick)
        if name == "cells" and args.cells and "cells" in run["sections"]:
            result["rows"] = [r for r in run["sections"]["cells"]["rows"] if not any(w in r["cell"] for w in args.cells)
                              ] + result["rows"]
        if name == "generators" and args.generators and "generators" in run["sections"]:
            kept = [r for r in run["sections"]["generators"]["rows"] if r["generator"] not in args.generators]
            for r in kept:  # the rows kept from the earlier run keep its thread count and commit
                r.setdefault("torch_threads", run["sections"]["generators"].get("torch_threads", run["machine"]["torch_threads"]))
                r.setdefault("commit", run["sections"]["generators"].get("commit"))
            result["rows"] = kept + [dict(r, torch_threads=result["torch_threads"], commit=result["commit"])
                                     for r in result["rows"]]
        if name == "detectors" and args.detectors and "detectors" in run["sections"]:
            kept = [r for r in run["sections"]["detectors"]["rows"] if r["detector"] not in args.detectors]
            result["rows"] = kept + result["rows"]
        result["section_wall_s"] = round(time.perf_counter() - t0, 1)
        result.setdefault("torch_threads", torch.get_num_threads())
        for earlier in run["sections"].values():  # sections from an earlier run keep that run's thread count
            earlier.setdefault("torch_threads", run.get("machine", {}).get("torch_threads"))
        run["sections"][name] = result
        run["machine"] = {"device": device.type, "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
                          else platform.processor() or platform.machine(), "torch": torch.__version__,
                          "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
                          "platform": platform.platform(), "date": time.strftime("%Y-%m-%d %H:%M"),
                          "load_avg_at_end": [round(x, 1) for x in os.getloadavg()], "quick": args.quick,
                          "versions": package_versions(("stable-baselines3",))}
        all_runs[device.type] = run
        atomic_write_json(args.out, {"runs": all_runs})  # after every section: a crash keeps what ran
        atomic_write_text(args.out.with_suffix(".md"), markdown(all_runs))
        print(f"[perf] {name} done in {result['section_wall_s']} s", flush=True)


if __name__ == "__main__":
    main()
