"""Pixel-level metrics for datasets with masks: pixel AUROC and AUPRO (FPR limit 0.3).

* ``pixel_auroc``: ROC AUC over every test pixel (anomalous pixels positive), from torchmetrics
  (exact, no binning).
* ``pixel_aupro``: area under the per-region-overlap curve up to a false positive rate of 0.3,
  divided by 0.3 (Bergmann et al., the MVTec AD paper), from anomalib's ``AUPRO``: each connected
  component of the ground truth is a region; the FPR counts every anomaly-free pixel of the split.

Both are ``None`` (``null`` in result.json) where the dataset has no masks or the detector gives
no maps, never 0.
"""

from __future__ import annotations

import torch

from .errors import DataError

FPR_LIMIT = 0.3


def _check(masks: torch.Tensor, maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    target = masks.reshape(masks.shape[0], *masks.shape[-2:])
    preds = maps.reshape(maps.shape[0], *maps.shape[-2:]).float()
    if target.shape != preds.shape:
        raise DataError(f"pixel metrics: masks are {tuple(target.shape)} but anomaly maps are {tuple(preds.shape)}")
    if not torch.isfinite(preds).all():
        raise DataError("pixel metrics: the detector returned NaN or infinite anomaly maps")
    return (target > 0.5).long(), preds


def pixel_auroc(masks: torch.Tensor, maps: torch.Tensor) -> float | None:
    from torchmetrics.functional.classification import binary_auroc

    target, preds = _check(masks, maps)
    if target.min() == target.max():
        return None  # needs both anomalous and normal pixels
    return float(binary_auroc(preds.flatten(), target.flatten(), thresholds=None))


def pixel_aupro(masks: torch.Tensor, maps: torch.Tensor, fpr_limit: float = FPR_LIMIT) -> float | None:
    from anomalib.metrics.aupro import _AUPRO

    target, preds = _check(masks, maps)
    if target.min() == target.max():
        return None
    metric = _AUPRO(fpr_limit=fpr_limit)
    metric.update(preds.cpu(), target.cpu())
    return float(metric.compute())


def pixel_metrics(masks: torch.Tensor | None, maps: torch.Tensor | None) -> dict[str, float | None]:
    """``{"pixel_auroc", "pixel_aupro"}``; ``None`` values where masks or maps are missing."""
    if masks is None or maps is None:
        return {"pixel_auroc": None, "pixel_aupro": None}
    return {"pixel_auroc": pixel_auroc(masks, maps), "pixel_aupro": pixel_aupro(masks, maps)}
