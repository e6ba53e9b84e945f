"""VisA (12 objects) from its raw release: split_csv/1cls.csv, JPEG images, non-binary PNG masks."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from benchbox.errors import DataError
from benchbox_plugins.datasets.base.folderdataset import FolderConfig, FolderDataset
from benchbox_plugins.datasets.base.folders import Layout, Sample

CATEGORIES = ("candle", "capsules", "cashew", "chewinggum", "fryum", "macaroni1", "macaroni2",
              "pcb1", "pcb2", "pcb3", "pcb4", "pipe_fryum")
SPLIT_CSV = Path("split_csv") / "1cls.csv"
COLUMNS = ("object", "split", "label", "image", "mask")


def read_split_csv(root: Path) -> list[dict[str, str]]:
    path = root / SPLIT_CSV
    if not root.is_dir():
        raise DataError(f"visa: data root {root} is not a folder (expected the raw VisA release with {SPLIT_CSV})")
    if not path.is_file():
        raise DataError(f"visa: {path} is missing (expected the raw VisA release: {SPLIT_CSV} beside the object folders)")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ())[:5] != COLUMNS:
            raise DataError(f"visa: {path} has columns {reader.fieldnames}; expected {','.join(COLUMNS)}")
        return [{k: (row.get(k) or "").strip() for k in COLUMNS} for row in reader]


def _under(root: Path, rel: str, path_csv: Path, problems: list[str]) -> Path | None:
    path = (root / rel).resolve()
    if not path.is_relative_to(root.resolve()):
        problems.append(f"{path_csv}: path {rel!r} leaves the data root")
        return None
    if not path.is_file():
        problems.append(f"{root / rel}: listed in {path_csv} but missing")
        return None
    return root / rel


def scan_visa(root: Path, category: str) -> Layout:
    rows = read_split_csv(root)
    layout = Layout("visa", category, root / category, has_masks=True)
    mine = [r for r in rows if r["object"] == category]
    if not mine:
        objects = sorted({r["object"] for r in rows})
        raise DataError(f"visa: {root / SPLIT_CSV} lists no rows for object {category!r} (it lists: {', '.join(objects)})")
    where = root / SPLIT_CSV
    for r in mine:
        if r["split"] not in ("train", "test") or r["label"] not in ("normal", "anomaly"):
            layout.problems.append(f"{where}: row {r['image']!r} has split {r['split']!r} / label {r['label']!r} "
                                   "(expected train/test and normal/anomaly)")
            continue
        image = _under(root, r["image"], where, layout.problems)
        if image is None:
            continue
        label = int(r["label"] == "anomaly")
        mask = None
        if label and r["split"] == "test":
            if not r["mask"]:
                layout.problems.append(f"{image}: no mask (expected a mask path in {where})")
            else:
                mask = _under(root, r["mask"], where, layout.problems)
        if r["split"] == "train":
            if label:
                layout.problems.append(f"{image}: anomalous image in the training split of {where}")
                continue
            layout.train.append(Sample(image, 0))
        else:
            layout.test.append(Sample(image, label, mask, "anomaly" if label else "good"))
    if not layout.train:
        layout.problems.append(f"{where}: no normal training images for {category!r} (expected rows with split=train)")
    if {s.label for s in layout.test} != {0, 1}:
        layout.problems.append(f"{where}: the test rows of {category!r} need both normal and anomaly labels")
    return layout


class VisA(FolderDataset):
    """VisA from --dataset.root (raw release: split_csv/1cls.csv, <object>/Data/Images, Data/Masks)."""

    subdir = "visa"
    expected = "split_csv/1cls.csv and <object>/Data/{Images,Masks}"

    @dataclass
    class Config(FolderConfig):
        category: str = "candle"
        """Object: candle, capsules, cashew, chewinggum, fryum, macaroni1/2, pcb1-4, pipe_fryum."""

    def scan(self, root: Path, category: str) -> Layout:
        return scan_visa(root, category)

    def categories(self, root: Path) -> list[str]:
        return sorted({r["object"] for r in read_split_csv(root)})
