"""Throughput of the batched latent environment vs N single environments stepped in a Python loop.

The generator is the ``ae`` on MNIST (its weights do not matter for speed, so it is fitted for one
epoch). For each N the vector env steps N environments per call (one decode + one encode + one
nearest-neighbour search, all batched); the loop baseline steps N :class:`LatentEnv` one by one.
Writes ``benchmarks/results/latent_env_speed.json`` and ``.md``. Usage::

    python benchmarks/latent_env_speed.py [--sizes 1 64 1024] [--device cpu] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from benchbox import registry
from benchbox.interfaces import FitContext
from benchbox.runtime import device_info
from benchbox_plugins.rl.latent_env import LatentCore, LatentEnv, LatentVectorEnv, RewardConfig

OUT = Path(__file__).parent / "results"


def vector_sps(core: LatentCore, n: int, min_seconds: float) -> float:
    env = LatentVectorEnv(core, n)
    env.reset(seed=0)
    actions = torch.rand(n, core.d, generator=torch.Generator().manual_seed(0), device="cpu").to(core.device) * 2 - 1
    env.step(actions)  # warm-up
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min_seconds:
        env.step(actions)
        steps += n
    if core.device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - t0)


def loop_sps(core: LatentCore, n: int, min_seconds: float) -> float:
    envs = [LatentEnv(core) for _ in range(n)]
    for i, e in enumerate(envs):
        e.reset(seed=i)
    action = np.zeros(core.d, dtype=np.float32)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min_seconds:
        for e in envs:  # the baseline: one environment at a time
            _, _, term, trunc, _ = e.step(action)
            if term or trunc:
                e.reset()
            steps += 1
            if steps >= n and time.perf_counter() - t0 >= min_seconds:
                break
    return steps / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 64, 1024])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=2.0)
    opts = parser.parse_args()
    if opts.threads:
        torch.set_num_threads(opts.threads)
    device = torch.device(opts.device)
    splits = registry.create("datasets", "mnist").load(0)
    gen = registry.create("generators", "ae", epochs=1)
    gen.fit(splits.train, FitContext(device=device, seed=0))
    core = LatentCore(gen, gen.encode(splits.train), RewardConfig(), device=device)
    rows = []
    for n in opts.sizes:
        v, lp = vector_sps(core, n, opts.seconds), loop_sps(core, n, opts.seconds)
        rows.append({"num_envs": n, "vector_steps_per_s": round(v, 1), "loop_steps_per_s": round(lp, 1),
                     "speedup": round(v / lp, 2)})
        print(rows[-1], flush=True)
    result = {"device": str(device), "threads": torch.get_num_threads(), "n_train_latents": len(core.latents),
              "latent_dim": core.d, "environment": device_info(device), "rows": rows,
              "note": "shared 2-core machine with other jobs running: absolute numbers are pessimistic, ratios are the point"}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"latent_env_speed_{device.type}.json").write_text(json.dumps(result, indent=2))
    lines = [f"# Latent environment throughput ({device.type}, {result['threads']} thread(s))", "",
             f"ae generator on MNIST class 0, d = {core.d}, {len(core.latents)} training latents, one-step episodes.", "",
             "| N | vector env steps/s | N single envs in a Python loop, steps/s | ratio |", "|---|---|---|---|"]
    lines += [f"| {r['num_envs']} | {r['vector_steps_per_s']:,.0f} | {r['loop_steps_per_s']:,.0f} | {r['speedup']}x |" for r in rows]
    lines += ["", result["note"]]
    (OUT / f"latent_env_speed_{device.type}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
