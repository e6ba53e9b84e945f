"""Run one benchmark cell: dataset -> generator -> policy -> augmented set -> detector -> metrics.

``run_cell(spec)`` returns the result dict that is also written to ``<out>/<id>/result.json``
together with ``samples.png`` and ``curves.png``. The run folder is assembled under a hidden
temporary name and renamed into place at the end, so an interrupted or failed run leaves no
half-written result behind.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import resource
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch

from . import registry, training
from .cache import StageCache, stage_keys
from .config import CellSpec
from .errors import BenchboxError, TrainingDiverged
from .fingerprint import row_code
from .interfaces import Curves, FitContext, Generator, LatentPolicy, LabeledImages
from .io import atomic_write_json
from .metrics import image_metrics
from .pixel_metrics import pixel_metrics
from .runtime import device_info, package_versions, resolve_device, seed_everything

STAGES = ("load data", "fit generator", "fit policy", "augment", "fit detector", "score")


class StageFailed(BenchboxError):
    """A stage raised; the message names the stage and the original error in one line."""

    def __init__(self, stage: str, exc: BaseException):
        self.stage = stage
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        prefix = "" if isinstance(exc, BenchboxError) else f"{type(exc).__name__}: "
        super().__init__(f"stage '{stage}' failed: {prefix}{detail}")


class Reporter:
    """Progress sink: the CLI plugs rich bars or plain lines in (:mod:`benchbox.progress`);
    library use can stay silent."""

    def start(self, stage: str) -> None: ...

    def update(self, stage: str, completed: float, total: float | None) -> None: ...

    def processed(self, stage: str, n: float, unit: str) -> None:
        """``n`` more images (or steps) done in ``stage``: the rate shown beside the progress."""

    def note(self, stage: str, message: str) -> None:
        """A one-line remark about ``stage`` (e.g. an estimate of its time)."""

    def finish(self, stage: str, seconds: float) -> None: ...


@dataclass
class _Timer:
    timings: dict[str, float] = field(default_factory=dict)


@contextlib.contextmanager
def _stage(name: str, reporter: Reporter, timer: _Timer) -> Iterator[None]:
    reporter.start(name)
    t0 = time.perf_counter()
    try:
        yield
    except StageFailed:
        raise
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        raise StageFailed(name, exc) from exc
    seconds = time.perf_counter() - t0
    timer.timings[name] = round(seconds, 4)
    reporter.finish(name, seconds)


def augment(
    generator: Generator, policy: LatentPolicy, latents: torch.Tensor, ratio: float, seed: int, batch_size: int = 256
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Decode ``round(ratio * N)`` perturbed latents. Returns (images, source indices, dz)."""
    n = int(round(ratio * len(latents))) if policy.generates else 0
    if n == 0:
        empty = torch.empty(0, dtype=torch.long)
        return torch.empty(0), empty, torch.empty(0, latents.shape[1])
    src = torch.randint(len(latents), (n,), generator=torch.Generator().manual_seed(seed * 7919 + 3))
    dz = policy.propose(latents[src], seed=seed * 7919 + 5)
    if dz.shape != latents[src].shape:
        raise ValueError(f"policy returned dz of shape {tuple(dz.shape)} for z of shape {tuple(latents[src].shape)}")
    if not bool(torch.isfinite(dz).all()):
        bad = int((~torch.isfinite(dz)).sum())
        raise TrainingDiverged(f"the policy proposed non-finite dz ({bad} of {dz.numel()} values): its training diverged")
    images = torch.cat(
        [generator.decode(latents[src[i : i + batch_size]] + dz[i : i + batch_size]) for i in range(0, n, batch_size)]
    )
    return images.clamp(0, 1), src, dz


def augment_spread(latents: torch.Tensor, dz: torch.Tensor, generated: torch.Tensor,
                   real: torch.Tensor) -> dict[str, float]:
    """How far and how diversely the policy moved (collapse shows as spreads near 0); empty without images.

    ``dz_rms``: root mean square of dz in units of the training latents' per-dimension std;
    ``dz_spread``: mean over dimensions of the std of dz across the generated set, same units;
    ``gen_spread``: mean per-pixel std of the generated images over that of the real training
    images (1 = as varied as the training set).
    """
    if not len(generated):
        return {}
    std = latents.float().std(0).clamp_min(1e-8) if len(latents) > 1 else torch.ones(latents.shape[1])
    u = dz.float() / std
    real_std = float(real.float().std(0).mean()) if len(real) > 1 else 0.0
    gen_std = float(generated.float().std(0).mean()) if len(generated) > 1 else 0.0
    return {"dz_rms": float(u.pow(2).mean().sqrt()), "dz_spread": float(u.std(0).mean()) if len(u) > 1 else 0.0,
            "gen_spread": gen_std / real_std if real_std > 0 else None}


def _generation_quality(real: torch.Tensor, generated: torch.Tensor, device: torch.device) -> dict[str, float]:
    """FID, pixel-histogram KL and PRDC of the generated images vs the real training images.

    Empty (no keys) when the policy generated nothing. Features come from the cached in-domain
    extractor of ``benchbox.features`` (cache folder: ``$BENCHBOX_CACHE``).
    """
    if not len(generated):
        return {}
    from .features import feature_extractor
    from .genmetrics import generation_metrics

    return generation_metrics(real, generated, feature_extractor(real, device=device))


def _new_run_dir(out: Path, spec: CellSpec) -> tuple[str, Path]:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{'-'.join(spec.names.values())}-s{spec.run.seed}-{spec.hash()[:6]}"
    run_id, k = base, 1
    while (out / run_id).exists():
        k += 1
        run_id = f"{base}-{k}"
    return run_id, out / f".partial-{run_id}"


def _create_plugins(spec: CellSpec) -> list[Any]:
    """Every option checked (its declared bounds, named by its flag) and the four plugins built.

    A bad option is a one-line ConfigError of its own, never a failure of stage 'load data'; any
    other error while building a plugin names the plugin.
    """
    from .options import check_config

    for kind, choice in spec.plugins.items():
        check_config(choice.config, f"--{kind}.")
    check_config(spec.augment, "--augment.")
    plugins = []
    for kind, choice in spec.plugins.items():
        try:
            plugins.append(registry.create(registry.KINDS[kind], choice.name, choice.config))
        except BenchboxError:
            raise
        except Exception as exc:
            raise StageFailed("create plugins", exc) from exc
    return plugins


def run_cell(spec: CellSpec, reporter: Reporter | None = None, write: bool = True,
             cache: "StageCache | None" = None) -> dict[str, Any]:
    """Run one cell end to end and return its result row (also written to disk if ``write``).

    With a :class:`benchbox.cache.StageCache`, the fitted generator, the fitted policy and the
    augmented set are taken from the cache when present (and stored when computed); the row's
    ``cache`` field says which (``hit``/``miss``/...). Without one, every stage runs.
    """
    reporter = reporter or Reporter()
    device = resolve_device(spec.run.device)
    if spec.run.threads:
        torch.set_num_threads(spec.run.threads)
    seed = spec.run.seed
    seed_everything(seed)
    timer = _Timer()
    curves: dict[str, Curves] = {s: Curves() for s in ("generator", "policy", "detector")}
    started = time.time()

    def ctx(stage: str, key: str, val: LabeledImages | None, offset: int) -> FitContext:
        estimated = {"done": False, "t0": time.perf_counter()}

        def progress(done: float, total: float | None = None) -> None:
            reporter.update(stage, done, total)
            if not estimated["done"] and total and 0 < done < total:  # a loop that did not note its own estimate
                elapsed = time.perf_counter() - estimated["t0"]
                if elapsed >= training.ESTIMATE_PROBE_S:
                    estimated["done"] = True
                    seconds = elapsed * total / done
                    if seconds > training.ESTIMATE_AFTER_S:
                        reporter.note(stage, f"{done:g} of {total:g} done in {training.duration_text(elapsed)}: "
                                             f"about {training.duration_text(seconds)} in all")

        def processed(n: float, unit: str = "images") -> None:
            reporter.processed(stage, n, unit)

        def note(message: str) -> None:
            estimated["done"] = True
            reporter.note(stage, message)

        return FitContext(device=device, seed=seed * 101 + offset, stage=stage, val=val, progress=progress,
                          curves=curves[key], processed=processed, note=note)

    dataset, generator, policy, detector = _create_plugins(spec)  # bad options fail here, before any stage
    with _stage("load data", reporter, timer):
        splits = dataset.load(seed)
        reporter.update("load data", 1, 1)

    keys = stage_keys(spec, device.type) if cache is not None else {}
    cached: dict[str, str] = {}

    def cached_stage(stage: str, compute: Any) -> Any:
        if cache is None:
            return compute()
        value, cached[stage] = cache.fetch(stage, keys[stage], compute)
        return value

    def fit_generator() -> Generator:
        generator.fit(splits.train, ctx("fit generator", "generator", splits.val, 1))
        return generator

    with _stage("fit generator", reporter, timer):
        generator = cached_stage("generator", fit_generator)

    def fit_policy() -> LatentPolicy:
        policy.fit(generator, latents, ctx("fit policy", "policy", splits.val, 2))
        return policy

    with _stage("fit policy", reporter, timer):
        latents = generator.encode(splits.train)
        if not bool(torch.isfinite(latents).all()):  # a generator whose own loop has no NaN guard
            raise TrainingDiverged(f"generator {spec['generator'].name!r} encodes the training images to non-finite latents: "
                                   "its training diverged")
        policy = cached_stage("policy", fit_policy)

    def augmented_set() -> dict[str, Any]:
        images, idx, delta = augment(generator, policy, latents, spec.augment.ratio, seed, spec.augment.batch_size)
        return {"generated": images, "src": idx, "dz": delta,
                "generation": {k: v if v is None or isinstance(v, str) else float(v)
                               for k, v in _generation_quality(splits.train, images, device).items()}
                | augment_spread(latents, delta, images, splits.train)}

    with _stage("augment", reporter, timer):
        aug = cached_stage("augment", augmented_set)
        generated, src, dz, generation = aug["generated"], aug["src"], aug["dz"], aug["generation"]
        reporter.update("augment", 1, 1)

    with _stage("fit detector", reporter, timer):
        dctx = ctx("fit detector", "detector", splits.val, 3)
        if policy.role == "anomaly" and len(generated):
            detector.fit(splits.train, dctx, pseudo_anomalies=generated)
        else:
            detector.fit(torch.cat([splits.train, generated]) if len(generated) else splits.train, dctx)

    with _stage("score", reporter, timer):
        scores = detector.score(splits.test.images)
        if scores.image.shape != (len(splits.test),):
            raise ValueError(f"detector returned {tuple(scores.image.shape)} scores for {len(splits.test)} images")
        metrics: dict[str, Any] = {**image_metrics(splits.test.labels, scores.image), **generation}
        metrics.update(pixel_metrics(splits.test.masks, scores.maps))
        if len(splits.val):
            recon = generator.decode(generator.encode(splits.val.images))
            metrics["generator_val_mse"] = float((recon - splits.val.images).pow(2).mean())
        reporter.update("score", 1, 1)

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result: dict[str, Any] = {
        "id": None,
        "status": "ok",
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "metrics": metrics,
        "config": spec.resolved(),
        "config_hash": spec.hash(),
        "seed": seed,
        "device": str(device),
        "environment": device_info(device),
        "versions": package_versions(),
        "code": row_code(spec),  # benchbox version, each plugin's source hash or release, git commit
        "plugins": {
            g: {"name": n, "distribution": registry.info(g, n).distribution, "version": registry.info(g, n).version}
            for g, n in zip(registry.GROUPS, spec.names.values())
        },
        "data": {"name": splits.name, "category": splits.category, "image_shape": list(splits.image_shape),
                 "n_train": len(splits.train), "n_val": len(splits.val), "n_test": len(splits.test),
                 "n_test_anomalous": int(splits.test.labels.sum()), "n_generated": len(generated),
                 "generated_role": policy.role if len(generated) else None},
        "timings": {**timer.timings, "total": round(time.time() - started, 3)},
        "peak_rss_mb": round(peak_mb, 1),
        "curves": {k: v.to_dict() for k, v in curves.items()},
    }
    if cache is not None:
        result["cache"] = {stage: {"status": cached[stage], "key": keys[stage]} for stage in cached}
    if device.type == "cuda":
        result["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    if write:
        _write_run(Path(spec.run.out), spec, result, splits.train, generator, latents, src, dz, generated)
    return result


def _write_run(out: Path, spec: CellSpec, result: dict[str, Any], train: torch.Tensor, generator: Generator,
               latents: torch.Tensor, src: torch.Tensor, dz: torch.Tensor, generated: torch.Tensor) -> None:
    from .plotting import save_curves, save_sample_grid

    run_id, tmp = _new_run_dir(out, spec)
    tmp.mkdir(parents=True, exist_ok=False)
    try:
        n = min(10, len(train))
        idx = src[:n] if len(src) >= n else torch.arange(n)
        rows = {"originals": train[idx], "decode(z)": generator.decode(latents[idx])}
        if len(generated):
            rows["decode(z + dz)"] = generated[:n]
        else:
            rows["decode(z + dz), dz = 0"] = generator.decode(latents[idx])
        save_sample_grid(tmp / "samples.png", rows)
        save_curves(tmp / "curves.png", result["curves"])
        result["id"] = run_id
        result["path"] = str(out / run_id)
        atomic_write_json(tmp / "result.json", result)
        tmp.rename(out / run_id)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

