"""Property-based checks (hypothesis): config coercion, the folder scanners on generated trees, metrics."""

from __future__ import annotations

import dataclasses
import os
import string
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from benchbox import registry
from benchbox.config import build_config, config_hash
from benchbox.errors import ConfigError, DataError
from benchbox.grid import _parse_value
from benchbox.metrics import image_metrics

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------------------ config parsing


@dataclass
class Inner:
    depth: int = 1
    gain: float = 0.5


@dataclass
class Sample:
    epochs: int = 2
    lr: float = 1e-3
    pretrained: bool = True
    name: str = "x"
    mode: Literal["a", "b"] = "a"
    level: Literal[1, 2] = 1
    limit: Optional[int] = None
    layers: list[int] = field(default_factory=lambda: [1, 2])
    scales: tuple[float, ...] = (1.0,)
    inner: Inner = field(default_factory=Inner)


ints = st.integers(-10**9, 10**9)
huge_ints = st.integers()  # Python callers may pass any int (10**400 does not fit a float)
floats = st.floats(allow_nan=False, allow_infinity=False, width=64)
texts = st.text(string.ascii_letters + string.digits + "_-./ ", max_size=12)
VALID = {
    "epochs": ints, "lr": floats, "pretrained": st.booleans(), "name": texts, "mode": st.sampled_from(["a", "b"]),
    "level": st.sampled_from([1, 2]), "limit": st.none() | ints, "layers": st.lists(ints, max_size=4),
    "scales": st.lists(floats, max_size=3).map(tuple),
    "inner": st.builds(lambda d, g: {"depth": d, "gain": g}, ints, floats),
}
ANY_JSON = st.none() | st.booleans() | huge_ints | floats | texts | st.lists(ints, max_size=2) | st.dictionaries(texts, ints, max_size=2)


def _fits_float(value: int) -> bool:
    try:
        float(value)
        return True
    except OverflowError:
        return False


def _accepts(name: str, value) -> bool:
    """Whether ``value`` is of an accepted type for field ``name`` (the documented coercion rules)."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    return {
        "epochs": is_int, "pretrained": isinstance(value, bool),
        "name": isinstance(value, str), "mode": value in ("a", "b"), "level": is_int and value in (1, 2),
        "lr": is_int and _fits_float(value) or isinstance(value, float), "limit": value is None or is_int,
        "layers": isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value),
        "scales": False, "inner": False,
    }[name]


@FAST
@given(st.fixed_dictionaries({}, optional=VALID), st.booleans())
def test_valid_options_build_the_config_they_describe(options, dashed):
    keys = {(k.replace("_", "-") if dashed else k): v for k, v in options.items()}
    cfg = build_config(Sample, keys, "test")
    for name, value in options.items():
        got = getattr(cfg, name)
        if name == "inner":
            assert got == Inner(**value)
        elif name == "lr":
            assert type(got) is float and got == float(value)
        else:
            assert got == value and type(got) is type(value)
    untouched = {f.name for f in dataclasses.fields(Sample)} - set(options)
    default = Sample()
    assert all(getattr(cfg, n) == getattr(default, n) for n in untouched)
    # what build_config returns rebuilds itself, and the hash ignores key order
    again = build_config(Sample, dataclasses.asdict(cfg), "test")
    assert again == cfg
    items = list(dataclasses.asdict(cfg).items())
    assert config_hash(dict(items)) == config_hash(dict(reversed(items)))


@FAST
@given(st.sampled_from(["epochs", "lr", "pretrained", "name", "mode", "level", "limit", "layers"]),
       ANY_JSON | st.sampled_from([True, False, 1.0, 2.0, 10**400, -(10**400)]))
def test_wrong_types_are_a_one_line_config_error(name, value):
    if _accepts(name, value):
        assert build_config(Sample, {name: value}, "test") is not None
        return
    with pytest.raises(ConfigError) as info:
        build_config(Sample, {name: value}, "test")
    assert "\n" not in str(info.value) and repr(name) in str(info.value)


@FAST
@given(st.text(string.ascii_lowercase + "_-", min_size=1, max_size=12))
def test_unknown_option_names_are_rejected(name):
    assume(name.replace("-", "_") not in {f.name for f in dataclasses.fields(Sample)})
    with pytest.raises(ConfigError, match="has no option"):
        build_config(Sample, {name: 1}, "test")


@FAST
@given(ints | floats | st.booleans() | st.text(string.ascii_letters + string.digits + " _-", max_size=12))
def test_set_values_parse_as_toml_literals(value):
    """``--set generator.x=VALUE``: TOML literals come back typed; anything else stays the raw text."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (int, float)):
        text = repr(value)  # Python's int and float literals are TOML literals too (1e+16, -0.0, 2.5e-07)
    else:
        text = '"' + value + '"'
    parsed = _parse_value(text)
    assert parsed == value and type(parsed) is type(value)


def test_every_registered_config_round_trips():
    names = [(g, p.name) for g in ("datasets", "generators", "policies", "detectors")
             for p in registry.list_plugins(g) if not p.broken]
    for group, name in names:
        cls = registry.load(group, name)
        default = cls.Config()
        assert build_config(cls.Config, dataclasses.asdict(default), f"{group} {name}") == default, (group, name)


# ----------------------------------------------------------------------------- folder trees

PNG = lambda path, value: Image.fromarray(np.full((8, 8), value, np.uint8)).save(path)  # noqa: E731


@st.composite
def mvtec_trees(draw, valid: bool = False):
    """A category tree; ``valid``: at least one image of each kind and a mask for every anomaly."""
    flags = st.lists(st.just(True), min_size=1, max_size=3) if valid else st.lists(st.booleans(), max_size=3)
    return {
        "category": draw(st.sampled_from(["bottle", "grid_1", "Tile"])),
        "train": draw(st.integers(1 if valid else 0, 3)),
        "good": draw(st.integers(1 if valid else 0, 2)),
        # defect -> list of "has a mask" flags, one per image
        "defects": draw(st.dictionaries(st.sampled_from(["crack", "hole", "scratch"]), flags,
                                        min_size=1 if valid else 0, max_size=2)),
        "suffix": draw(st.sampled_from([".png", ".PNG"])),
        "mask_style": draw(st.sampled_from(["_mask", ""])),
        "junk": draw(st.booleans()),  # hidden files and non-images that must be ignored
    }


def write_tree(root: Path, t: dict) -> None:
    cat = root / t["category"]
    counter = iter(range(1, 250))
    for folder, n in ((cat / "train" / "good", t["train"]), (cat / "test" / "good", t["good"])):
        folder.mkdir(parents=True)
        for i in range(n):
            PNG(folder / f"{i:03d}{t['suffix']}", next(counter))
    (cat / "test").mkdir(parents=True, exist_ok=True)
    for defect, masks in t["defects"].items():
        (cat / "test" / defect).mkdir(parents=True)
        (cat / "ground_truth" / defect).mkdir(parents=True)
        for i, has_mask in enumerate(masks):
            PNG(cat / "test" / defect / f"{i:03d}{t['suffix']}", next(counter))
            if has_mask:
                mask = np.zeros((8, 8), np.uint8)
                mask[2:4, 2:4] = 255
                Image.fromarray(mask).save(cat / "ground_truth" / defect / f"{i:03d}{t['mask_style']}.png")
    if t["junk"]:
        for folder in (cat / "train" / "good", cat / "test" / "good"):
            (folder / ".DS_Store").write_bytes(b"\x00junk")
            (folder / "._000.png").write_bytes(b"not an image")
            (folder / "notes.txt").write_text("ignore me")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mvtec_trees())
def test_scan_mvtec_matches_the_generated_tree(t):
    from benchbox_plugins.datasets.base.folders import scan_mvtec

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_tree(root, t)
        layout = scan_mvtec(root, t["category"], "mvtec", masks="required")
        n_bad = sum(len(m) for m in t["defects"].values())
        n_missing = sum(not has for m in t["defects"].values() for has in m)
        assert len(layout.train) == t["train"] and all(s.label == 0 for s in layout.train)
        assert sorted(s.label for s in layout.test) == [0] * t["good"] + [1] * n_bad
        assert sum(s.mask is not None for s in layout.test) == n_bad - n_missing
        for s in layout.test:  # masks paired by name, never by position
            if s.mask is not None:
                assert s.mask.parent.name == s.kind and s.mask.name.startswith(s.image.stem)
        expect = [("no normal training images", t["train"] == 0), ("no mask", n_missing),
                  ("no normal test images", t["good"] == 0), ("no anomalous test images", n_bad == 0)]
        for text, count in expect:
            assert sum(text in p for p in layout.problems) == int(count), (text, layout.problems)
        if layout.problems:
            with pytest.raises(DataError) as info:
                layout.raise_first()
            assert "\n" not in str(info.value)
        else:
            layout.raise_first()
        with pytest.raises(DataError, match="is missing"):
            scan_mvtec(root, "nope", "mvtec")


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mvtec_trees(valid=True))
def test_mvtec_dataset_loads_every_valid_generated_tree(t):
    n_bad = sum(len(m) for m in t["defects"].values())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        write_tree(root, t)
        old = os.environ.get("BENCHBOX_CACHE")
        os.environ["BENCHBOX_CACHE"] = str(Path(tmp) / "cache")
        try:
            s = registry.create("datasets", "mvtec", root=str(root), category=t["category"], image_size=8,
                                val_fraction=0.5).load(0)
        finally:
            os.environ.pop("BENCHBOX_CACHE") if old is None else os.environ.__setitem__("BENCHBOX_CACHE", old)
        assert len(s.train) + len(s.val) == t["train"] and len(s.train) >= 1
        assert s.test.labels.tolist().count(0) == t["good"] and int(s.test.labels.sum()) == n_bad
        per_image = s.test.masks.flatten(1).sum(1)
        assert (per_image[s.test.labels == 1] > 0).all() and (per_image[s.test.labels == 0] == 0).all()


# ---------------------------------------------------------------------------------- metrics


@st.composite
def labelled_scores(draw, min_size=2, max_size=40):
    n = draw(st.integers(min_size, max_size))
    labels = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    assume(0 < sum(labels) < n)
    scores = draw(st.lists(st.integers(-50, 50), min_size=n, max_size=n))  # integers: ties on purpose
    return np.array(labels), np.array(scores, dtype=np.float64)


MONOTONE = [lambda s: 3.0 * s - 7.0, lambda s: s**3 + s, lambda s: np.exp(s / 10.0), lambda s: np.arctan(s / 7.0)]


@FAST
@given(labelled_scores(), st.sampled_from(range(len(MONOTONE))))
def test_auroc_bounds_and_invariances(data, k):
    y, s = data
    m = image_metrics(y, s)
    assert 0.0 <= m["image_auroc"] <= 1.0
    assert m["image_auroc"] == pytest.approx(image_metrics(y, MONOTONE[k](s))["image_auroc"], abs=1e-12)
    assert image_metrics(y, -s)["image_auroc"] == pytest.approx(1.0 - m["image_auroc"], abs=1e-12)
    assert image_metrics(torch.from_numpy(y), torch.from_numpy(s).float()) == pytest.approx(m)  # tensors too
    separated = s[y == 1].min() > s[y == 0].max()
    assert (m["image_auroc"] == 1.0) == separated
    # relabelling as a pure ranking statistic: AUROC = P(score_anomalous > score_normal) + 0.5 P(tie)
    pos, neg = s[y == 1][:, None], s[y == 0][None, :]
    assert m["image_auroc"] == pytest.approx(((pos > neg) + 0.5 * (pos == neg)).mean(), abs=1e-12)


@FAST
@given(labelled_scores())
def test_f1max_and_aupr_bounds(data):
    y, s = data
    m = image_metrics(y, s)
    prevalence = y.mean()
    assert 0.0 < m["image_aupr"] <= 1.0 and 0.0 < m["image_f1_max"] <= 1.0
    # flagging everything is one of the thresholds: F1-max is at least its F1
    assert m["image_f1_max"] >= 2 * prevalence / (1 + prevalence) - 1e-12
    separated = s[y == 1].min() > s[y == 0].max()
    assert (m["image_f1_max"] == pytest.approx(1.0)) == separated
    assert (m["image_aupr"] == pytest.approx(1.0)) == separated
    assert image_metrics(y, MONOTONE[1](s))["image_aupr"] == pytest.approx(m["image_aupr"], abs=1e-12)


@FAST
@given(labelled_scores(), st.sampled_from([np.nan, np.inf, -np.inf]))
def test_metrics_reject_non_finite_scores_and_one_class_labels(data, bad):
    y, s = data
    s = s.copy()
    s[0] = bad
    with pytest.raises(DataError, match="NaN or infinite"):
        image_metrics(y, s)
    with pytest.raises(DataError, match="both normal"):
        image_metrics(np.zeros_like(y), np.arange(len(y), dtype=float))
