"""The fixed feature extractor that generation metrics (FID, PRDC) are computed on.

Inception features describe natural photographs, not 28 px digits or a single texture; FID on
them says little in-domain. benchbox therefore trains its own small extractor per dataset:

* **what** -- the convolutional encoder (:mod:`benchbox.featurenet`, 16 base channels) of an
  autoencoder with a ``FEATURE_DIM``-dimensional bottleneck, trained with MSE for a fixed budget
  from a fixed seed; the bottleneck is the feature vector (FID on a domain autoencoder's codes).
  Images larger than ``MAX_SIZE`` px are downsampled first, so it stays cheap at any size.
* **on what** -- the real normal training images of the cell (the images the generated ones are
  compared with). Generator, policy and detector play no part, so every cell on the same data
  (dataset, category, split seed, dataset options) uses bit-identical features, which is the
  comparison a leaderboard makes (a policy against its ``none``/``random`` controls).
* **cached** -- by the SHA-256 of its inputs (the image bytes, their shape, the architecture and
  training recipe, ``VERSION``) under ``<cache>/features/``; ``<cache>`` is the ``cache_dir``
  argument, else ``$BENCHBOX_CACHE``, else ``~/.cache/benchbox``. Written atomically (temporary
  file + rename) and loaded with ``torch.load(weights_only=True)``.

``kind="inception"`` uses torchvision's Inception-v3 pool features instead, only when
torchvision is installed and its weights file is already on disk; nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError
from .featurenet import FeatureNet
from .interfaces import FitContext
from .training import batched, train_epochs

VERSION = 1
FEATURE_DIM = 64
MAX_SIZE = 64
RECIPE = {"version": VERSION, "dim": FEATURE_DIM, "base": 16, "epochs": 20, "batch_size": 64, "lr": 2e-3,
          "max_images": 2000, "max_size": MAX_SIZE, "seed": 0}

Extractor = Callable[[torch.Tensor], torch.Tensor]


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache folder: the argument, else ``$BENCHBOX_CACHE``, else ``~/.cache/benchbox``."""
    root = cache_dir or os.environ.get("BENCHBOX_CACHE") or Path.home() / ".cache" / "benchbox"
    return Path(root).expanduser()


def _prepare(images: torch.Tensor) -> torch.Tensor:
    x = images.float()
    if x.shape[-1] > MAX_SIZE:
        x = F.interpolate(x, size=(MAX_SIZE, MAX_SIZE), mode="bilinear", align_corners=False, antialias=True)
    return x


def _inputs_hash(images: torch.Tensor) -> str:
    h = hashlib.sha256()
    h.update(repr((tuple(images.shape), str(images.dtype), sorted(RECIPE.items()))).encode())
    h.update(images.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _build(channels: int, size: int) -> nn.Module:
    return FeatureNet(channels, size, FEATURE_DIM, RECIPE["base"])


def _atomic_save(obj: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def indomain_extractor(reference: torch.Tensor, cache_dir: str | os.PathLike | None = None,
                       device: torch.device | str = "cpu") -> Extractor:
    """The in-domain extractor for ``reference`` images: loaded from the cache or trained once."""
    if reference.ndim != 4 or len(reference) < 2:
        raise ConfigError(f"features: need at least 2 reference images N x C x H x W, got shape {tuple(reference.shape)}")
    device = torch.device(device)
    x = _prepare(reference)
    if len(x) > RECIPE["max_images"]:
        x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[: RECIPE["max_images"]]]
    channels, size = int(x.shape[1]), int(x.shape[-1])
    path = cache_root(cache_dir) / "features" / f"indomain-{_inputs_hash(x)[:32]}.pt"
    net = _build(channels, size)
    state = None
    if path.is_file():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            net.load_state_dict(state)
        except Exception:  # corrupt or stale file: retrain and overwrite
            state = None
    if state is None:
        with torch.random.fork_rng(devices=[]):  # leave the caller's random state alone
            torch.manual_seed(RECIPE["seed"])
            net = _build(channels, size)
            ctx = FitContext(device=device, seed=RECIPE["seed"], stage="feature extractor")
            train_epochs(net, x, lambda b: F.mse_loss(net(b), b), ctx, epochs=RECIPE["epochs"],
                         batch_size=RECIPE["batch_size"], lr=RECIPE["lr"], name="mse")
        _atomic_save({k: v.detach().cpu() for k, v in net.state_dict().items()}, path)
    encoder = net.encoder.to(device).eval()
    return lambda images: batched(encoder, _prepare(images), device)


def _inception_weights() -> Path | None:
    hub = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub" / "checkpoints"
    found = sorted(hub.glob("inception_v3_google-*.pth")) if hub.is_dir() else []
    return found[0] if found else None


def inception_extractor(device: torch.device | str = "cpu") -> Extractor:
    """torchvision Inception-v3 pool features (2048-d), from weights already on disk only."""
    try:
        from torchvision.models import inception_v3
    except ImportError:
        raise ConfigError("features: kind 'inception' needs torchvision (pip install torchvision)") from None
    weights = _inception_weights()
    if weights is None:
        raise ConfigError("features: kind 'inception' needs inception_v3_google-*.pth in $TORCH_HOME/hub/checkpoints "
                          "(benchbox never downloads weights); use the default in-domain features")
    device = torch.device(device)
    net = inception_v3(weights=None, aux_logits=True, init_weights=False)
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    net.fc = nn.Identity()
    net = net.to(device).eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def features(x: torch.Tensor) -> torch.Tensor:
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return net((x - mean.to(x.device)) / std.to(x.device))

    return lambda images: batched(features, images.float(), device, batch_size=64)


def feature_extractor(reference: torch.Tensor, kind: str = "indomain", cache_dir: str | os.PathLike | None = None,
                      device: torch.device | str = "cpu") -> Extractor:
    """The extractor of ``kind`` ("indomain" or "inception") for images like ``reference``."""
    if kind == "indomain":
        return indomain_extractor(reference, cache_dir, device)
    if kind == "inception":
        return inception_extractor(device)
    raise ConfigError(f"features: unknown kind {kind!r}; expected 'indomain' or 'inception'")
