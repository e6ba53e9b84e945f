from __future__ import annotations

import numpy as np
import pytest
import torch

from benchbox.errors import DataError
from benchbox.metrics import f1_max, image_metrics


def test_perfect_and_reversed_separation():
    y = torch.tensor([0, 0, 0, 1, 1])
    m = image_metrics(y, torch.tensor([0.1, 0.2, 0.3, 0.8, 0.9]))
    assert m["image_auroc"] == 1.0 and m["image_aupr"] == 1.0 and m["image_f1_max"] == 1.0
    assert image_metrics(y, -torch.tensor([0.1, 0.2, 0.3, 0.8, 0.9]))["image_auroc"] == 0.0


def test_auroc_by_hand():
    # pairs (anomaly, normal) ranked correctly: 5 of 6 -> 5/6
    y = np.array([0, 0, 0, 1, 1])
    s = np.array([0.1, 0.5, 0.3, 0.4, 0.9])
    assert image_metrics(y, s)["image_auroc"] == pytest.approx(5 / 6)


def test_f1_max_by_hand():
    # thresholds: best is to flag the top 3 (two anomalies among them): P=2/3, R=1 -> F1=0.8
    y = np.array([0, 0, 1, 0, 1])
    s = np.array([0.1, 0.2, 0.7, 0.8, 0.9])
    assert f1_max(y, s) == pytest.approx(0.8)


def test_bad_inputs_are_clear():
    with pytest.raises(DataError, match="both normal"):
        image_metrics(np.zeros(4), np.arange(4.0))
    with pytest.raises(DataError, match="NaN"):
        image_metrics(np.array([0, 1]), np.array([0.0, np.nan]))
    with pytest.raises(DataError, match="labels but"):
        image_metrics(np.array([0, 1, 1]), np.array([0.0, 1.0]))
