"""Pixel AUROC and AUPRO (FPR limit 0.3) on cases computed by hand."""

from __future__ import annotations

import pytest
import torch

from benchbox.pixel_metrics import pixel_metrics


def test_hand_computed_case():
    # one 1x10 image: region of two pixels (0.95, 0.75), eight background pixels 0.1 .. 0.8
    scores = torch.tensor([[[0.95, 0.75, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]]])
    masks = torch.zeros(1, 1, 1, 10)
    masks[..., :2] = 1
    m = pixel_metrics(masks, scores)
    assert m["pixel_auroc"] == pytest.approx((8 + 7) / 16)
    # PRO curve: (0, .5) -> (1/8, .5) -> (1/8, 1) -> (0.3, 1); area / 0.3
    assert m["pixel_aupro"] == pytest.approx((0.125 * 0.5 + (0.3 - 0.125) * 1.0) / 0.3)


def test_regions_weigh_equally_across_images():
    masks = torch.zeros(2, 1, 6, 6)
    masks[0, 0, :3, :3] = 1  # a large region, missed (scored below all background)
    masks[1, 0, 5, 5] = 1  # a one-pixel region, found
    scores = torch.full((2, 6, 6), 0.5)
    scores[0, :3, :3] = 0.0
    scores[1, 5, 5] = 1.0
    m = pixel_metrics(masks, scores)
    assert m["pixel_aupro"] == pytest.approx(0.5)  # one of two regions, whatever their sizes
    assert m["pixel_auroc"] == pytest.approx(0.1)  # 1 of 10 anomalous pixels above all 62 normal ones


def test_perfect_and_missing():
    masks = torch.zeros(3, 1, 8, 8)
    masks[1, 0, 2:4, 2:5] = 1
    m = pixel_metrics(masks, masks[:, 0] * 2 + 1)
    assert m == {"pixel_auroc": 1.0, "pixel_aupro": 1.0}
    assert pixel_metrics(None, masks[:, 0]) == {"pixel_auroc": None, "pixel_aupro": None}
    assert pixel_metrics(masks, None) == {"pixel_auroc": None, "pixel_aupro": None}
