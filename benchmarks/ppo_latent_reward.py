"""Does PPO learn anything on the latent environment? Learned dz vs random dz of the same scale.

For each seed: fit the ``ae`` on MNIST (normal class 0), fit the ``ppo`` policy with its default
budget, then score 2048 source latents (drawn with a fixed generator) under the environment's
reward with dz from

* ``ppo``: the learned policy, actions sampled as ``propose`` does;
* ``random-matched``: Gaussian actions with the same per-dimension RMS as ppo's actions (clipped
  to [-1, 1] like every action), i.e. random dz of the same scale;
* ``random-uniform``: actions uniform in [-1, 1]^d (a random agent in the environment);
* ``random-plugin``: the ``random`` policy's default, dz ~ N(0, (0.5 std)^2).

Writes ``benchmarks/results/ppo_latent_reward_<role>.json`` (config, rows, versions, device, commit and
wall time via ``benchmarks/provenance.py``) and the ``.md`` from it. Usage::

    python benchmarks/ppo_latent_reward.py [--seeds 0 1 2] [--role normal] [--ae-epochs 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from provenance import provenance  # benchmarks/provenance.py: versions, device, commit, wall time

from benchbox import registry
from benchbox.io import atomic_write_json, atomic_write_text
from benchbox.interfaces import FitContext
from benchbox_plugins.policies.ppo import PPOPolicy

OUT = Path(__file__).parent / "results"


def evaluate(core, z: torch.Tensor, action: torch.Tensor) -> dict[str, float]:
    a = action.clamp(-1, 1)
    total, terms = core.reward(z + core.delta(a), a)
    return {"reward": float(total.mean()), **{k: float(v.mean()) for k, v in terms.items()}}


def one_seed(seed: int, role: str, ae_epochs: int, overrides: dict) -> dict:
    splits = registry.create("datasets", "mnist").load(seed)
    gen = registry.create("generators", "ae", epochs=ae_epochs)
    gen.fit(splits.train, FitContext(device=torch.device("cpu"), seed=seed))
    latents = gen.encode(splits.train)
    t0 = time.perf_counter()
    pol = PPOPolicy(PPOPolicy.Config(role=role, **overrides))
    ctx = FitContext(device=torch.device("cpu"), seed=seed)
    pol.fit(gen, latents, ctx)
    fit_s = time.perf_counter() - t0
    core = pol.core
    assert core is not None
    g = torch.Generator().manual_seed(10_000 + seed)
    z = latents[torch.randint(len(latents), (2048,), generator=g)]
    a_ppo = pol.propose(z, seed=seed) / (core.cfg.step_size * core.sigma)
    rms = a_ppo.pow(2).mean(0).sqrt()
    out = {
        "ppo": evaluate(core, z, a_ppo),
        "random-matched": evaluate(core, z, torch.randn(z.shape, generator=g) * rms),
        "random-uniform": evaluate(core, z, torch.rand(z.shape, generator=g) * 2 - 1),
        "random-plugin": evaluate(core, z, torch.randn(z.shape, generator=g) * 0.5),
    }
    first = [v for _, v in ctx.curves.series["episodic_return"][:1]]
    return {"seed": seed, "fit_seconds": round(fit_s, 1), "ppo_action_rms": float(rms.mean()),
            "first_update_return": first[0] if first else None, "band": list(core.band), **out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--role", default="normal", choices=["normal", "anomaly"])
    parser.add_argument("--ae-epochs", type=int, default=20)
    parser.add_argument("--ppo", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override ppo Config fields, e.g. num_envs=128 total_timesteps=65536")
    opts = parser.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    fields = PPOPolicy.Config.__dataclass_fields__
    overrides = {k: type(getattr(PPOPolicy.Config(), k))(v) for k, v in (kv.split("=", 1) for kv in opts.ppo) if k in fields}
    rows = []
    for seed in opts.seeds:
        rows.append(one_seed(seed, opts.role, opts.ae_epochs, overrides))
        print({k: (v["reward"] if isinstance(v, dict) else v) for k, v in rows[-1].items()}, flush=True)
    arms = ["ppo", "random-matched", "random-uniform", "random-plugin"]
    summary = {a: {"mean": statistics.mean(r[a]["reward"] for r in rows),
                   "std": statistics.stdev(r[a]["reward"] for r in rows) if len(rows) > 1 else 0.0} for a in arms}
    result = {"role": opts.role, "ae_epochs": opts.ae_epochs, "seeds": opts.seeds,
              "ppo_config": vars(PPOPolicy.Config(role=opts.role, **overrides)), "rows": rows, "summary": summary,
              "ppo_beats_matched_random_every_seed": all(r["ppo"]["reward"] > r["random-matched"]["reward"] for r in rows),
              **provenance("cpu", t0)}
    OUT.mkdir(parents=True, exist_ok=True)
    atomic_write_json(OUT / f"ppo_latent_reward_{opts.role}.json", result)
    atomic_write_text(OUT / f"ppo_latent_reward_{opts.role}.md", render(result))
    print(render(result))


def render(result: dict) -> str:
    """The .md, from the JSON alone."""
    arms = ["ppo", "random-matched", "random-uniform", "random-plugin"]
    rows, summary = result["rows"], result["summary"]
    lines = [f"# Latent env ({result['role']} role): mean reward of learned vs random dz", "",
             "MNIST class 0, ae generator; reward on 2048 source latents per seed; mean ± std over seeds "
             f"{result['seeds']}.", "", "| dz from | mean reward | realism | novelty | size |", "|---|---|---|---|---|"]
    for a in arms:
        terms = {k: statistics.mean(r[a][k] for r in rows) for k in ("realism", "novelty", "size")}
        lines.append(f"| {a} | {summary[a]['mean']:.3f} ± {summary[a]['std']:.3f} | {terms['realism']:.3f} | "
                     f"{terms['novelty']:.3f} | {terms['size']:.3f} |")
    lines += ["", f"ppo > random-matched on every seed: {result['ppo_beats_matched_random_every_seed']}", "",
              f"ppo config: `{json.dumps(result['ppo_config'], sort_keys=True)}`", "",
              f"Device {result['device']['device']}, {result['device']['torch_threads']} torch thread, torch "
              f"{result['versions'].get('torch')}, commit {result['commit']}, wall {result['wall_seconds']} s."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
