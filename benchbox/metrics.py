"""Detection metrics, computed with scikit-learn on the test split only."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from .errors import DataError


def _np(x: torch.Tensor | np.ndarray) -> np.ndarray:
    return x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)


def _check(labels: np.ndarray, scores: np.ndarray) -> None:
    if labels.shape != scores.shape:
        raise DataError(f"metrics: {labels.shape[0]} labels but {scores.shape[0]} scores")
    if not np.isfinite(scores).all():
        raise DataError("metrics: the detector returned NaN or infinite scores")
    if len(np.unique(labels)) != 2:
        raise DataError("metrics: the test split needs both normal (0) and anomalous (1) images")


def f1_max(labels: np.ndarray, scores: np.ndarray) -> float:
    """Best F1 over all thresholds (an oracle threshold: comparable across methods, not deployable)."""
    precision, recall, _ = precision_recall_curve(labels, scores)
    denom = precision + recall
    f1 = np.where(denom > 0, 2 * precision * recall / np.where(denom > 0, denom, 1), 0.0)
    return float(f1.max())


def image_metrics(labels: torch.Tensor | np.ndarray, scores: torch.Tensor | np.ndarray) -> dict[str, float]:
    """Image-level AUROC, AUPR (average precision, anomalies positive) and F1-max."""
    y = _np(labels).astype(int)
    s = _np(scores)
    _check(y, s)
    return {
        "image_auroc": float(roc_auc_score(y, s)),
        "image_aupr": float(average_precision_score(y, s)),
        "image_f1_max": f1_max(y, s),
    }
