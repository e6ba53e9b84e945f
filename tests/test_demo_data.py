"""The BMAD-layout demo set (benchbox.demo_data): read by the bmad plugin as BMAD, masks exactly
on the painted lesions, deterministic, and anomalies a simple colour statistic can already see."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score

from benchbox import registry
from benchbox.demo_data import CATEGORIES, LESIONS, iter_demo, make_bmad_demo
from benchbox.errors import ConfigError

SMALL = {"size": 64, "n_train": 6, "n_valid": 2, "n_test": 3}


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHBOX_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("BENCHBOX_DATA", raising=False)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo") / "bmad"
    make_bmad_demo(root, **SMALL, seed=0)
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _u8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


def test_exact_bmad_layout(demo):
    names = [f"{i:04d}.png" for i in range(3)]
    expected = {"README.txt", "lesions.csv"}
    for c in CATEGORIES:
        expected |= {f"{c}/train/good/img/{i:04d}.png" for i in range(6)}
        for split, n in (("valid", 2), ("test", 3)):
            expected |= {f"{c}/{split}/good/img/{f}" for f in names[:n]}
            expected |= {f"{c}/{split}/Ungood/{d}/{f}" for f in names[:n] for d in ("img", "label")}
    assert set(_files(demo)) == expected
    readme = (demo / "README.txt").read_text()
    assert "THE LESIONS IN THIS SET ARE SYNTHETIC" in readme and "size=64 n_train=6 n_valid=2 n_test=3 seed=0" in readme
    lines = (demo / "lesions.csv").read_text().splitlines()
    assert len(lines) == 1 + 2 * (6 + 2 * 2 + 2 * 3)
    assert "Histopathology,test,Ungood,Histopathology/test/Ungood/img/0001.png,necrosis," in "\n".join(lines)


@pytest.mark.parametrize("category", CATEGORIES)
def test_read_by_the_bmad_plugin(demo, category):
    cls = registry.load("datasets", "bmad")
    ds = cls(cls.Config(root=str(demo), category=category, image_size=0, val_fraction=0.0))
    assert sorted(ds.categories(demo)) == sorted(CATEGORIES)
    layout = ds.scan(demo, category)
    assert layout.problems == [] and layout.has_masks
    for sample in layout.test + layout.val:
        if sample.label:  # paired by file name: Ungood/img/N.png with Ungood/label/N.png
            assert sample.mask == sample.image.parent.parent / "label" / sample.image.name
        else:
            assert sample.mask is None
    s = ds.load(0)
    assert tuple(s.train.shape) == (6, 3, 64, 64)
    assert s.val.labels.tolist() == [0, 0, 1, 1] and s.test.labels.tolist() == [0, 0, 0, 1, 1, 1]
    written = torch.stack([torch.from_numpy(np.asarray(Image.open(demo / category / "test" / "Ungood" / "label" / f)) > 0)
                           for f in ("0000.png", "0001.png", "0002.png")])
    assert torch.equal(s.test.masks[3:, 0].bool(), written)
    assert s.test.masks[:3].sum() == 0


def test_data_check_passes(demo, capsys):
    from benchbox.cli import main

    assert main(["data", "check", "bmad", "--root", str(demo)]) == 0
    assert "no problems found" in capsys.readouterr().out


@pytest.mark.parametrize("category", CATEGORIES)
def test_masks_are_exactly_the_painted_pixels(tmp_path, category):
    """In the written files, an Ungood image differs from the normal crop it was painted on on
    every mask pixel and nowhere else; the lesion changes the colour by a visible amount."""
    make_bmad_demo(tmp_path / "set", size=96, n_train=1, n_valid=0, n_test=6, seed=3, categories=(category,))
    ungood = [i for i in iter_demo(category, 96, 1, 0, 6, seed=3) if i.label]
    assert [i.kind for i in ungood] == list(LESIONS[category]) * 2
    for item in ungood:
        folder = tmp_path / "set" / item.folder
        image = np.asarray(Image.open(folder / "img" / item.name))
        mask = np.asarray(Image.open(folder / "label" / item.name))
        assert set(np.unique(mask)) == {0, 255}
        changed = (image != _u8(item.base)).any(-1)
        assert np.array_equal(changed, mask > 0), item.name
        assert np.abs(image.astype(float) - _u8(item.base))[mask > 0].mean() >= 0.05 * 255, (item.kind, item.name)
        assert 0.003 <= (mask > 0).mean() <= 0.35, (item.kind, (mask > 0).mean())


def test_deterministic_by_seed(tmp_path):
    make_bmad_demo(tmp_path / "a", **SMALL, seed=5)
    make_bmad_demo(tmp_path / "b", **SMALL, seed=5)
    make_bmad_demo(tmp_path / "c", **SMALL, seed=6)
    make_bmad_demo(tmp_path / "d", **{**SMALL, "n_test": 1}, seed=5)
    a, b, c, d = (_files(tmp_path / n) for n in "abcd")
    assert a == b
    images = [k for k in a if k.endswith(".png")]
    assert sum(a[k] != c[k] for k in images) >= len(images) - 2  # another seed: other crops and lesions
    assert all(d[k] == a[k] for k in d if "/test/" not in k and k.endswith(".png"))  # splits draw independently


@pytest.mark.parametrize("category", CATEGORIES)
def test_anomalies_stand_out_from_normals(category):
    """Rarity of a pixel's colour under the training crops (8^3-bin histogram), top 2 % per image:
    this crude statistic already ranks Ungood above good test crops."""
    items = list(iter_demo(category, 64, n_train=30, n_valid=0, n_test=12, seed=0))
    bins = lambda x: (np.minimum(x * 8, 7).astype(int) * [64, 8, 1]).sum(-1)  # noqa: E731
    hist = np.bincount(np.concatenate([bins(i.image).ravel() for i in items if i.split == "train"]), minlength=512)
    rarity = -np.log(hist / hist.sum() + 1e-6)

    def score(x: np.ndarray) -> float:
        r = np.sort(rarity[bins(x)].ravel())
        return float(r[-len(r) // 50 :].mean())

    test = [i for i in items if i.split == "test"]
    assert roc_auc_score([i.label for i in test], [score(i.image) for i in test]) >= 0.85


def test_train_and_test_halves_never_overlap():
    for category in CATEGORIES:
        items = list(iter_demo(category, 128, n_train=20, n_valid=5, n_test=20, seed=1))
        train_bottom = max(i.top + 128 for i in items if i.split in ("train", "valid"))
        test_top = min(i.top for i in items if i.split == "test")
        assert train_bottom <= test_top, category


def test_bad_options_leave_nothing(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(ConfigError, match="already exists and is not an empty folder"):
        make_bmad_demo(tmp_path / "full", **SMALL)
    with pytest.raises(ConfigError, match="--size 300 does not fit Histopathology: crops of at most 256 px"):
        make_bmad_demo(tmp_path / "big", size=300, n_train=1, n_valid=0, n_test=1)
    with pytest.raises(ConfigError, match="--n-test must be >= 1"):
        make_bmad_demo(tmp_path / "none", size=64, n_test=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]


def test_make_demo_command(tmp_path, capsys):
    from benchbox.cli import main

    out = tmp_path / "demo"
    assert main(["data", "make-demo", "bmad", str(out), "--size", "48", "--n-train", "3", "--n-valid", "1",
                 "--n-test", "2", "--seed", "4", "--category", "Retina_fundus"]) == 0
    printed = capsys.readouterr().out
    assert f"{out / 'Retina_fundus'}: train/good 3, valid/good 1, valid/Ungood 1, test/good 2, test/Ungood 2" in printed
    assert f"--dataset bmad --dataset.root {out} --dataset.category Retina_fundus" in printed
    make_bmad_demo(tmp_path / "same", size=48, n_train=3, n_valid=1, n_test=2, seed=4, categories=("Retina_fundus",))
    assert _files(out) == _files(tmp_path / "same")
    for bad, message in ((["mvtec", str(tmp_path / "m")], "unknown demo 'mvtec'; available: bmad"),
                         (["bmad", str(out)], "already exists and is not an empty folder"),
                         (["bmad", str(tmp_path / "b"), "--category", "Brain"], "invalid choice: 'Brain'")):
        assert main(["data", "make-demo", *bad]) == 2
        assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo", "same"]


def test_bmad_without_a_root_names_the_demo_command():
    from benchbox.errors import DataError

    ds = registry.create("datasets", "bmad")
    with pytest.raises(DataError, match=r"no data root: .*benchbox data make-demo bmad DIR"):
        ds.load(0)
