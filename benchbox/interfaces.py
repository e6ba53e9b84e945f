"""The four plugin interfaces and the data that flows between them, in one place.

Data flows one way::

    Dataset.load -> Splits -> Generator.fit/encode -> LatentPolicy.fit/propose
        -> decode(z + dz) = augmented images -> Detector.fit(train + augmented) -> Detector.score(test)

Conventions shared by every interface
-------------------------------------
* Images are ``torch.float32`` tensors of shape ``N x C x H x W`` with values in ``[0, 1]``,
  ``C`` in ``{1, 3}``. Datasets return them on the CPU; plugins move what they need to
  ``ctx.device`` themselves and return results on the CPU.
* Labels are ``torch.int64`` of shape ``N``: ``0`` normal, ``1`` anomalous.
* Masks, where a dataset has them, are ``torch.float32`` ``N x 1 x H x W`` in ``{0, 1}``.
* Latents are ``torch.float32`` of shape ``N x d`` (``d = Generator.latent_dim``), on the CPU
  at the interface.
* Every plugin class has a ``Config`` dataclass (all fields with defaults; these become CLI
  options such as ``--detector.epochs``) and is constructed as ``Plugin(config)``.
  ``description`` is a one-line summary shown by ``benchbox list``.
* ``fit`` methods receive a :class:`FitContext` with the device, the seed, the validation images
  (for anything that tunes -- never the test split), a progress callback and a curve logger.
"""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import torch

from . import registry

# --------------------------------------------------------------------------------------------
# Data containers
# --------------------------------------------------------------------------------------------


@dataclass
class LabeledImages:
    """Images with per-image labels (0 normal / 1 anomalous) and optional pixel masks."""

    images: torch.Tensor  # N x C x H x W, float32 in [0, 1], CPU
    labels: torch.Tensor  # N, int64 in {0, 1}
    masks: torch.Tensor | None = None  # N x 1 x H x W, float32 in {0, 1}, or None

    def __len__(self) -> int:
        return int(self.images.shape[0])


@dataclass
class Splits:
    """What a dataset returns for one category and seed.

    ``train`` holds normal images only. ``val`` is carved from the training normals (and may hold
    anomalies where the dataset ships a validation split with them); it is for selection and
    tuning only. ``test`` is touched once, for the reported metrics.
    """

    train: torch.Tensor  # N x C x H x W normal images
    val: LabeledImages
    test: LabeledImages
    name: str = ""
    category: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.shape[1:])  # type: ignore[return-value]


@dataclass
class Scores:
    """Detector output: one score per image (higher = more anomalous) and optional maps."""

    image: torch.Tensor  # N, float32
    maps: torch.Tensor | None = None  # N x H x W float32 (image resolution), or None


class Curves:
    """Training curves: named series of (step, value) pairs, plotted into the run folder."""

    def __init__(self) -> None:
        self.series: dict[str, list[tuple[float, float]]] = {}

    def log(self, name: str, step: float, value: float) -> None:
        self.series.setdefault(name, []).append((float(step), float(value)))

    def last(self, name: str) -> float | None:
        values = self.series.get(name)
        return values[-1][1] if values else None

    def to_dict(self) -> dict[str, list[list[float]]]:
        return {k: [list(p) for p in v] for k, v in self.series.items()}


def _no_progress(completed: float, total: float | None = None) -> None:
    return None


def _not_counted(n: float, unit: str = "images") -> None:
    return None


def _not_noted(message: str) -> None:
    return None


@dataclass
class FitContext:
    """Everything a ``fit`` call may use besides its training data.

    ``progress(completed, total)`` advances the stage's progress bar; ``processed(n, unit)``
    counts work done (``n`` more ``"images"`` through a training step, or ``"steps"``) for the
    images/s or steps/s of the progress lines (optional; ``train_epochs`` calls it); ``note(message)`` prints one
    line about the stage (``train_epochs`` notes its time estimate when it will run for minutes); ``curves`` records the
    training curves of this stage; ``val`` holds validation images (normal unless labelled
    otherwise) for early stopping or tuning. ``stage`` names the stage in error messages.
    """

    device: torch.device
    seed: int
    stage: str = ""
    val: LabeledImages | None = None
    progress: Callable[[float, float | None], None] = _no_progress
    curves: Curves = field(default_factory=Curves)
    processed: Callable[[float, str], None] = _not_counted
    note: Callable[[str], None] = _not_noted

    def generator(self, offset: int = 0) -> torch.Generator:
        """A CPU random generator seeded from the run seed (``offset`` separates streams)."""
        return torch.Generator().manual_seed(self.seed * 1_000_003 + offset)


# --------------------------------------------------------------------------------------------
# Plugin interfaces
# --------------------------------------------------------------------------------------------


class Plugin(abc.ABC):
    """Base of all plugins: a ``Config`` dataclass, a one-line ``description``."""

    @dataclass
    class Config:
        pass

    description: ClassVar[str] = ""

    def __init__(self, config: Any | None = None) -> None:
        cfg_cls = type(self).Config
        if config is None:
            config = cfg_cls()
        if not isinstance(config, cfg_cls):
            raise TypeError(f"{type(self).__name__} expects a {cfg_cls.__qualname__}, got {type(config).__name__}")
        self.config = config

    def config_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)


class Dataset(Plugin):
    """A source of images under the one-class protocol.

    ``load(seed)`` returns :class:`Splits`: ``train`` normal images only, ``val`` for tuning,
    ``test`` with labels 0/1 (both present) and masks where the dataset has them. The same seed
    gives the same splits; the test split never overlaps train or val.
    """

    @abc.abstractmethod
    def load(self, seed: int) -> Splits: ...


class Generator(Plugin):
    """A generative model with a latent vector: ``decode(encode(x)) ~ x``.

    ``fit(train, ctx)`` trains on normal images. ``encode`` maps ``N x C x H x W`` images in
    [0, 1] to ``N x latent_dim`` float32 latents; ``decode`` maps latents back to images in
    [0, 1] of the training shape. Both accept CPU tensors, run on the fitted device and return
    CPU tensors, batching internally so any N works.
    """

    @property
    @abc.abstractmethod
    def latent_dim(self) -> int: ...

    @abc.abstractmethod
    def fit(self, train: torch.Tensor, ctx: FitContext) -> None: ...

    @abc.abstractmethod
    def encode(self, images: torch.Tensor) -> torch.Tensor: ...

    @abc.abstractmethod
    def decode(self, latents: torch.Tensor) -> torch.Tensor: ...


class LatentPolicy(Plugin):
    """Proposes latent perturbations dz so that decode(z + dz) is useful new training data.

    ``fit(generator, latents, ctx)`` sees a fitted generator and the ``N x d`` training latents.
    ``propose(z)`` returns dz with the shape, dtype and device of ``z``; it must be deterministic
    given the ``seed`` passed in (same seed, same dz). ``generates`` is ``False`` for the
    no-augmentation control, which adds no images at all.
    """

    generates: ClassVar[bool] = True
    role: str = "normal"  # "normal": extra normal data; "anomaly": pseudo-anomalies

    @classmethod
    def output_role(cls, config: Any) -> str | None:
        """What the policy adds to the detector's data under ``config``: ``None`` (nothing),
        ``"normal"`` or ``"anomaly"`` -- a Config field ``role`` if it has one, else the class's
        ``role``. The grid reads it to skip pairs a detector cannot run (:attr:`Detector.pseudo_anomalies`)."""
        return getattr(config, "role", cls.role) if cls.generates else None

    @abc.abstractmethod
    def fit(self, generator: Generator, latents: torch.Tensor, ctx: FitContext) -> None: ...

    @abc.abstractmethod
    def propose(self, z: torch.Tensor, seed: int) -> torch.Tensor: ...


class Detector(Plugin):
    """An anomaly detector trained on normal images (plus augmented ones).

    ``fit(images, ctx, pseudo_anomalies=None)`` trains on ``N x C x H x W`` images in [0, 1]
    assumed normal; ``pseudo_anomalies`` (same layout) are generated hard negatives from a policy
    with ``role == "anomaly"``; a detector that cannot use them raises ``ValueError``.
    ``score(images)`` returns :class:`Scores`: ``image`` is a float32 tensor of N scores, higher
    meaning more anomalous; ``maps`` is ``N x H x W`` per-pixel scores at the input resolution,
    or None. Scoring is deterministic and does not change the model.
    """

    pseudo_anomalies: ClassVar[Any] = "refuses"
    """Whether ``fit`` takes pseudo-anomalies: ``"refuses"``, ``"accepts"`` or ``"needs"`` -- or a
    function of the Config returning one (e.g. a ``mode`` option). The grid lists the combinations
    this rules out as skipped, with the reason, instead of running them into a failure."""

    @classmethod
    def pseudo_anomaly_use(cls, config: Any) -> str:
        use = cls.pseudo_anomalies
        return use(config) if callable(use) else use

    @abc.abstractmethod
    def fit(
        self, images: torch.Tensor, ctx: FitContext, pseudo_anomalies: torch.Tensor | None = None
    ) -> None: ...

    @abc.abstractmethod
    def score(self, images: torch.Tensor) -> Scores: ...


GROUPS: dict[str, type[Plugin]] = dict(zip(registry.GROUPS, (Dataset, Generator, LatentPolicy, Detector)))
"""Entry-point group -> the interface its plugins derive from (groups in :data:`benchbox.registry.GROUPS` order)."""
