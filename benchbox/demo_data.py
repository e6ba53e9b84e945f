"""A BMAD-layout demo set: crops of two real medical images, with SYNTHETIC lesions.

    benchbox data make-demo bmad OUT [--size 256] [--n-train 200] [--n-valid 20] [--n-test 40] [--seed 0]

BMAD (the main medical benchmark) must be downloaded by hand. This set lets the ``bmad`` plugin
run end to end offline, from two photographs that ship inside scikit-image (no download):

* ``Histopathology``: ``skimage.data.immunohistochemistry()`` (``ihc.png``, 512 x 512 RGB): colonic
  glands, FHL2 protein revealed with DAB (brown), hematoxylin counterstain (blue nuclei). "No known
  copyright restrictions". Real BMAD Histopathology is Camelyon16 H&E: same domain, other stain.
* ``Retina_fundus``: ``skimage.data.retina()`` (``retina.jpg``, 1411 x 1411 RGB), a fundus photograph
  of a normal left eye (Haggstrom 2014, CC0). BMAD has no fundus category (its retina sets are OCT);
  the name says what the images are.

Every image is a real crop of the photograph at native resolution; what is *not* real is every
anomaly. Each ``Ungood`` image is a normal crop with one lesion **painted in by this module**:

* Histopathology: ``tumour_cells`` (a cluster of enlarged, crowded, dark nuclei on a pale lilac
  ground), ``necrosis`` (a bleached pink region with small dark debris), ``haemorrhage`` (packed
  red discs, like extravasated red blood cells);
* Retina_fundus: ``haemorrhage`` (a dark red blot), ``exudates`` (a cluster of small bright yellow
  spots), ``cotton_wool`` (a soft pale patch).

Lesion outlines are irregular (a radius that varies with the angle) and their edges are feathered
*inward*, so the mask (``label/<name>.png``) is exactly the set of pixels the painting changed:
outside it an ``Ungood`` image equals the normal crop it was made from. Normal crops get a random
flip / rotation (histology: any of the 8; fundus: left-right and up-down flips).

No test pixel is ever seen in training: train and valid crops come from one half of each
photograph (the top half of the slide; the upper half of the fundus disc, inside the field of
view), test crops from the other half. Valid and test each hold ``good`` and ``Ungood`` images.

The layout is BMAD's pixel-labelled one (as its Brain, Liver and Retina_RESC)::

    <category>/train/good/img/0000.png
    <category>/{valid,test}/good/img/0000.png
    <category>/{valid,test}/Ungood/img/0000.png
    <category>/{valid,test}/Ungood/label/0000.png     (0 / 255, same name as the image)

plus ``README.txt`` (what the set is, and that its lesions are synthetic) and ``lesions.csv`` (one
row per image: split, label, lesion kind, crop position, transform, lesion pixels) at the top.
Generation is a pure function of the options: the same seed writes the same bytes. The folder is
assembled under a hidden name beside ``OUT`` and renamed into place, so nothing is half-written.
"""

from __future__ import annotations

import csv
import functools
import io
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .errors import ConfigError

CATEGORIES = ("Histopathology", "Retina_fundus")
LESIONS = {
    "Histopathology": ("tumour_cells", "necrosis", "haemorrhage"),
    "Retina_fundus": ("haemorrhage", "exudates", "cotton_wool"),
}
MIN_SIZE = 32


# --------------------------------------------------------------------------- the photographs
@dataclass(frozen=True)
class Photo:
    """A photograph as float32 RGB in [0, 1] and where crops of each half may lie."""

    image: np.ndarray
    valid: np.ndarray  # bool H x W: pixels a crop may cover (the field of view)
    split_row: int  # train / valid crops lie above this row, test crops below it
    dihedral: bool  # any of the 8 flips / rotations (histology) or only flips (fundus)


@functools.lru_cache(maxsize=len(CATEGORIES))
def _photo(category: str) -> Photo:
    """The photograph of a category (read-only arrays, cached: the fundus's field of view takes a moment)."""
    from skimage import data

    if category == "Histopathology":
        img = _read_only(np.asarray(data.immunohistochemistry(), dtype=np.float32) / 255.0)
        return Photo(img, _read_only(np.ones(img.shape[:2], bool)), img.shape[0] // 2, True)
    if category == "Retina_fundus":
        img = _read_only(np.asarray(data.retina(), dtype=np.float32) / 255.0)
        fov = _read_only(_field_of_view(img))
        rows = np.nonzero(fov.any(1))[0]
        return Photo(img, fov, int(rows.mean().round()), False)
    raise ConfigError(f"make-demo: unknown category {category!r}; expected one of {', '.join(CATEGORIES)}")


def _read_only(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def _field_of_view(img: np.ndarray) -> np.ndarray:
    """The lit disc of a fundus photograph: bright enough, then shrunk 6 px off its dark rim."""
    from scipy import ndimage

    lit = img.max(axis=2) > 0.12
    lit = ndimage.binary_fill_holes(ndimage.binary_opening(lit, iterations=3))
    return ndimage.binary_erosion(lit, iterations=6)


def _max_size(photo: Photo) -> int:
    """The largest crop side that fits inside the field of view in each half."""
    lo, hi = MIN_SIZE, min(photo.split_row, photo.image.shape[0] - photo.split_row)
    while lo < hi:  # a side that fits in both halves fits for every smaller side
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if all(_positions(photo, mid, half) is not None for half in (0, 1)) else (lo, mid - 1)
    return lo


def _positions(photo: Photo, size: int, half: int) -> np.ndarray | None:
    """Top-left corners (row, col) of every ``size`` crop wholly inside the valid area of a half."""
    top0, top1 = (0, photo.split_row - size) if half == 0 else (photo.split_row, photo.image.shape[0] - size)
    if top1 < top0 or size > photo.image.shape[1]:
        return None
    ii = np.pad(photo.valid.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    window = ii[size:, size:] - ii[:-size, size:] - ii[size:, :-size] + ii[:-size, :-size]  # [r, c]: top-left r, c
    ok = window == size * size
    ok[:top0] = False
    ok[top1 + 1 :] = False
    found = np.argwhere(ok)
    return found if len(found) else None


_TRANSFORMS = ("id", "rot90", "rot180", "rot270", "flip", "flip-rot90", "flip-rot180", "flip-rot270")
_FLIPS = ("id", "flip-lr", "flip-ud", "flip-lr-ud")


def _crop(photo: Photo, positions: np.ndarray, size: int, rng: np.random.Generator) -> tuple[np.ndarray, int, int, str]:
    """A random crop at native resolution with a random flip / rotation: (crop, top, left, transform)."""
    top, left = (int(v) for v in positions[rng.integers(len(positions))])
    x = photo.image[top : top + size, left : left + size]
    if photo.dihedral:
        k = int(rng.integers(8))
        x = np.rot90(x[:, ::-1] if k >= 4 else x, k % 4)
        name = _TRANSFORMS[k]
    else:
        k = int(rng.integers(4))
        x = x[:, ::-1] if k & 1 else x
        x = x[::-1] if k & 2 else x
        name = _FLIPS[k]
    return np.array(x, dtype=np.float32, copy=True), top, left, name


# --------------------------------------------------------------------------- synthetic lesions
def _outline(size: int, rng: np.random.Generator, radius: tuple[float, float]) -> np.ndarray:
    """An irregular blob: a radius that varies with the angle (harmonics 2-5), centred in the crop."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    cy, cx = rng.uniform(0.3, 0.7, 2) * size
    dy, dx = yy - cy, xx - cx
    theta = np.arctan2(dy, dx)
    r = np.full_like(theta, rng.uniform(*radius) * size)
    for k in range(2, 6):
        r *= 1.0 + rng.uniform(-0.12, 0.12) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    region = np.hypot(dy, dx) <= r
    region[int(cy), int(cx)] = True  # never empty, however small the crop
    return region


def _discs(region: np.ndarray, rng: np.random.Generator, count: int, radius: tuple[float, float],
           elongation: float = 1.0) -> np.ndarray:
    """``count`` ellipses (nuclei, cells, spots) centred at random pixels of ``region``, clipped to it."""
    size = region.shape[0]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cells = np.argwhere(region)
    out = np.zeros_like(region)
    for cy, cx in cells[rng.integers(len(cells), size=count)]:
        a = rng.uniform(*radius)
        b = a * rng.uniform(1.0, elongation)
        t = rng.uniform(0, np.pi)
        u = (yy - cy) * np.cos(t) + (xx - cx) * np.sin(t)
        v = -(yy - cy) * np.sin(t) + (xx - cx) * np.cos(t)
        out |= (u / b) ** 2 + (v / a) ** 2 <= 1.0
    return out & region


def _feather(region: np.ndarray, width: float) -> np.ndarray:
    """Opacity rising from the outline inward over ``width`` px: > 0 on every region pixel, 0 outside."""
    from scipy import ndimage

    return np.clip(ndimage.distance_transform_edt(region) / max(width, 1.0), 0.0, 1.0).astype(np.float32)


def _grain(size: int, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Smooth noise with unit standard deviation (texture inside a lesion)."""
    from scipy import ndimage

    g = ndimage.gaussian_filter(rng.standard_normal((size, size)).astype(np.float32), sigma)
    return g / (g.std() + 1e-8)


def _paint(x: np.ndarray, colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return x * (1.0 - alpha[..., None]) + colour * alpha[..., None]


def _colour(rgb: tuple[float, float, float], size: int, rng: np.random.Generator, amount: float) -> np.ndarray:
    return np.asarray(rgb, np.float32) * (1.0 + amount * _grain(size, rng, 2.0)[..., None])


def _count(region: np.ndarray, coverage: float, radius: float) -> int:
    return max(1, int(coverage * region.sum() / (np.pi * radius * radius)))


def _tumour_cells(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    s = x.shape[0]
    region = _outline(s, rng, (0.14, 0.26))
    y = _paint(x, _colour((0.74, 0.64, 0.78), s, rng, 0.04), 0.6 * _feather(region, 0.03 * s))
    r = max(1.5, 0.03 * s)
    nuclei = _discs(region, rng, _count(region, 0.7, 1.3 * r), (0.8 * r, 1.2 * r), elongation=1.6)
    y = _paint(y, _colour((0.30, 0.26, 0.52), s, rng, 0.15), 0.85 * nuclei.astype(np.float32))
    return y, region


def _necrosis(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    s = x.shape[0]
    region = _outline(s, rng, (0.14, 0.28))
    y = _paint(x, _colour((0.93, 0.84, 0.86), s, rng, 0.03), 0.85 * _feather(region, 0.05 * s))
    r = max(1.0, 0.008 * s)
    debris = _discs(region, rng, _count(region, 0.06, r), (0.7 * r, 1.4 * r))
    return _paint(y, np.asarray((0.30, 0.22, 0.35), np.float32), 0.85 * debris.astype(np.float32)), region


def _red_cells(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    s = x.shape[0]
    region = _outline(s, rng, (0.10, 0.22))
    y = _paint(x, _colour((0.86, 0.45, 0.42), s, rng, 0.05), 0.7 * _feather(region, 0.03 * s))
    r = max(1.0, 0.015 * s)
    cells = _discs(region, rng, _count(region, 0.8, r), (0.85 * r, 1.15 * r), elongation=1.2)
    return _paint(y, _colour((0.78, 0.16, 0.20), s, rng, 0.08), 0.85 * cells.astype(np.float32)), region


def _haemorrhage(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    s = x.shape[0]
    region = _outline(s, rng, (0.06, 0.16))
    return _paint(x, _colour((0.40, 0.07, 0.04), s, rng, 0.10), 0.92 * _feather(region, 0.04 * s)), region


def _exudates(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    s = x.shape[0]
    cluster = _outline(s, rng, (0.12, 0.22))
    spots = _discs(cluster, rng, int(rng.integers(6, 19)), (max(1.0, 0.008 * s), max(1.5, 0.022 * s)), 1.5)
    return _paint(x, _colour((0.97, 0.88, 0.42), s, rng, 0.04), 0.9 * _feather(spots, 0.006 * s)), spots


def _cotton_wool(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    s = x.shape[0]
    region = _outline(s, rng, (0.07, 0.15))
    return _paint(x, _colour((0.95, 0.87, 0.76), s, rng, 0.06), 0.75 * _feather(region, 0.035 * s)), region


PAINTERS: dict[tuple[str, str], Callable[[np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]] = {
    ("Histopathology", "tumour_cells"): _tumour_cells,
    ("Histopathology", "necrosis"): _necrosis,
    ("Histopathology", "haemorrhage"): _red_cells,
    ("Retina_fundus", "haemorrhage"): _haemorrhage,
    ("Retina_fundus", "exudates"): _exudates,
    ("Retina_fundus", "cotton_wool"): _cotton_wool,
}


def paint_lesion(x: np.ndarray, category: str, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic lesion into the RGB crop ``x`` (float in [0, 1]): (image, bool mask).

    The mask is the region painted; every pixel outside it is returned unchanged.
    """
    try:
        painter = PAINTERS[(category, kind)]
    except KeyError:
        raise ConfigError(f"make-demo: no lesion {kind!r} for {category}; expected one of "
                          f"{', '.join(LESIONS.get(category, ()))}") from None
    y, mask = painter(x, rng)
    return np.where(mask[..., None], np.clip(y, 0.0, 1.0), x).astype(np.float32), mask


# --------------------------------------------------------------------------- the set
@dataclass(frozen=True)
class DemoImage:
    """One image of the set. ``base`` is the normal crop an Ungood image was painted on."""

    category: str
    split: str  # train, valid or test
    label: int  # 0 good, 1 Ungood
    name: str  # file name, e.g. 0007.png
    image: np.ndarray  # H x W x 3 float32 in [0, 1]
    mask: np.ndarray | None  # H x W bool for Ungood images
    base: np.ndarray
    kind: str  # "good" or the lesion kind
    top: int
    left: int
    transform: str

    @property
    def folder(self) -> str:
        return f"{self.category}/{self.split}/{'Ungood' if self.label else 'good'}"


def iter_demo(category: str, size: int = 256, n_train: int = 200, n_valid: int = 20, n_test: int = 40,
              seed: int = 0) -> Iterator[DemoImage]:
    """Every image of one category, in file order. Each split has its own random stream, so
    changing one count never changes the images of another split."""
    photo = _photo(category)
    halves = {0: _positions(photo, size, 0), 1: _positions(photo, size, 1)}
    if halves[0] is None or halves[1] is None:
        raise ConfigError(f"make-demo: --size {size} does not fit {category}: crops of at most "
                          f"{_max_size(photo)} px fit inside each half of its photograph")
    kinds = LESIONS[category]
    plan = (("train", 0, n_train, 0), ("valid", 0, n_valid, 0), ("valid", 1, n_valid, 0),
            ("test", 0, n_test, 1), ("test", 1, n_test, 1))
    for index, (split, label, n, half) in enumerate(plan):
        rng = np.random.default_rng([seed, CATEGORIES.index(category), index])
        for i in range(n):
            base, top, left, transform = _crop(photo, halves[half], size, rng)
            if label:
                kind = kinds[i % len(kinds)]
                image, mask = paint_lesion(base, category, kind, rng)
            else:
                kind, image, mask = "good", base, None
            yield DemoImage(category, split, label, f"{i:04d}.png", image, mask, base, kind, top, left, transform)


def _png(path: Path, x: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.round(np.clip(x, 0.0, 1.0) * 255).astype(np.uint8) if x.dtype != bool else x.astype(np.uint8) * 255
    Image.fromarray(arr, mode="RGB" if arr.ndim == 3 else "L").save(path)


def _check(out: Path, size: int, n_train: int, n_valid: int, n_test: int, categories: tuple[str, ...]) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"make-demo: {out} already exists and is not an empty folder (expected a new folder)")
    if size < MIN_SIZE:
        raise ConfigError(f"make-demo: --size must be >= {MIN_SIZE}, got {size}")
    for flag, value, least in (("--n-train", n_train, 1), ("--n-valid", n_valid, 0), ("--n-test", n_test, 1)):
        if value < least:
            raise ConfigError(f"make-demo: {flag} must be >= {least}, got {value}")
    unknown = [c for c in categories if c not in CATEGORIES]
    if unknown or not categories:
        raise ConfigError(f"make-demo: unknown category {unknown[0] if unknown else ''!r}; "
                          f"expected one of {', '.join(CATEGORIES)}")


def make_bmad_demo(out: Path, size: int = 256, n_train: int = 200, n_valid: int = 20, n_test: int = 40,
                   seed: int = 0, categories: tuple[str, ...] = CATEGORIES) -> dict[str, dict[str, int]]:
    """Write the demo set under ``out`` (a new folder); returns per category the images per folder.

    ``n_valid`` and ``n_test`` are per label: valid holds ``n_valid`` good and ``n_valid`` Ungood.
    """
    out = Path(out)
    _check(out, size, n_train, n_valid, n_test, tuple(categories))
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    counts: dict[str, dict[str, int]] = {}
    rows = io.StringIO()
    table = csv.writer(rows, lineterminator="\n")
    table.writerow(["category", "split", "label", "file", "lesion", "crop_top", "crop_left", "transform",
                    "lesion_pixels"])
    try:
        for category in categories:
            counts[category] = {}
            for item in iter_demo(category, size, n_train, n_valid, n_test, seed):
                _png(tmp / item.folder / "img" / item.name, item.image)
                if item.mask is not None:
                    _png(tmp / item.folder / "label" / item.name, item.mask)
                key = item.folder.split("/", 1)[1]
                counts[category][key] = counts[category].get(key, 0) + 1
                table.writerow([category, item.split, "Ungood" if item.label else "good", f"{item.folder}/img/{item.name}",
                                item.kind, item.top, item.left, item.transform,
                                int(item.mask.sum()) if item.mask is not None else 0])
        (tmp / "lesions.csv").write_text(rows.getvalue())
        (tmp / "README.txt").write_text(_readme(size, n_train, n_valid, n_test, seed, counts))
        if out.exists():
            out.rmdir()  # empty (checked above)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return counts


def _readme(size: int, n_train: int, n_valid: int, n_test: int, seed: int, counts: dict[str, dict[str, int]]) -> str:
    lines = "\n".join(f"  {c}: " + ", ".join(f"{k} {v}" for k, v in n.items()) for c, n in counts.items())
    first = next(iter(counts))
    return f"""benchbox BMAD-layout demo set (benchbox data make-demo bmad)

THE LESIONS IN THIS SET ARE SYNTHETIC. Every image is a real crop of a real medical photograph, but
every anomaly ("Ungood") was painted in by benchbox (benchbox/demo_data.py). Numbers measured here
show that the BMAD path of benchbox works; they are not BMAD results and say nothing clinical.

Sources (bundled with scikit-image, no download):
  Histopathology  skimage.data.immunohistochemistry() (ihc.png, 512x512): colonic glands, IHC (DAB,
                  FHL2) with hematoxylin counterstain; acquired at the Center for Microscopy And
                  Molecular Imaging (CMMI); no known copyright restrictions. BMAD's Histopathology
                  is Camelyon16 H&E (same domain, other stain).
  Retina_fundus   skimage.data.retina() (retina.jpg, 1411x1411): fundus photograph of a normal left
                  eye, Haggstrom (2014), CC0. Not a BMAD category (BMAD's retina sets are OCT).

Crops: {size} x {size} px at native resolution. train and valid crops come from one half of each
photograph (top half of the slide; upper half of the fundus field of view), test crops from the
other half: no test pixel appears in train or valid. Histopathology crops get any of the 8
flips/rotations, fundus crops left-right and up-down flips.

Synthetic lesions, one per Ungood image, kinds in turn:
  Histopathology  tumour_cells (crowded enlarged dark nuclei on a pale lilac ground), necrosis
                  (bleached pink region with small dark debris), haemorrhage (packed red discs)
  Retina_fundus   haemorrhage (dark red blot), exudates (small bright yellow spots), cotton_wool
                  (soft pale patch)
Outlines are irregular; edges are feathered inward, so label/<name>.png (0/255) is exactly the set of
pixels that differ from the normal crop the lesion was painted on. lesions.csv lists every image
(split, label, lesion kind, crop position in the photograph, transform, lesion pixels).

Layout (BMAD's pixel-labelled layout, as its Brain / Liver / Retina_RESC):
  <category>/train/good/img/*.png
  <category>/{{valid,test}}/good/img/*.png
  <category>/{{valid,test}}/Ungood/img/*.png  and  Ungood/label/*.png
Counts (valid and test: n good + n Ungood):
{lines}
Options: size={size} n_train={n_train} n_valid={n_valid} n_test={n_test} seed={seed} (same options, same bytes).

Read it with:
  benchbox data check bmad --root <this folder>
  benchbox run --generator ae --policy ppo --detector transformer --dataset bmad --dataset.root <this folder> --dataset.category {first}
"""
