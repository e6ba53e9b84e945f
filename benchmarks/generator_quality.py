"""Does the generation-quality metric rank an obviously worse generator as worse?

For each generator (default config) on MNIST-5k normal class ``--normal-class``, fitted on the
training normals: FID / pixel KL / PRDC of ``decode(encode(train))`` against the real training
images, and of ``decode(z)`` with ``z ~ N(0, I)`` scaled to the per-dimension std of the training
latents. The second must come out worse. Writes ``results/generator_quality.json`` (with versions,
device, commit and wall time from ``benchmarks/provenance.py``) and the ``.md`` from it.

    python benchmarks/generator_quality.py [--generators ae vae memvae] [--seeds 0] [--normal-class 0]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from provenance import provenance  # benchmarks/provenance.py: versions, device, commit, wall time

from benchbox import registry
from benchbox.features import feature_extractor
from benchbox.genmetrics import generation_metrics
from benchbox.interfaces import FitContext
from benchbox.io import atomic_write_json, atomic_write_text
from benchbox.runtime import seed_everything

OUT = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--generators", nargs="*", default=["ae", "vae", "memvae"])
    ap.add_argument("--seeds", type=int, nargs="*", default=[0])
    ap.add_argument("--normal-class", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    rows = []
    for seed in args.seeds:
        splits = registry.create("datasets", "mnist", normal_class=args.normal_class).load(seed)
        extract = feature_extractor(splits.train)
        for name in args.generators:
            seed_everything(seed)
            t, wall = time.process_time(), time.perf_counter()
            gen = registry.create("generators", name)
            gen.fit(splits.train, FitContext(device=torch.device("cpu"), seed=seed * 101 + 1, val=splits.val))
            z = gen.encode(splits.train)
            noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(seed)) * z.std(0)
            for source, latents in (("decode(z_train)", z), ("decode(N(0,I)*std_z)", noise)):
                m = generation_metrics(splits.train, gen.decode(latents), extract)
                rows.append({"generator": name, "seed": seed, "source": source, **m})
                print(name, seed, source, {k: round(v, 4) for k, v in m.items()}, flush=True)
            rows[-1]["cpu_seconds"] = round(time.process_time() - t, 1)
            rows[-1]["wall_seconds"] = round(time.perf_counter() - wall, 1)
    ok = all(a["gen_fid"] < b["gen_fid"] for a, b in zip(rows[::2], rows[1::2]))
    data = {"config": {"generators": args.generators, "seeds": args.seeds, "normal_class": args.normal_class},
            "rows": rows, "ranking_holds": ok, **provenance("cpu", t0)}
    atomic_write_json(OUT / "generator_quality.json", data)
    atomic_write_text(OUT / "generator_quality.md", render(data))


def render(data: dict) -> str:
    """The .md, from the JSON alone."""
    rows, ok = data["rows"], data["ranking_holds"]
    lines = [f"# Generation metrics on MNIST-5k normal class {data['config']['normal_class']} (default generator configs)", "",
             "Real = the training normals; features from the cached in-domain extractor (`benchbox/features.py`).", "",
             "| generator | seed | images | FID | pixel KL | precision | recall | density | coverage |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['generator']} | {r['seed']} | {r['source']} | {r['gen_fid']:.3f} | {r['gen_pixel_kl']:.4f} | "
              f"{r['gen_precision']:.3f} | {r['gen_recall']:.3f} | {r['gen_density']:.3f} | {r['gen_coverage']:.3f} |"
              for r in rows]
    lines += ["", f"FID ranks decoded noise worse than reconstructions for every generator and seed: **{ok}**", "",
              f"Device {data['device']['device']}, {data['device']['torch_threads']} torch thread(s), torch "
              f"{data['versions'].get('torch')}, commit {data['commit']}, wall {data['wall_seconds']} s."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
