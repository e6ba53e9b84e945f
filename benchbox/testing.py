"""Contract checks for benchbox plugins: run them in a plugin's own CI.

In the spirit of scikit-learn's ``check_estimator`` and gymnasium's ``check_env``: each check
builds the plugin, exercises its interface (``benchbox.interfaces``) on small data and raises
``AssertionError`` with one message naming the plugin and the broken property. benchbox's own
registry-wide contract tests (``tests/test_contracts.py``) call exactly these functions.

A plugin is given as a class, an instance (its class and config are used; fresh instances are
built from them, so pass an unfitted one) or a registered name, plus an optional config (a
``Config`` instance or a dict of options)::

    from benchbox.testing import check_dataset, check_detector

    def test_contract():
        check_dataset(MyDataset)
        check_detector(MyDetector, {"epochs": 1})   # small budgets keep the check fast
        check_detector("my-detector")               # by entry-point name, once installed

What is checked:

* the class: derives from the right interface, has a ``Config`` dataclass whose every field has a
  default and turns into CLI options (tyro), has a description (docstring's first line);
* shapes, dtypes, value ranges and devices of everything returned (tensors back on the CPU);
* inputs are never modified;
* determinism: the same seed gives the same splits / weights / dz / scores, with two fresh
  instances (so all randomness must come from ``ctx.seed`` or the ``seed`` argument);
* clear errors on bad input: using a model before ``fit``, a wrong channel count or latent size
  must raise ``ValueError`` / ``RuntimeError`` (or a ``benchbox.errors`` error) with a message;
* device moves: fitting with ``ctx.device`` = every device in ``devices`` (default: the CPU, and
  CUDA when available) still returns CPU tensors of the right shapes.

Data defaults to small procedurally generated images (:func:`toy_images`); pass your own
(``images=``, ``train=``/``test=``) where a plugin needs a particular size or channel count.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
from dataclasses import dataclass
from typing import Any, Iterable, NoReturn

import torch

from . import registry
from .errors import BenchboxError
from .interfaces import (
    GROUPS,
    FitContext,
    Generator,
    LabeledImages,
    LatentPolicy,
    Plugin,
    Scores,
    Splits,
)

__all__ = [
    "check_dataset",
    "check_generator",
    "check_policy",
    "check_detector",
    "toy_images",
    "PCAGenerator",
    "CLEAR_ERRORS",
]

CLEAR_ERRORS = (ValueError, RuntimeError, TypeError, BenchboxError)
"""Exception types a plugin may raise for bad input (with a message saying what is wrong)."""

_checked_classes: set[tuple[str, type]] = set()


# --------------------------------------------------------------------------------------------
# Small data and a reference generator
# --------------------------------------------------------------------------------------------


def toy_images(n: int, channels: int = 1, size: int = 16, seed: int = 0) -> torch.Tensor:
    """``n x channels x size x size`` float32 images in [0, 1]: a few soft blobs each, seeded."""
    g = torch.Generator().manual_seed(seed)
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    centers = torch.rand(n, channels, 3, 2, generator=g)
    widths = 0.05 + 0.15 * torch.rand(n, channels, 3, 1, 1, generator=g)
    d2 = (yy - centers[..., 0, None, None]) ** 2 + (xx - centers[..., 1, None, None]) ** 2
    blobs = torch.exp(-d2 / (2 * widths**2)).sum(2)  # n x C x H x W
    noise = 0.05 * torch.rand(n, channels, size, size, generator=g)
    x = blobs + noise
    x = x / x.flatten(2).amax(-1).clamp(min=1e-6)[..., None, None]
    return x.clamp(0.0, 1.0).contiguous()


class PCAGenerator(Generator):
    """Linear generator (PCA): fast and deterministic, the default partner of ``check_policy``."""

    @dataclass
    class Config:
        latent_dim: int = 8
        """Number of principal components kept."""

    def __init__(self, config: Config | None = None):
        super().__init__(config)
        if self.config.latent_dim < 1:
            raise ValueError(f"pca: latent_dim must be >= 1, got {self.config.latent_dim}")
        self.mean: torch.Tensor | None = None
        self.components: torch.Tensor | None = None
        self.shape: tuple[int, ...] = ()

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def fit(self, train: torch.Tensor, ctx: FitContext) -> None:
        x = train.detach().cpu().flatten(1).double()
        self.shape = tuple(train.shape[1:])
        self.mean = x.mean(0)
        _, _, vh = torch.linalg.svd(x - self.mean, full_matrices=False)
        comps = torch.zeros(self.latent_dim, x.shape[1], dtype=torch.float64)
        k = min(self.latent_dim, vh.shape[0])
        comps[:k] = vh[:k]
        self.components = comps
        ctx.progress(1, 1)

    def _fitted(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.mean is None or self.components is None:
            raise RuntimeError("pca: call fit() before encode()/decode()")
        return self.mean, self.components

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        mean, comps = self._fitted()
        if tuple(images.shape[1:]) != self.shape:
            raise ValueError(f"pca: fitted on images of shape {self.shape}, got {tuple(images.shape[1:])}")
        return ((images.detach().cpu().flatten(1).double() - mean) @ comps.T).float()

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        mean, comps = self._fitted()
        if latents.ndim != 2 or latents.shape[1] != self.latent_dim:
            raise ValueError(f"pca: expected N x {self.latent_dim} latents, got {tuple(latents.shape)}")
        x = mean + latents.detach().cpu().double() @ comps
        return x.clamp(0.0, 1.0).float().view(-1, *self.shape)


# --------------------------------------------------------------------------------------------
# The subject of a check: class, config, a label for messages
# --------------------------------------------------------------------------------------------


@dataclass
class _Subject:
    group: str
    cls: type
    config: Any
    label: str

    def fail(self, prop: str, detail: str = "") -> NoReturn:
        raise AssertionError(f"{self.label}: {prop}" + (f" -- {detail}" if detail else ""))

    def require(self, cond: Any, prop: str, detail: str = "") -> None:
        if not cond:
            self.fail(prop, detail)

    def new(self) -> Any:
        return self.call(f"{self.cls.__name__}(config)", self.cls, copy.deepcopy(self.config))

    def call(self, step: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one step of the plugin; an exception becomes an AssertionError naming the step."""
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # an assert inside the plugin included: name the plugin and the step
            self.fail(f"{step} raised {type(exc).__name__}", _first_line(exc))

    def expect_error(self, what: str, fn: Any, *args: Any, allow_success: bool = False) -> Any:
        """``what`` must raise a clear error (one of CLEAR_ERRORS, with a message).

        Returns the result when ``allow_success`` and the call returned normally, else None.
        """
        try:
            result = fn(*args)
        except CLEAR_ERRORS as exc:
            msg = _first_line(exc)
            self.require(msg and "NoneType" not in msg, f"{what} must raise a clear error",
                         f"got {type(exc).__name__}({msg!r}); say what is wrong and what is expected")
            return None
        except Exception as exc:
            self.fail(f"{what} must raise a clear error",
                      f"got {type(exc).__name__}: {_first_line(exc)}; raise ValueError or RuntimeError naming "
                      "the plugin and what it expected")
        if not allow_success:
            self.fail(f"{what} must raise a clear error", "it returned normally")
        return result


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _resolve(group: str, plugin: Any, config: Any) -> _Subject:
    kind = registry.KIND_OF[group]
    name = None
    if isinstance(plugin, str):
        name = plugin
        cls = registry.load(group, plugin)
    elif isinstance(plugin, type):
        cls = plugin
    elif isinstance(plugin, Plugin) or hasattr(plugin, "config"):
        if config is not None:
            raise TypeError(f"check_{kind}: pass either a plugin instance or a config, not both")
        cls, config = type(plugin), plugin.config
    else:
        raise TypeError(f"check_{kind}: expected a plugin class, instance or registered name, got {plugin!r}")
    where = f"{cls.__module__}.{cls.__qualname__}"
    label = f"{kind} {name!r} ({where})" if name else f"{kind} {where}"
    subject = _Subject(group, cls, None, label)
    if (group, cls) not in _checked_classes:
        _check_class(subject)
        _checked_classes.add((group, cls))
    if config is None:
        config = cls.Config()
    elif isinstance(config, dict):
        from .options import build_config

        config = build_config(cls.Config, config, where=label)
    elif not isinstance(config, cls.Config):
        raise TypeError(f"check_{kind}: config for {label} must be a {cls.__qualname__}.Config or a dict, "
                        f"got {type(config).__name__}")
    subject.config = config
    return subject


def _check_class(s: _Subject) -> None:
    base = GROUPS[s.group]
    cls = s.cls
    s.require(issubclass(cls, base), f"must derive from benchbox.interfaces.{base.__name__}")
    abstract = sorted(getattr(cls, "__abstractmethods__", ()))
    s.require(not abstract, "does not implement the interface", f"missing: {', '.join(abstract)}")
    cfg = getattr(cls, "Config", None)
    s.require(dataclasses.is_dataclass(cfg) and isinstance(cfg, type), "needs a nested Config dataclass",
              "declare `@dataclass class Config:` with one field per option")
    for f in dataclasses.fields(cfg):
        s.require(f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING,
                  f"Config field {f.name!r} has no default",
                  f"every option needs one (it becomes --{registry.KIND_OF[s.group]}.{f.name.replace('_', '-')})")
    desc = getattr(cls, "description", "") or (cls.__doc__ or "").strip()
    s.require(desc, "has no description", "give the class a docstring; its first line is what `benchbox list` shows")
    _check_cli_roundtrip(s, cfg)


def _check_cli_roundtrip(s: _Subject, cfg: type) -> None:
    """The Config must become CLI options: tyro parses no arguments into the defaults."""
    import tyro

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            parsed = tyro.cli(cfg, args=[], prog=f"benchbox run --{registry.KIND_OF[s.group]}")
    except SystemExit:
        s.fail("Config cannot be turned into CLI options", " ".join(err.getvalue().split())[:300])
    except Exception as exc:
        s.fail("Config cannot be turned into CLI options", f"tyro raised {type(exc).__name__}: {_first_line(exc)}")
    s.require(dataclasses.asdict(parsed) == dataclasses.asdict(cfg()),
              "Config defaults do not survive the CLI",
              f"tyro parsed no arguments into {parsed}, expected {cfg()}")


def _data_subject(s: _Subject) -> _Subject:
    """For complaints about the data a caller passed to a check (not the plugin's fault)."""
    return _Subject(s.group, s.cls, s.config, f"check_{registry.KIND_OF[s.group]}'s data for {s.label}")


def _devices(devices: Iterable[str | torch.device] | None) -> list[torch.device]:
    if devices is None:
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    return [torch.device(d) for d in devices]


def _ctx(device: torch.device, seed: int, val: LabeledImages | None = None) -> FitContext:
    return FitContext(device=device, seed=seed, stage="check", val=val)


def _check_tensor(s: _Subject, what: str, t: Any, *, dtype: torch.dtype, shape: tuple | None = None,
                  device: torch.device | None = torch.device("cpu"), unit: bool = False) -> None:
    s.require(isinstance(t, torch.Tensor), f"{what} must be a torch.Tensor", f"got {type(t).__name__}")
    s.require(t.dtype == dtype, f"{what} must be {dtype}", f"got {t.dtype}")
    if shape is not None:
        s.require(tuple(t.shape) == tuple(shape), f"{what} has the wrong shape",
                  f"expected {tuple(shape)}, got {tuple(t.shape)}")
    if device is not None:
        s.require(t.device == device, f"{what} must be on {device}", f"got {t.device}")
    if t.numel() and t.is_floating_point():
        s.require(bool(torch.isfinite(t).all()), f"{what} has NaN or infinite values")
        if unit:
            lo, hi = float(t.min()), float(t.max())
            s.require(lo >= 0.0 and hi <= 1.0, f"{what} must lie in [0, 1]", f"got values in [{lo:.4g}, {hi:.4g}]")


def _check_images(s: _Subject, what: str, x: Any, shape: tuple | None = None) -> None:
    _check_tensor(s, what, x, dtype=torch.float32, unit=True)
    s.require(x.ndim == 4 and x.shape[1] in (1, 3), f"{what} must be N x C x H x W with C in (1, 3)",
              f"got shape {tuple(x.shape)}")
    if shape is not None:
        s.require(tuple(x.shape[1:]) == tuple(shape), f"{what} must have image shape {tuple(shape)}",
                  f"got {tuple(x.shape[1:])}")


def _other_channels(x: torch.Tensor) -> torch.Tensor:
    """The same images with a channel count no plugin accepts (2)."""
    return x[:, :1].repeat(1, 2, 1, 1)


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> str:
    if a.shape != b.shape:
        return f"shapes {tuple(a.shape)} and {tuple(b.shape)}"
    return f"max abs difference {float((a.double() - b.double()).abs().max()):.3g}"


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)


SEED_HINT = "derive all randomness from ctx.seed (torch.manual_seed(ctx.seed) or ctx.generator())"


# --------------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------------


def check_dataset(dataset: Any, config: Any = None, *, seed: int = 0) -> Splits:
    """Check a dataset plugin; returns the splits of ``load(seed)``.

    ``train`` non-empty normal images, ``val`` and ``test`` labelled 0/1 (test holds both), all
    float32 ``N x C x H x W`` in [0, 1] of one image shape on the CPU; masks ``N x 1 x H x W`` in
    {0, 1} where present; the same seed gives the same splits (from a fresh instance); no
    training image reappears in val or among the test normals.
    """
    s = _resolve("datasets", dataset, config)
    a = s.call(f"load({seed})", s.new().load, seed)
    s.require(isinstance(a, Splits), "load() must return benchbox.interfaces.Splits", f"got {type(a).__name__}")
    _check_images(s, "train", a.train)
    s.require(len(a.train) > 0, "train is empty")
    shape = tuple(a.train.shape[1:])
    for part in ("val", "test"):
        li = getattr(a, part)
        s.require(isinstance(li, LabeledImages), f"{part} must be LabeledImages", f"got {type(li).__name__}")
        _check_images(s, f"{part}.images", li.images, shape)
        _check_tensor(s, f"{part}.labels", li.labels, dtype=torch.int64, shape=(len(li.images),))
        s.require(set(li.labels.unique().tolist()) <= {0, 1}, f"{part}.labels must be 0 (normal) or 1 (anomalous)",
                  f"got {sorted(set(li.labels.unique().tolist()))}")
        if li.masks is not None:
            _check_tensor(s, f"{part}.masks", li.masks, dtype=torch.float32, shape=(len(li), 1, *shape[-2:]))
            s.require(set(li.masks.unique().tolist()) <= {0.0, 1.0}, f"{part}.masks must hold only 0 and 1")
    s.require(set(a.test.labels.tolist()) == {0, 1}, "test must hold normal and anomalous images",
              f"labels present: {sorted(set(a.test.labels.tolist()))}")

    b = s.call(f"load({seed}) on a second instance", s.new().load, seed)
    for what, x, y in (("train", a.train, b.train), ("val.images", a.val.images, b.val.images),
                       ("test.images", a.test.images, b.test.images), ("test.labels", a.test.labels, b.test.labels),
                       ("val.labels", a.val.labels, b.val.labels), ("test.masks", a.test.masks, b.test.masks)):
        s.require(_same(x, y), f"load({seed}) is not deterministic", f"{what} differs between two loads")

    # no training image reappears in val or among the test normals (rows compared exactly, every 3rd pixel)
    train_rows = {tuple(r.tolist()) for r in a.train.flatten(1)[:, ::3]}
    for part, other in (("test", a.test.images[a.test.labels == 0]), ("val", a.val.images)):
        n = sum(tuple(r.tolist()) in train_rows for r in other.flatten(1)[:, ::3])
        s.require(n == 0, f"train overlaps {part}", f"{n} {part} image(s) also in train")
    return a


# --------------------------------------------------------------------------------------------
# Generators
# --------------------------------------------------------------------------------------------


def check_generator(generator: Any, config: Any = None, *, images: torch.Tensor | None = None, seed: int = 0,
                    devices: Iterable[str | torch.device] | None = None, determinism: bool = True) -> Generator:
    """Check a generator plugin on ``images`` (default: 24 toy 1 x 16 x 16 images); returns it fitted.

    ``encode`` gives float32 ``N x latent_dim`` CPU latents, ``decode`` images of the training
    shape in [0, 1]; both deterministic, any N (also 0), inputs untouched; encode/decode before
    ``fit``, a wrong channel count and a wrong latent size raise clear errors; with
    ``determinism`` two fits with the same seed give the same latents; every device in
    ``devices`` fits and returns CPU tensors.
    """
    s = _resolve("generators", generator, config)
    x = toy_images(24, 1, 16, seed=0) if images is None else images
    _check_images(_data_subject(s), "images", x)
    n, shape = len(x), tuple(x.shape[1:])
    cpu = torch.device("cpu")

    gen = s.new()
    s.expect_error("encode() before fit()", gen.encode, x[:4])
    before = x.clone()
    s.call("fit(images, ctx)", gen.fit, x, _ctx(cpu, seed))
    s.require(torch.equal(x, before), "fit() must not modify its input images")
    d = gen.latent_dim
    s.require(isinstance(d, int) and d >= 1, "latent_dim must be a positive int", f"got {d!r}")

    z = s.call("encode(images)", gen.encode, x)
    _check_tensor(s, "encode(images)", z, dtype=torch.float32, shape=(n, d))
    s.require(torch.equal(x, before), "encode() must not modify its input images")
    z_before = z.clone()
    y = s.call("decode(latents)", gen.decode, z)
    _check_tensor(s, "decode(latents)", y, dtype=torch.float32, shape=(n, *shape), unit=True)
    s.require(torch.equal(z, z_before), "decode() must not modify its input latents")
    z2 = s.call("encode(images) again", gen.encode, x)
    s.require(torch.equal(z2, z), "encode() must be deterministic", _max_diff(z, z2))
    y2 = s.call("decode(latents) again", gen.decode, z)
    s.require(torch.equal(y2, y), "decode() must be deterministic", _max_diff(y, y2))
    empty = s.call("decode() of 0 latents", gen.decode, z[:0])
    _check_tensor(s, "decode() of 0 latents", empty, dtype=torch.float32, shape=(0, *shape))

    s.expect_error(f"encode() of {2}-channel images after fitting on {shape[0]} channel(s)",
                   gen.encode, _other_channels(x[:4]))
    s.expect_error(f"decode() of N x {d + 1} latents (latent_dim is {d})", gen.decode, torch.zeros(4, d + 1))

    if determinism:
        other = s.new()
        s.call("fit(images, ctx) of a second instance", other.fit, x, _ctx(cpu, seed))
        z3 = s.call("encode(images) of a second instance", other.encode, x)
        s.require(isinstance(z3, torch.Tensor) and torch.equal(z3, z),
                  f"two fits with seed={seed} give different latents", f"{_max_diff(z, z3)}; {SEED_HINT}")

    for dev in _devices(devices):
        if dev.type == "cpu":
            continue
        g = s.new()
        s.call(f"fit(images, ctx) on {dev}", g.fit, x, _ctx(dev, seed))
        zd = s.call(f"encode(images) after fitting on {dev}", g.encode, x)
        _check_tensor(s, f"encode(images) after fitting on {dev}", zd, dtype=torch.float32, shape=(n, d))
        yd = s.call(f"decode(latents) after fitting on {dev}", g.decode, zd)
        _check_tensor(s, f"decode(latents) after fitting on {dev}", yd, dtype=torch.float32, shape=(n, *shape),
                      unit=True)
    return gen


# --------------------------------------------------------------------------------------------
# Policies
# --------------------------------------------------------------------------------------------


def check_policy(policy: Any, config: Any = None, *, generator: Generator | None = None,
                 latents: torch.Tensor | None = None, val: LabeledImages | None = None, seed: int = 0,
                 devices: Iterable[str | torch.device] | None = None, determinism: bool = True) -> LatentPolicy:
    """Check a latent policy against a fitted ``generator`` and its training ``latents``.

    Without a generator, a :class:`PCAGenerator` fitted on toy images is used. ``propose(z,
    seed)`` returns finite dz with the shape, dtype and device of ``z``, the same dz for the same
    seed, leaves ``z`` untouched, and all zeros for a policy with ``generates = False``;
    ``role`` is ``normal`` or ``anomaly``; ``propose`` before ``fit`` raises a clear error or
    already works; with ``determinism`` two fits with the same seed propose the same dz; for every
    extra device in ``devices`` the policy fits with ``ctx.device`` there and keeps z's device.
    """
    s = _resolve("policies", policy, config)
    cpu = torch.device("cpu")
    if generator is None:
        if latents is not None:
            raise TypeError("check_policy: latents= needs the generator= they came from")
        images = toy_images(64, 1, 16, seed=0)
        generator = PCAGenerator()
        generator.fit(images, _ctx(cpu, 0))
        latents = generator.encode(images)
    elif latents is None:
        raise TypeError("check_policy: pass latents= (generator.encode of its training images) with generator=")
    s.require(latents.ndim == 2 and latents.shape[1] == generator.latent_dim and len(latents) >= 2,
              "check_policy needs N x latent_dim latents (N >= 2)", f"got {tuple(latents.shape)}")
    z = latents[: min(16, len(latents))].clone()
    z_before = z.clone()

    pol = s.new()
    early = s.expect_error("propose() before fit()", pol.propose, z, 1, allow_success=True)
    if early is not None:  # a policy that needs no fitting must still honour the contract
        _check_tensor(s, "propose() before fit()", early, dtype=z.dtype, shape=tuple(z.shape))
    lat_before = latents.clone()
    s.call("fit(generator, latents, ctx)", pol.fit, generator, latents, _ctx(cpu, seed, val))
    s.require(torch.equal(latents, lat_before), "fit() must not modify the latents")
    s.require(getattr(pol, "role", None) in ("normal", "anomaly"), "role must be 'normal' or 'anomaly'",
              f"got {getattr(pol, 'role', None)!r}")
    s.require(isinstance(type(pol).generates, bool), "generates must be a bool", f"got {type(pol).generates!r}")

    dz = s.call("propose(z, seed=1)", pol.propose, z, 1)
    _check_tensor(s, "propose(z, seed=1)", dz, dtype=z.dtype, shape=tuple(z.shape), device=z.device)
    s.require(torch.equal(z, z_before), "propose() must not modify z")
    again = s.call("propose(z, seed=1) again", pol.propose, z, 1)
    s.require(isinstance(again, torch.Tensor) and torch.equal(again, dz), "propose() with the same seed must give the "
              "same dz", _max_diff(dz, again) if isinstance(again, torch.Tensor) else "")
    if not type(pol).generates:
        s.require(int(torch.count_nonzero(dz)) == 0, "a policy with generates = False must propose dz = 0")

    if determinism:
        other = s.new()
        s.call("fit(generator, latents, ctx) of a second instance", other.fit, generator, latents, _ctx(cpu, seed, val))
        dz2 = s.call("propose(z, seed=1) of a second instance", other.propose, z, 1)
        s.require(isinstance(dz2, torch.Tensor) and torch.equal(dz2, dz),
                  f"two fits with seed={seed} propose different dz",
                  (_max_diff(dz, dz2) if isinstance(dz2, torch.Tensor) else "") + f"; {SEED_HINT}")

    for dev in _devices(devices):
        if dev.type == "cpu":
            continue
        p = s.new()
        s.call(f"fit(generator, latents, ctx) on {dev}", p.fit, generator, latents, _ctx(dev, seed, val))
        zd = z.to(dev)
        dzd = s.call(f"propose(z on {dev}, seed=1)", p.propose, zd, 1)
        _check_tensor(s, f"propose(z on {dev}, seed=1)", dzd, dtype=z.dtype, shape=tuple(z.shape), device=zd.device)
    return pol


# --------------------------------------------------------------------------------------------
# Detectors
# --------------------------------------------------------------------------------------------


def check_detector(detector: Any, config: Any = None, *, train: torch.Tensor | None = None,
                   test: torch.Tensor | None = None, val: LabeledImages | None = None, seed: int = 0,
                   devices: Iterable[str | torch.device] | None = None, determinism: bool = True) -> Any:
    """Check a detector: fit on ``train`` normals, score ``test`` (defaults: toy 1 x 16 x 16 images).

    ``score`` returns :class:`Scores` with N finite float32 image scores on the CPU and maps of
    ``N x H x W`` or None; scoring is deterministic, independent of the batch it is in and leaves
    its input (and fit's) untouched; ``score`` before ``fit`` and a wrong channel count raise
    clear errors; ``fit`` with pseudo-anomalies either works or raises ``ValueError``; with
    ``determinism`` two fits with the same seed give the same scores; every device in
    ``devices`` fits and returns CPU scores. Returns the fitted detector.
    """
    s = _resolve("detectors", detector, config)
    cpu = torch.device("cpu")
    train = toy_images(48, 1, 16, seed=0) if train is None else train
    if test is None:
        test = toy_images(32, train.shape[1], train.shape[-1], seed=1)
        test[16:] = 1.0 - test[16:]  # a few "anomalies": inverted images
    inputs = _data_subject(s)
    _check_images(inputs, "train", train)
    _check_images(inputs, "test", test, tuple(train.shape[1:]))
    n = len(test)

    det = s.new()
    s.expect_error("score() before fit()", det.score, test[:4])

    pseudo = s.new()
    try:
        pseudo.fit(train, _ctx(cpu, seed, val), pseudo_anomalies=test[-8:].clone())
    except (ValueError, BenchboxError) as exc:
        s.require(_first_line(exc), "fit() with pseudo-anomalies raised an error without a message")
    except Exception as exc:
        s.fail("fit() with pseudo-anomalies must work or raise ValueError",
               f"got {type(exc).__name__}: {_first_line(exc)}")
    else:
        sp = s.call("score() after fitting with pseudo-anomalies", pseudo.score, test)
        _check_scores(s, "score() after fitting with pseudo-anomalies", sp, test)
    del pseudo

    train_before, test_before = train.clone(), test.clone()
    s.call("fit(train, ctx)", det.fit, train, _ctx(cpu, seed, val))
    s.require(torch.equal(train, train_before), "fit() must not modify its input images")
    scores = s.call("score(test)", det.score, test)
    _check_scores(s, "score(test)", scores, test)
    s.require(torch.equal(test, test_before), "score() must not modify its input images")
    # the repeat checks score a few images only (some detectors score a handful of images per second)
    k = min(5, n)
    few = test[:k]
    part = s.call(f"score(test[:{k}])", det.score, few)
    _check_scores(s, f"score(test[:{k}])", part, few)
    s.require(torch.allclose(part.image, scores.image[:k], atol=1e-5), "scores must not depend on the batch",
              f"score(test[:{k}]) differs from the first {k} of score(test): {_max_diff(part.image, scores.image[:k])}")
    again = s.call(f"score(test[:{k}]) again", det.score, few)
    s.require(torch.equal(again.image, part.image), "score() must be deterministic", _max_diff(part.image, again.image))
    s.expect_error(f"score() of 2-channel images after fitting on {train.shape[1]} channel(s)",
                   det.score, _other_channels(test[:4]))

    if determinism:
        other = s.new()
        s.call("fit(train, ctx) of a second instance", other.fit, train, _ctx(cpu, seed, val))
        s2 = s.call(f"score(test[:{k}]) of a second instance", other.score, few)
        _check_scores(s, f"score(test[:{k}]) of a second instance", s2, few)
        s.require(torch.equal(s2.image, part.image), f"two fits with seed={seed} give different scores",
                  f"{_max_diff(part.image, s2.image)}; {SEED_HINT}")

    for dev in _devices(devices):
        if dev.type == "cpu":
            continue
        d = s.new()
        s.call(f"fit(train, ctx) on {dev}", d.fit, train, _ctx(dev, seed, val))
        sd = s.call(f"score(test) after fitting on {dev}", d.score, test)
        _check_scores(s, f"score(test) after fitting on {dev}", sd, test)
    return det


def _check_scores(s: _Subject, what: str, scores: Any, test: torch.Tensor) -> None:
    s.require(isinstance(scores, Scores), f"{what} must return benchbox.interfaces.Scores",
              f"got {type(scores).__name__}")
    _check_tensor(s, f"{what}.image", scores.image, dtype=torch.float32, shape=(len(test),))
    if scores.maps is not None:
        _check_tensor(s, f"{what}.maps", scores.maps, dtype=torch.float32, shape=(len(test), *test.shape[-2:]))
