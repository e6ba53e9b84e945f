"""anomalib's models as benchbox detectors: one small subclass of the shared adapter per model.

Each class below only declares its options (a typed ``Config``, which become ``--detector.*``
options) and how to construct the anomalib module; training, scoring, channel/size handling,
weights, device and console handling live in :mod:`benchbox_plugins.detectors.base.anomalib_adapter`.

Backbone defaults are ``resnet18`` for every model (anomalib's paper defaults such as
``wide_resnet50_2`` can be chosen with ``--detector.backbone``) and images are resized to 64 px,
so the models run on a CPU in minutes.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from benchbox.errors import ConfigError
from benchbox_plugins.detectors.base.anomalib_adapter import AnomalibDetector, _hub_reachable

Layers = tuple[str, ...]


@dataclass
class BackboneConfig(AnomalibDetector.Config):
    """The options of the wrappers built on a timm backbone."""

    backbone: str = "resnet18"
    """timm backbone name (resnet18 for every wrapper here: anomalib's defaults, e.g. wide_resnet50_2 for
    PatchCore and Reverse Distillation or resnet50 for DFM, are far slower on a CPU)."""


@dataclass
class LayersConfig(BackboneConfig):
    """The options of the wrappers that read several backbone layers."""

    layers: Layers = ("layer1", "layer2", "layer3")
    """Backbone layers whose features the model uses."""


class AnomalibPadim(AnomalibDetector):
    """anomalib PaDiM: per-position Gaussians of CNN patch features, Mahalanobis distance."""

    anomalib_name = "anomalib-padim"
    backbone_path = "model.feature_extractor.feature_extractor"
    memory_bank = True

    @dataclass
    class Config(LayersConfig):
        n_features: int = 0
        """Randomly kept feature dimensions (0: anomalib's default for the backbone)."""

    def build(self, pretrained: bool) -> Any:
        from anomalib.models import Padim

        c = self.config
        return Padim(backbone=c.backbone, layers=list(c.layers), pre_trained=pretrained,
                     n_features=c.n_features or None, **self.components())


class AnomalibPatchcore(AnomalibDetector):
    """anomalib PatchCore: nearest-neighbour distance to a coreset memory bank of patch features."""

    anomalib_name = "anomalib-patchcore"
    backbone_path = "model.feature_extractor.feature_extractor"
    memory_bank = True

    @dataclass
    class Config(LayersConfig):
        layers: Layers = ("layer2", "layer3")
        """Backbone layers whose features are concatenated."""
        coreset_sampling_ratio: float = 0.1
        """Share of patch features kept by k-center-greedy coreset selection."""
        num_neighbors: int = 9
        """Neighbours used to reweight the image score."""
        bank_limit: int = 1000
        """At most this many training images feed the memory bank (seeded subsample)."""
        max_patches: int = 65536
        """At most this many patch features enter coreset selection (seeded subsample); bounds memory."""

    def __init__(self, config: Any | None = None):
        super().__init__(config)
        c = self.config
        if not 0.0 < c.coreset_sampling_ratio <= 1.0:
            raise ConfigError(f"{self._name}: --detector.coreset-sampling-ratio must be in (0, 1], "
                              f"got {c.coreset_sampling_ratio}")
        if c.bank_limit < 1 or c.max_patches < 1:
            raise ConfigError(f"{self._name}: --detector.bank-limit and --detector.max-patches must be >= 1")

    def select_training(self, x: torch.Tensor, ctx: Any) -> torch.Tensor:
        if len(x) <= self.config.bank_limit:
            return x
        keep = torch.randperm(len(x), generator=ctx.generator(offset=29))[: self.config.bank_limit]
        return x[keep.sort().values]

    def build(self, pretrained: bool) -> Any:
        from anomalib.models import Patchcore
        from anomalib.models.components.sampling import k_center_greedy

        c = self.config
        max_patches = c.max_patches

        class _CappedPatchcore(Patchcore):
            def fit(self) -> None:  # bound coreset selection's input (it can balloon to tens of GB)
                store = self.model.embedding_store
                bank = torch.vstack(store)
                store.clear()
                if len(bank) > max_patches:
                    keep = torch.randperm(len(bank), generator=torch.Generator().manual_seed(len(bank)))
                    bank = bank[keep[:max_patches].sort().values]
                store.append(bank)
                with _patched(k_center_greedy, "tqdm", _NO_TQDM.tqdm):  # its bar: not on our console
                    self.model.subsample_embedding(self.coreset_sampling_ratio)

        return _CappedPatchcore(backbone=c.backbone, layers=list(c.layers), pre_trained=pretrained,
                                coreset_sampling_ratio=c.coreset_sampling_ratio, num_neighbors=c.num_neighbors,
                                **self.components())


class AnomalibDfm(AnomalibDetector):
    """anomalib DFM: PCA of pooled deep features; feature-reconstruction error or Gaussian NLL."""

    anomalib_name = "anomalib-dfm"
    backbone_path = "model.feature_extractor.feature_extractor"
    memory_bank = True

    @dataclass
    class Config(BackboneConfig):
        layer: str = "layer3"
        """Backbone layer the features come from."""
        pooling_kernel_size: int = 0
        """Average-pooling kernel on the feature map (0: anomalib's 4, or the map side if smaller)."""
        pca_level: float = 0.97
        """Share of variance the PCA keeps."""
        score_type: Literal["fre", "nll"] = "fre"
        """fre: feature reconstruction error (with a map); nll: Gaussian negative log-likelihood."""

    def __init__(self, config: Any | None = None):
        super().__init__(config)
        c = self.config
        stride = {"layer1": 4, "layer2": 8, "layer3": 16, "layer4": 32}.get(c.layer, 1)
        if c.pooling_kernel_size == 0:
            c.pooling_kernel_size = max(1, min(4, c.image_size // stride))
        if c.pooling_kernel_size < 1 or c.image_size // stride < c.pooling_kernel_size:
            raise ConfigError(f"{self._name}: --detector.pooling-kernel-size {c.pooling_kernel_size} must be in "
                              f"[1, {max(1, c.image_size // stride)}] (the {c.layer} feature map side at "
                              f"--detector.image-size {c.image_size})")

    def build(self, pretrained: bool) -> Any:
        from anomalib.models import Dfm

        c = self.config
        return Dfm(backbone=c.backbone, layer=c.layer, pre_trained=pretrained, pooling_kernel_size=c.pooling_kernel_size,
                   pca_level=c.pca_level, score_type=c.score_type, **self.components())


class AnomalibFastflow(AnomalibDetector):
    """anomalib FastFlow: 2-D normalising flows on backbone features, likelihood as the score."""

    anomalib_name = "anomalib-fastflow"
    backbone_path = "model.feature_extractor"

    @dataclass
    class Config(BackboneConfig):
        flow_steps: int = 8
        conv3x3_only: bool = False
        hidden_ratio: float = 1.0
        epochs: int = 10

    def build(self, pretrained: bool) -> Any:
        from anomalib.models import Fastflow

        c = self.config
        return Fastflow(backbone=c.backbone, pre_trained=pretrained, flow_steps=c.flow_steps,
                        conv3x3_only=c.conv3x3_only, hidden_ratio=c.hidden_ratio, **self.components())


class AnomalibReverseDistillation(AnomalibDetector):
    """anomalib Reverse Distillation: a decoder student rebuilds the encoder's features."""

    anomalib_name = "anomalib-reverse-distillation"
    backbone_path = "model.encoder.feature_extractor"

    @dataclass
    class Config(LayersConfig):
        anomaly_map_mode: Literal["add", "multiply"] = "add"
        epochs: int = 10

    def build(self, pretrained: bool) -> Any:
        from anomalib.models import ReverseDistillation

        c = self.config
        return ReverseDistillation(backbone=c.backbone, layers=list(c.layers), anomaly_map_mode=c.anomaly_map_mode,
                                   pre_trained=pretrained, **self.components())


class AnomalibStfpm(AnomalibDetector):
    """anomalib STFPM: student-teacher feature pyramid matching."""

    anomalib_name = "anomalib-stfpm"
    backbone_path = "model.teacher_model.feature_extractor"

    @dataclass
    class Config(LayersConfig):
        epochs: int = 10

    def build(self, pretrained: bool) -> Any:
        from anomalib.models import Stfpm
        from anomalib.models.image.stfpm import torch_model

        c = self.config
        patch = contextlib.nullcontext()
        if not pretrained:  # anomalib always builds the teacher with hub weights; build it without
            original = torch_model.TimmFeatureExtractor

            @functools.wraps(original)
            def no_weights(*args: Any, **kwargs: Any) -> Any:
                kwargs["pre_trained"] = False
                return original(*args, **kwargs)

            patch = _patched(torch_model, "TimmFeatureExtractor", no_weights)
        with patch:
            return Stfpm(backbone=c.backbone, layers=list(c.layers), **self.components())


class AnomalibGanomaly(AnomalibDetector):
    """anomalib GANomaly: encoder-decoder-encoder GAN, latent reconstruction distance as the score."""

    anomalib_name = "anomalib-ganomaly"
    has_backbone = False

    @dataclass
    class Config(AnomalibDetector.Config):
        n_features: int = 64
        latent_vec_size: int = 100
        extra_layers: int = 0
        lr: float = 0.0002
        epochs: int = 10

    def build(self, pretrained: bool) -> Any:
        from anomalib.models import Ganomaly

        c = self.config
        return Ganomaly(batch_size=c.batch_size, n_features=c.n_features, latent_vec_size=c.latent_vec_size,
                        extra_layers=c.extra_layers, lr=c.lr, **self.components())


class AnomalibEfficientAd(AnomalibDetector):
    """anomalib EfficientAD: student-teacher plus autoencoder on a PDN teacher.

    Its autoencoder's strided encoder needs 256 px inputs, so ``--detector.image-size`` below 256
    is raised to 256. Training runs with batch size 1 (as in the paper; anomalib insists).
    """

    min_image_size = 256

    anomalib_name = "anomalib-efficientad"
    backbone_path = "model.teacher"
    normalize = False  # EfficientAd normalises inside the model
    needs_val = True  # map quantiles come from a validation pass (normal validation images)
    fixed_batch_size = 1  # as in the paper; anomalib insists

    @dataclass
    class Config(AnomalibDetector.Config):
        model_size: Literal["small", "medium"] = "small"
        teacher_out_channels: int = 384
        lr: float = 0.0001
        weight_decay: float = 0.00001
        epochs: int = 1
        imagenet_dir: str = ""
        """Folder of ImageNet(te) images for the penalty loss (never downloaded); empty: seeded noise images."""

    def weight_check(self) -> None:
        from anomalib.utils.path import get_pretrained_weights_dir

        f = get_pretrained_weights_dir() / "efficientad_pretrained_weights" / f"pretrained_teacher_{self.config.model_size}.pth"
        if not f.is_file() and not _hub_reachable("github.com"):
            raise ConfigError(f"{self._name}: pretrained teacher weights {f} are not on disk and github.com is "
                              "unreachable; pass --detector.no-pretrained (pretrained=false) or --detector.weights PATH")

    def build(self, pretrained: bool) -> Any:
        from anomalib.models import EfficientAd
        from anomalib.models.image.efficient_ad import lightning_model as effad_module
        from torch.utils.data import DataLoader, TensorDataset
        from torchvision.datasets import ImageFolder
        from torchvision.transforms import CenterCrop, Compose, RandomGrayscale, Resize, ToTensor

        c = self.config
        where = self._name
        if c.imagenet_dir and not Path(c.imagenet_dir).is_dir():
            raise ConfigError(f"{where}: --detector.imagenet-dir {c.imagenet_dir} is not a folder")

        class _OfflineEfficientAd(EfficientAd):
            def prepare_pretrained_model(self) -> None:
                if pretrained:
                    super().prepare_pretrained_model()

            def prepare_imagenette_data(self, image_size: Any) -> None:
                h, w = int(image_size[0]), int(image_size[1])
                if c.imagenet_dir:
                    tf = Compose([Resize((h * 2, w * 2)), RandomGrayscale(p=0.3), CenterCrop((h, w)), ToTensor()])
                    data: Any = ImageFolder(c.imagenet_dir, transform=tf)
                else:
                    data = TensorDataset(torch.rand(64, 3, h, w, generator=torch.Generator().manual_seed(7)))
                self.imagenet_loader = DataLoader(data, batch_size=1, shuffle=True)
                self.imagenet_iterator = iter(self.imagenet_loader)

            def teacher_channel_mean_std(self, dataloader: Any) -> Any:
                with _patched(effad_module, "tqdm", _NO_TQDM):  # anomalib's own bar: not on our console
                    return super().teacher_channel_mean_std(dataloader)

            def map_norm_quantiles(self, dataloader: Any) -> Any:
                with _patched(effad_module, "tqdm", _NO_TQDM):
                    return super().map_norm_quantiles(dataloader)

        return _OfflineEfficientAd(model_size=c.model_size, teacher_out_channels=c.teacher_out_channels, lr=c.lr,
                                   weight_decay=c.weight_decay, imagenet_dir=c.imagenet_dir or "unused",
                                   **self.components())


class _NO_TQDM:  # noqa: N801 - stands in for the ``tqdm`` module
    @staticmethod
    def tqdm(iterable: Any, *args: Any, **kwargs: Any) -> Any:
        return iterable


@contextlib.contextmanager
def _patched(obj: Any, name: str, value: Any):
    original = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, original)
