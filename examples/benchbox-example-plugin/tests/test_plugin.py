"""This plugin's CI: benchbox's contract checks, plus behaviour of its own."""

from __future__ import annotations

import importlib.metadata as md

import pytest
import torch

from benchbox.errors import ConfigError
from benchbox.interfaces import FitContext
from benchbox.testing import check_dataset, check_detector
from benchbox_example_plugin.mahalanobis import Mahalanobis
from benchbox_example_plugin.shapes import Shapes


def test_shapes_contract():
    check_dataset(Shapes)
    check_dataset(Shapes, {"normal_shape": "triangle", "size": 24, "per_shape": 40}, seed=3)


def test_mahalanobis_contract():
    check_detector(Mahalanobis)
    splits = Shapes(Shapes.Config(size=12, per_shape=40)).load(0)
    check_detector(Mahalanobis, {"grid": 4}, train=splits.train, test=splits.test.images, val=splits.val)


def test_mahalanobis_separates_shapes():
    from sklearn.metrics import roc_auc_score

    splits = Shapes().load(0)
    det = Mahalanobis()
    det.fit(splits.train, FitContext(device=torch.device("cpu"), seed=0))
    scores = det.score(splits.test.images)
    assert roc_auc_score(splits.test.labels.numpy(), scores.image.numpy()) > 0.8


def test_bad_options_are_one_line_errors():
    with pytest.raises(ConfigError, match="--dataset.size must be in"):
        Shapes(Shapes.Config(size=4))
    with pytest.raises(ConfigError, match="--detector.shrinkage"):
        Mahalanobis(Mahalanobis.Config(shrinkage=2.0))


def test_registered_through_entry_points():
    try:
        dist = md.distribution("benchbox-example-plugin")
    except md.PackageNotFoundError:
        pytest.skip("not installed (pip install .): the entry points are written at install time")
    eps = {(ep.group, ep.name) for ep in dist.entry_points}
    assert ("benchbox.datasets", "example-shapes") in eps and ("benchbox.detectors", "example-mahalanobis") in eps
    check_detector("example-mahalanobis", {"grid": 4})  # by name, through benchbox's registry
