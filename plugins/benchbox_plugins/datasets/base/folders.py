"""Folder layouts of image anomaly datasets, read into one :class:`Layout` per category.

A scan never decodes pixels: it lists files, pairs anomalous images with their masks and records
every problem it finds as one line naming the path and what was expected. ``benchbox data check``
prints all of them; a dataset's ``load`` raises the first as a :class:`DataError`.

Layouts read here (the plugins say which they use):

* MVTec style (MVTec AD, PKU-GoodsAD, the textures set)::

      <category>/train/good/*.png
      <category>/test/good/*.png
      <category>/test/<defect>/*.png
      <category>/ground_truth/<defect>/<name>_mask.png   (or <name>.png)

* BMAD::

      <category>/train/good/*.png
      <category>/{valid,test}/{good,Ungood}/*.png                   (no pixel labels), or
      <category>/{valid,test}/{good,Ungood}/img/*.png
      <category>/{valid,test}/{good,Ungood}/{label,anomaly_mask}/*.png

anomalib parses the same layouts, but pairs images and masks by sorted position and fails with
an exception rather than a list of problems, so the pairing here is by file name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from benchbox.errors import DataError

from .imageio import IMAGE_SUFFIXES

MASK_DIRS = ("label", "anomaly_mask")  # BMAD's pixel-label folder, old and new name


@dataclass(frozen=True)
class Sample:
    image: Path
    label: int  # 0 normal, 1 anomalous
    mask: Path | None = None  # None: no mask file (all-zero where the set has masks)
    kind: str = "good"  # defect type, or "good"


@dataclass
class Layout:
    """The files of one category. ``val`` is a validation split the dataset ships (BMAD)."""

    name: str
    category: str
    folder: Path
    train: list[Sample] = field(default_factory=list)
    val: list[Sample] = field(default_factory=list)
    test: list[Sample] = field(default_factory=list)
    has_masks: bool = False
    problems: list[str] = field(default_factory=list)

    def raise_first(self) -> None:
        if self.problems:
            more = f" (and {len(self.problems) - 1} more problems; run: benchbox data check {self.name} --root ...)" \
                if len(self.problems) > 1 else ""
            raise DataError(f"{self.name}: {self.problems[0]}{more}")


def image_files(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (any case of suffix), sorted; hidden files skipped."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)


def subfolders(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def find_mask(folder: Path, stem: str) -> Path | None:
    """``<stem>_mask.*`` or ``<stem>.*`` in ``folder``."""
    for candidate in (f"{stem}_mask", stem):
        for suffix in (".png", ".PNG", ".bmp", ".tif", ".tiff", ".jpg", ".JPG"):
            path = folder / f"{candidate}{suffix}"
            if path.is_file():
                return path
    return None


def category_folder(root: Path, category: str, name: str, expected: str) -> Path:
    """``root/category``, or a one-line error naming what the root holds."""
    if not root.is_dir():
        raise DataError(f"{name}: data root {root} is not a folder (expected {expected})")
    folder = root / category
    if not folder.is_dir():
        found = ", ".join(subfolders(root)) or "nothing"
        raise DataError(f"{name}: {folder} is missing (expected {expected}; {root} holds: {found})")
    return folder


def _normals(layout: Layout, folder: Path, what: str) -> list[Sample]:
    files = image_files(folder)
    if not files:
        layout.problems.append(f"{folder}: no {what} (expected image files such as 000.png)")
    return [Sample(p, 0) for p in files]


def train_categories(root: Path) -> list[str]:
    """Category folders of a root (MVTec style, BMAD): those with a ``train/`` folder."""
    return [c for c in subfolders(root) if (root / c / "train").is_dir()]


def scan_mvtec(root: Path, category: str, name: str, masks: str = "required") -> Layout:
    """MVTec-style category. ``masks``: "required" (every anomaly has one) or "optional"
    (masks are used when the category has a ``ground_truth`` folder, then required)."""
    folder = category_folder(root, category, name, "<category>/train/good, <category>/test/<defect>")
    layout = Layout(name, category, folder)
    layout.train = _normals(layout, folder / "train" / "good", "normal training images")
    test_dir, gt_dir = folder / "test", folder / "ground_truth"
    layout.has_masks = masks == "required" or gt_dir.is_dir()
    if not test_dir.is_dir():
        layout.problems.append(f"{test_dir}: missing (expected test/good and test/<defect> folders)")
        return layout
    for kind in subfolders(test_dir):
        for img in image_files(test_dir / kind):
            if kind == "good":
                layout.test.append(Sample(img, 0))
                continue
            mask = find_mask(gt_dir / kind, img.stem) if layout.has_masks else None
            if layout.has_masks and mask is None:
                layout.problems.append(f"{img}: no mask (expected {gt_dir / kind / (img.stem + '_mask.png')})")
            layout.test.append(Sample(img, 1, mask, kind))
    _check_test(layout, test_dir)
    return layout


def _check_test(layout: Layout, test_dir: Path) -> None:
    labels = {s.label for s in layout.test}
    if 0 not in labels:
        layout.problems.append(f"{test_dir}: no normal test images (expected good/*.png)")
    if 1 not in labels:
        layout.problems.append(f"{test_dir}: no anomalous test images (expected a defect folder beside good/)")


def _bmad_split(layout: Layout, split_dir: Path) -> list[Sample]:
    out: list[Sample] = []
    for kind, label in (("good", 0), ("Ungood", 1)):
        base = split_dir / kind
        if not base.is_dir():
            layout.problems.append(f"{base}: missing (expected {split_dir.name}/good and {split_dir.name}/Ungood)")
            continue
        img_dir = base / "img"
        if not img_dir.is_dir():
            out += [Sample(p, label, None, kind) for p in image_files(base)]
            continue
        mask_dir = next((base / m for m in MASK_DIRS if (base / m).is_dir()), None)
        for img in image_files(img_dir):
            mask = find_mask(mask_dir, img.stem) if mask_dir else None
            if label == 1 and mask is None:
                where = mask_dir or base / "label"
                layout.problems.append(f"{img}: no mask (expected {where / (img.stem + '.png')})")
            out.append(Sample(img, label, mask, kind))
    return out


def scan_bmad(root: Path, category: str, name: str) -> Layout:
    folder = category_folder(root, category, name, "<category>/train/good, <category>/{valid,test}/{good,Ungood}")
    layout = Layout(name, category, folder)
    train_dir = folder / "train" / "good"
    layout.train = _normals(layout, train_dir / "img" if (train_dir / "img").is_dir() else train_dir,
                            "normal training images")
    if (folder / "valid").is_dir():
        layout.val = _bmad_split(layout, folder / "valid")
    layout.test = _bmad_split(layout, folder / "test")
    layout.has_masks = (folder / "test" / "Ungood" / "img").is_dir()
    _check_test(layout, folder / "test")
    return layout


def resolve_root(root: str, name: str, subdir: str, expected: str) -> Path:
    """``--dataset.root``, else ``$BENCHBOX_DATA/<subdir>``, else a one-line error."""
    if root:
        return Path(root).expanduser()
    base = os.environ.get("BENCHBOX_DATA")
    if base:
        return Path(base).expanduser() / subdir
    raise DataError(f"{name}: no data root: pass --dataset.root DIR or set BENCHBOX_DATA "
                    f"(read from $BENCHBOX_DATA/{subdir}; expected {expected})")
