"""One adapter from benchbox's detector interface to anomalib's Lightning modules.

``AnomalibDetector`` turns benchbox tensors (``N x C x H x W`` in [0, 1], CPU) into anomalib
``ImageBatch`` objects, trains the model's own ``AnomalibModule`` with a plain Lightning
``Trainer`` (no logger, no checkpoints, no progress bar, its root folder a temporary directory
that is removed afterwards -- nothing is written to the current directory), and scores with the
module's ``forward`` in eval mode (anomalib's pre-processor, then the torch model; the
post-processor's min/max normalisation is off so image scores are the raw, monotone anomaly
scores). Anomaly maps come back at the input resolution.

Grayscale images are repeated to three channels; every image is resized to
``--detector.image-size`` by anomalib's pre-processor (and ImageNet-normalised where the model
expects it). A model subclass only names its anomalib class, its keyword arguments and where its
pretrained backbone lives (see ``benchbox_plugins.detectors.anomalib_models``).

Pretrained weights: with ``pretrained`` on, the weights must be on disk (timm / Hugging Face
cache, or anomalib's cache for EfficientAd's teacher) or the hub must answer within a couple of
seconds; otherwise constructing the detector (the first thing a run does) fails at once with one line naming the weight and
``--detector.no-pretrained``. ``--detector.weights PATH`` loads a local state dict into the
backbone instead (read with ``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import random
import socket
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from benchbox.errors import ConfigError
from benchbox.interfaces import Detector, FitContext, Scores
from benchbox.options import at_least, between, state_dict_file

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_QUIET_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning", "anomalib", "timm")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence Lightning / anomalib / timm loggers and warnings for the duration."""
    saved = {name: logging.getLogger(name).level for name in _QUIET_LOGGERS}
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed python, numpy and torch (CPU) for the block, restoring the global states afterwards."""
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def to_rgb(images: torch.Tensor) -> torch.Tensor:
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected N x C x H x W images with C in {{1, 3}}, got {tuple(images.shape)}")
    images = images.float()
    return images.expand(-1, 3, -1, -1).contiguous() if images.shape[1] == 1 else images


def resize(images: torch.Tensor, image_size: int) -> torch.Tensor:
    """The same resize anomalib's pre-processor applies (torchvision v2, bilinear, antialiased)."""
    from torchvision.transforms.v2 import functional as TF

    if tuple(images.shape[-2:]) == (image_size, image_size):
        return images
    return TF.resize(images, [image_size, image_size], antialias=True)


def pre_processor(image_size: int, normalize: bool = True):
    """anomalib's PreProcessor: resize to a square ``image_size`` (+ ImageNet normalisation)."""
    from anomalib.pre_processing import PreProcessor
    from torchvision.transforms.v2 import Compose, Normalize, Resize

    steps: list[Any] = [Resize((image_size, image_size), antialias=True)]
    if normalize:
        steps.append(Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD))
    return PreProcessor(transform=Compose(steps))


def image_loader(images: torch.Tensor, batch_size: int, shuffle: bool = False, seed: int = 0,
                 normal_labels: bool = False):
    """A DataLoader of anomalib ``ImageBatch`` objects over RGB ``images`` (no workers).

    ``normal_labels`` adds ``gt_label = 0`` to every batch (validation images are normals; some
    models' validation hooks, e.g. EfficientAd's map quantiles, read the labels).
    """
    from anomalib.data import ImageBatch
    from torch.utils.data import DataLoader

    def collate(items: list[torch.Tensor]) -> Any:
        batch = torch.stack(items)
        if normal_labels:
            return ImageBatch(image=batch, gt_label=torch.zeros(len(batch), dtype=torch.bool))
        return ImageBatch(image=batch)

    gen = torch.Generator().manual_seed(seed)
    return DataLoader(list(images), batch_size=max(1, batch_size), shuffle=shuffle, collate_fn=collate,
                      generator=gen if shuffle else None, num_workers=0)


def accelerator(device: torch.device) -> tuple[str, Any]:
    if device.type == "cuda":
        return "gpu", [device.index or 0]
    if device.type == "mps":
        return "mps", 1
    return "cpu", 1


# ------------------------------------------------------------------------------ weights


def _hub_reachable(host: str = "huggingface.co", timeout: float = 2.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def timm_weights_cached(backbone: str) -> tuple[bool, str]:
    """(on disk?, name of the weight) for a timm backbone's default pretrained weights."""
    import timm

    try:
        cfg = timm.models.get_pretrained_cfg(backbone)
    except Exception:
        cfg = None
    if cfg is None:
        return False, backbone
    hub_id = getattr(cfg, "hf_hub_id", None)
    if hub_id:
        from huggingface_hub import try_to_load_from_cache

        for fname in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
            hit = try_to_load_from_cache(hub_id, fname)
            if isinstance(hit, str):
                return True, hub_id
    url = getattr(cfg, "url", None)
    if url:
        ckpt = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
        if ckpt.is_file():
            return True, url
    return False, hub_id or url or backbone


def load_backbone_weights(module: torch.nn.Module, path: str, where: str) -> None:
    """Load a local state dict (plain, or under 'state_dict'/'model') into ``module``, matching keys."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"{where}: --detector.weights {path} is not a file")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception:  # torch's own message suggests weights_only=False: unsafe, and no use to a CLI user
        raise ConfigError(f"{where}: --detector.weights {path} is not a PyTorch state-dict file (a dict of tensors "
                          "saved with torch.save(model.state_dict(), PATH))") from None
    if isinstance(state, dict):
        for key in ("state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
    own = module.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise ConfigError(f"{where}: --detector.weights {path} has no tensor matching the backbone's parameters")
    module.load_state_dict(matched, strict=False)


# ------------------------------------------------------------------------------ adapter


class AnomalibDetector(Detector):
    """Base adapter: an anomalib model trained on benchbox images (subclasses name the model)."""

    anomalib_name: ClassVar[str] = ""  # shown in messages, e.g. "anomalib-padim"
    memory_bank: ClassVar[bool] = False  # one pass over the data, no optimiser
    normalize: ClassVar[bool] = True  # ImageNet normalisation in the pre-processor
    has_backbone: ClassVar[bool] = True  # uses a timm backbone with pretrained weights
    needs_val: ClassVar[bool] = False  # runs a validation pass at the end of training
    fixed_batch_size: ClassVar[int] = 0  # the model insists on this train batch size
    min_image_size: ClassVar[int] = 16  # smaller --detector.image-size values are raised to this
    backbone_path: ClassVar[str] = ""  # attribute path of the pretrained backbone in the module ("" = none)

    @dataclass
    class Config:
        image_size: Annotated[int, between(16, 1024)] = 64
        """Images are resized to this square side (grayscale repeated to 3 channels)."""
        pretrained: bool = True
        """Use the backbone's ImageNet weights (needs them on disk or network access)."""
        weights: Annotated[str, state_dict_file] = ""
        """Local file with backbone weights (a state dict); implies no download."""
        batch_size: Annotated[int, at_least(1)] = 32
        """Training and scoring batch size."""
        max_steps: int = -1
        """Stop training after this many optimiser steps (-1: no limit)."""

    def __init__(self, config: Any | None = None):
        super().__init__(config)
        c = self.config
        if not 16 <= c.image_size <= 1024:
            raise ConfigError(f"{self._name}: --detector.image-size must be in [16, 1024], got {c.image_size}")
        if c.batch_size < 1:
            raise ConfigError(f"{self._name}: --detector.batch-size must be >= 1, got {c.batch_size}")
        if getattr(c, "epochs", 1) < 1:
            raise ConfigError(f"{self._name}: --detector.epochs must be >= 1, got {c.epochs}")
        self.module: Any = None
        self.device = torch.device("cpu")
        if c.weights and not Path(c.weights).expanduser().is_file():
            raise ConfigError(f"{self._name}: --detector.weights {c.weights} is not a file")
        if c.pretrained and not c.weights and self.has_backbone:
            self.weight_check()  # at construction, so a run fails before any other stage trains

    @property
    def _name(self) -> str:
        return self.anomalib_name or type(self).__name__

    # -- what a model subclass provides ------------------------------------------------
    def build(self, pretrained: bool) -> Any:
        """Construct the anomalib module (``pre_processor`` etc. added by the caller)."""
        raise NotImplementedError

    def backbone_module(self, module: Any) -> torch.nn.Module | None:
        """The submodule that ``--detector.weights`` loads into: ``backbone_path`` below the module."""
        return functools.reduce(getattr, self.backbone_path.split("."), module) if self.backbone_path else None

    def weight_check(self) -> None:
        """Fail at once, in one line, when pretrained weights are missing and unreachable."""
        backbone = getattr(self.config, "backbone", None)
        if not backbone:
            return
        cached, name = timm_weights_cached(backbone)
        if not cached and not _hub_reachable():
            raise ConfigError(
                f"{self._name}: pretrained weights {name} for backbone {backbone} are not on disk and the hub "
                "is unreachable; pass --detector.no-pretrained (pretrained=false) or --detector.weights PATH"
            )

    def components(self) -> dict[str, Any]:
        return {
            "pre_processor": pre_processor(max(self.config.image_size, self.min_image_size), self.normalize),
            "post_processor": False,
            "evaluator": False,
            "visualizer": False,
        }

    def make_module(self) -> Any:
        c = self.config
        use_hub = c.pretrained and not c.weights and self.has_backbone
        if use_hub:
            self.weight_check()
        module = self.build(pretrained=use_hub)
        if c.weights:
            target = self.backbone_module(module)
            if target is None:
                raise ConfigError(f"{self._name}: --detector.weights is not supported (no pretrained backbone)")
            load_backbone_weights(target, c.weights, self._name)
        return module

    # -- training ------------------------------------------------------------------------
    def fit(self, images: torch.Tensor, ctx: FitContext, pseudo_anomalies: torch.Tensor | None = None) -> None:
        if pseudo_anomalies is not None:
            raise ValueError(f"{self._name}: anomalib models train on normal images only; "
                             "pseudo-anomalies are not supported (use a policy with role normal)")
        if len(images) == 0:
            raise ValueError(f"{self._name}: no training images")
        import lightning

        # resized here already (anomalib's pre-processor then sees the target size): some model
        # hooks read the raw dataloader (EfficientAd's teacher statistics)
        size = max(self.config.image_size, self.min_image_size)
        x = resize(self.select_training(to_rgb(images), ctx), size)
        val = None
        if self.needs_val:
            val = to_rgb(ctx.val.images[ctx.val.labels == 0]) if ctx.val is not None and len(ctx.val) else x
            val = resize(val, size) if len(val) else x
        self.device = ctx.device
        acc, devices = accelerator(ctx.device)
        c = self.config
        epochs = 1 if self.memory_bank else int(getattr(c, "epochs", 1))
        train_bs = self.fixed_batch_size or c.batch_size

        class _Progress(lightning.Callback):
            done = 0

            def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
                self.done += 1
                total = trainer.num_training_batches * epochs
                if c.max_steps > 0:
                    total = min(total, c.max_steps)
                ctx.progress(self.done, float(total) if total != float("inf") else None)

        class _Data(lightning.LightningDataModule):
            train_batch_size = train_bs

            def train_dataloader(self):
                return image_loader(x, train_bs, shuffle=True, seed=ctx.seed)

            def val_dataloader(self):
                return image_loader(val if val is not None else x[:1], c.batch_size, normal_labels=True)

        with quiet(), seeded(ctx.seed), tempfile.TemporaryDirectory(prefix="benchbox-anomalib-") as tmp:
            module = self.make_module()
            trainer = lightning.Trainer(
                accelerator=acc, devices=devices, max_epochs=epochs, max_steps=c.max_steps,
                logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                default_root_dir=tmp, num_sanity_val_steps=0, limit_val_batches=1.0 if self.needs_val else 0,
                callbacks=[_Progress()], gradient_clip_val=module.trainer_arguments.get("gradient_clip_val"),
            )
            trainer.fit(module, datamodule=_Data())
            module.trainer = None
        self.module = module.eval()
        ctx.progress(1.0, 1.0)

    def select_training(self, x: torch.Tensor, ctx: FitContext) -> torch.Tensor:
        """Hook: a model may cap the images it trains on (e.g. Patchcore's memory bank)."""
        return x

    # -- scoring -------------------------------------------------------------------------
    @torch.no_grad()
    def score(self, images: torch.Tensor) -> Scores:
        if self.module is None:
            raise RuntimeError(f"{self._name}: score() called before fit()")
        h, w = images.shape[-2:]
        x = to_rgb(images)
        scores, maps = [], []
        module = self.module.to(self.device).eval()
        bs = max(1, self.config.batch_size)
        with quiet():
            for start in range(0, len(x), bs):
                out = module(x[start : start + bs].to(self.device))
                scores.append(out.pred_score.reshape(-1).float().cpu())
                if out.anomaly_map is not None:
                    amap = out.anomaly_map.float()
                    amap = amap.reshape(amap.shape[0], 1, *amap.shape[-2:])
                    if tuple(amap.shape[-2:]) != (h, w):
                        amap = F.interpolate(amap, size=(h, w), mode="bilinear", align_corners=False)
                    maps.append(amap[:, 0].cpu())
        image = torch.cat(scores) if scores else torch.zeros(0)
        return Scores(image=image.float(), maps=torch.cat(maps) if maps and len(maps) == len(scores) else None)
