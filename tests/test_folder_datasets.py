"""The folder datasets (mvtec, visa, bmad, pku) on tiny fixtures written in each exact layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from benchbox import registry
from benchbox.cli import main
from benchbox.errors import DataError
from fixtures.layouts import make_bmad, make_mvtec, make_pku, make_visa, save
from test_contracts import check_dataset_contract

MAKERS = {"mvtec": (make_mvtec, "bottle"), "pku": (make_pku, "drink_bottle"), "visa": (make_visa, "candle"),
          "bmad": (make_bmad, "Brain")}
TINY_RUN = ["--generator.epochs", "1", "--generator.base-channels", "8", "--detector.epochs", "1",
            "--detector.dim", "32", "--detector.depth", "1", "--detector.heads", "2", "--detector.score-rounds", "1",
            "--dataset.image-size", "32", "--device", "cpu", "--policy", "none"]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHBOX_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("BENCHBOX_DATA", raising=False)


def dataset(name: str, root: Path, **options):
    return registry.create("datasets", name, root=str(root), **{"image_size": 32, **options})


@pytest.mark.parametrize("name,category", [("mvtec", "bottle"), ("pku", "drink_bottle"), ("visa", "candle"),
                                           ("bmad", "Brain"), ("bmad", "Liver"), ("bmad", "Chest")])
def test_contract_on_fixture(tmp_path, name, category):
    MAKERS[name][0](tmp_path / "data")
    ds = dataset(name, tmp_path / "data", category=category)
    check_dataset_contract(ds)
    s = ds.load(0)
    assert s.train.shape[1:] == ((1, 32, 32) if name == "bmad" else (3, 32, 32))
    if category == "Chest":
        assert s.test.masks is None
    else:
        m = s.test.masks
        assert m is not None
        assert (m[s.test.labels == 1].flatten(1).sum(1) > 0).all()  # every anomaly has a marked region
        assert m[s.test.labels == 0].sum() == 0


def test_splits_follow_the_layout(tmp_path):
    make_bmad(tmp_path)
    s = dataset("bmad", tmp_path, category="Brain", val_fraction=0.25).load(0)
    assert (len(s.train), len(s.test)) == (6, 6)
    assert s.val.labels.tolist() == [0, 0] + [0, 0, 0, 1, 1, 1]  # carved normals + the shipped valid split
    assert s.test.labels.tolist() == [0, 0, 0, 1, 1, 1]
    other = dataset("bmad", tmp_path, category="Brain", val_fraction=0.25).load(1)
    assert not torch.equal(s.train, other.train) and torch.equal(s.test.images, other.test.images)
    limited = dataset("bmad", tmp_path, category="Brain", val_fraction=0.25, train_limit=3).load(0)
    assert torch.equal(limited.train, s.train[:3])


def test_visa_masks_binarised_and_csv_paths(tmp_path):
    make_visa(tmp_path)
    s = dataset("visa", tmp_path, image_size=0).load(0)
    assert s.test.images.shape[-2:] == (36, 36)  # centre square crop of 36x44, native size
    assert set(s.test.masks.unique().tolist()) == {0.0, 1.0}
    assert int(s.test.masks.sum()) == 4 * 100  # four 10x10 squares, non-binary values binarised


def test_image_formats(tmp_path):
    from benchbox_plugins.datasets.base.imageio import read_image, read_mask

    ramp = np.arange(256, dtype=np.float64).reshape(16, 16)
    save(tmp_path / "g16.png", ramp, bits=16)
    save(tmp_path / "pal.png", ramp, palette=True)
    save(tmp_path / "rgb.jpg", np.stack([ramp] * 3, -1))
    Image.fromarray(np.full((4, 4, 4), 128, np.uint8), mode="RGBA").save(tmp_path / "rgba.png")
    g16 = read_image(tmp_path / "g16.png")
    assert g16.shape == (16, 16) and np.allclose(g16, ramp / 255.0, atol=1e-6)
    pal = read_image(tmp_path / "pal.png")
    assert pal.ndim == 2 and np.allclose(pal, ramp / 255.0, atol=1 / 255)  # grey palette -> grayscale
    assert read_image(tmp_path / "rgb.jpg").shape == (16, 16, 3)
    assert read_image(tmp_path / "rgba.png").shape == (4, 4, 3)
    assert read_mask(tmp_path / "pal.png").sum() == 255  # palette indices > 0


def test_second_load_decodes_nothing(tmp_path, monkeypatch):
    from benchbox_plugins.datasets.base import folderdataset

    make_mvtec(tmp_path)
    first = dataset("mvtec", tmp_path).load(0)

    def fail(path):
        raise AssertionError(f"decoded {path} again")

    monkeypatch.setattr(folderdataset, "read_image", fail)
    monkeypatch.setattr(folderdataset, "read_mask", fail)
    again = dataset("mvtec", tmp_path).load(0)
    assert torch.equal(first.train, again.train) and torch.equal(first.test.masks, again.test.masks)
    cache_files = list((tmp_path / "cache" / "datasets").glob("*.npz"))
    assert cache_files and all(np.load(p, allow_pickle=False).files for p in cache_files)
    # a changed file or option is a miss
    with pytest.raises(AssertionError, match="decoded"):
        dataset("mvtec", tmp_path, image_size=24).load(0)


# ------------------------------------------------------------------------------- bad roots


def one_line_error(ds) -> str:
    with pytest.raises(DataError) as info:
        ds.load(0)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_bad_roots_give_one_line_errors(tmp_path):
    assert "nope is not a folder" in one_line_error(dataset("mvtec", tmp_path / "nope"))  # missing root
    make_mvtec(tmp_path / "m")
    msg = one_line_error(dataset("mvtec", tmp_path / "m", category="cable"))
    assert "cable is missing" in msg and "holds: bottle" in msg
    # no normal training images
    for p in (tmp_path / "m" / "bottle" / "train" / "good").iterdir():
        p.unlink()
    msg = one_line_error(dataset("mvtec", tmp_path / "m"))
    assert "train/good: no normal training images" in msg


def test_corrupt_image_is_named(tmp_path):
    make_mvtec(tmp_path)
    bad = tmp_path / "bottle" / "test" / "good" / "001.png"
    bad.write_bytes(bad.read_bytes()[:60])
    msg = one_line_error(dataset("mvtec", tmp_path))
    assert str(bad) in msg and "not a readable image" in msg


def test_mask_size_mismatch_and_missing_mask(tmp_path):
    make_mvtec(tmp_path)
    mask = tmp_path / "bottle" / "ground_truth" / "crack" / "000_mask.png"
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(mask)
    msg = one_line_error(dataset("mvtec", tmp_path))
    assert str(mask) in msg and "mask is 20x20" in msg and "48x40" in msg
    mask.unlink()
    msg = one_line_error(dataset("mvtec", tmp_path))
    assert "000.png: no mask" in msg and "000_mask.png" in msg


def test_visa_and_bmad_errors(tmp_path):
    assert "split_csv/1cls.csv is missing" in one_line_error(dataset("visa", tmp_path))
    make_visa(tmp_path / "v")
    assert "lists no rows for object 'pcb1'" in one_line_error(dataset("visa", tmp_path / "v", category="pcb1"))
    (tmp_path / "v" / "candle" / "Data" / "Masks" / "Anomaly" / "002.png").unlink()
    assert "002.png: listed in" in one_line_error(dataset("visa", tmp_path / "v"))
    make_bmad(tmp_path / "b")
    (tmp_path / "b" / "Brain" / "test" / "Ungood" / "anomaly_mask" / "tU001.png").unlink()
    assert "tU001.png: no mask" in one_line_error(dataset("bmad", tmp_path / "b"))


def test_root_from_environment(tmp_path, monkeypatch):
    make_mvtec(tmp_path / "mvtec")
    assert "set BENCHBOX_DATA" in one_line_error(registry.create("datasets", "mvtec"))
    monkeypatch.setenv("BENCHBOX_DATA", str(tmp_path))
    assert len(registry.create("datasets", "mvtec", image_size=32).load(0).train) == 7


# ------------------------------------------------------------------------------- CLI


@pytest.mark.parametrize("name", ["mvtec", "pku", "visa", "bmad"])
def test_full_run_per_plugin(tmp_path, name, capsys):
    maker, category = MAKERS[name]
    maker(tmp_path / "data")
    code = main(["run", "--dataset", name, "--dataset.root", str(tmp_path / "data"),
                 "--dataset.category", category, *TINY_RUN, "--out", str(tmp_path / "runs")])
    assert code == 0, capsys.readouterr().err
    (run,) = list((tmp_path / "runs").iterdir())
    result = json.loads((run / "result.json").read_text())
    metrics = result["metrics"]
    # the fixtures' anomalies are bright squares marked by their masks: seeds 0-4 gave image AUROC 1.0,
    # pixel AUROC 0.992-0.998 and AUPRO 0.975-0.995 on every layout; a misread or misaligned mask fails
    assert metrics["image_auroc"] > 0.95 and metrics["pixel_auroc"] > 0.95 and metrics["pixel_aupro"] > 0.9, metrics
    assert result["config"]["dataset"]["root"] == str(tmp_path / "data")


def test_run_without_masks_stores_null(tmp_path, capsys):
    make_bmad(tmp_path)
    code = main(["run", "--dataset", "bmad", "--dataset.root", str(tmp_path), "--dataset.category", "Chest",
                 *TINY_RUN, "--out", str(tmp_path / "runs")])
    assert code == 0, capsys.readouterr().err
    (run,) = list((tmp_path / "runs").iterdir())
    metrics = json.loads((run / "result.json").read_text())["metrics"]
    assert metrics["pixel_auroc"] is None and metrics["pixel_aupro"] is None
    assert "null" in capsys.readouterr().out


def test_data_check(tmp_path, capsys):
    make_bmad(tmp_path)
    assert main(["data", "check", "bmad", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Brain" in out and "Chest" in out and "no problems" in out
    (tmp_path / "Liver" / "test" / "Ungood" / "label" / "tU000.png").unlink()
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "Brain" / "test" / "Ungood" / "anomaly_mask" / "tU001.png")
    (tmp_path / "Chest" / "train" / "good" / "003.png").write_bytes(b"not a png")
    assert main(["data", "check", "bmad", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out.replace("\n", "")
    assert "tU000.png: no mask" in out and "mask is 5x5" in out and "003.png: not a readable image" in out
    assert main(["data", "check", "bmad", "--root", str(tmp_path / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_make_textures_reads_as_mvtec(tmp_path, capsys):
    from benchbox.textures import make_textures

    counts = make_textures(tmp_path, size=32, n_train=6, n_test_good=3, n_test_bad=4, names=("brick",))
    assert counts["brick"]["test/hole"] == 1
    s = dataset("mvtec", tmp_path, category="brick", image_size=0).load(0)
    assert s.train.shape[1:] == (1, 32, 32) and len(s.test) == 7
    per_image = s.test.masks.flatten(1).sum(1)
    assert (per_image[s.test.labels == 1] > 0).all() and (per_image[s.test.labels == 0] == 0).all()
    assert main(["data", "make-textures", str(tmp_path / "cli"), "--size", "32", "--n-train", "2",
                 "--n-test-good", "1", "--n-test-bad", "4"]) == 0
    assert sorted(p.name for p in (tmp_path / "cli").iterdir()) == ["README.txt", "brick", "grass", "gravel"]


def test_run_with_bad_root_prints_one_line(tmp_path, capsys):
    make_mvtec(tmp_path)
    bad = tmp_path / "bottle" / "train" / "good" / "002.png"
    bad.write_bytes(b"\x89PNG broken")
    code = main(["run", "--dataset", "mvtec", "--dataset.root", str(tmp_path), *TINY_RUN, "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "stage 'load data' failed" in err and str(bad) in err.replace("\n", "")
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())
