"""A real-image, industrial-style anomaly set built from scikit-image's bundled textures.

``brick``, ``grass`` and ``gravel`` (512 x 512 grayscale photographs, CC0) ship with
scikit-image. For each texture:

* normal training crops come from the top half of the photograph, test crops (normal and
  defective) from the bottom half, so no test pixel was ever seen in training;
* crops are ``size`` pixels square at random positions, mirrored left-right at random;
* each anomalous test crop gets one defect, drawn in turn from:

  - ``scratch``: a straight line 2-3 px wide at a random angle, much brighter or darker;
  - ``hole``: a filled disk of near-black, slightly noisy pixels (radius 6-12% of the crop);
  - ``blob``: an ellipse whose intensity is shifted by +-0.35 (a stain or a bulge);
  - ``patch``: a square of a *different* texture pasted in (foreign material);

  and its mask is exactly the region the defect was drawn into.

The set is written in the MVTec AD layout (``<texture>/train/good``, ``test/good``,
``test/<defect>``, ``ground_truth/<defect>/<name>_mask.png``) and read by the ``mvtec`` plugin.
Generation is a pure function of the seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

TEXTURES = ("brick", "grass", "gravel")
DEFECTS = ("scratch", "hole", "blob", "patch")


def texture(name: str) -> np.ndarray:
    """The bundled photograph as float32 in [0, 1]."""
    from skimage import data

    img = getattr(data, name)()
    return (np.asarray(img, dtype=np.float32) / 255.0).clip(0, 1)


def _crop(img: np.ndarray, rows: tuple[int, int], size: int, rng: np.random.Generator) -> np.ndarray:
    top = int(rng.integers(rows[0], rows[1] - size + 1))
    left = int(rng.integers(0, img.shape[1] - size + 1))
    out = img[top : top + size, left : left + size].copy()
    return out[:, ::-1].copy() if rng.random() < 0.5 else out


def _scratch(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    size = x.shape[0]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    cy, cx = rng.uniform(0.3, 0.7, 2) * size
    dist = np.abs((yy - cy) * np.cos(angle) - (xx - cx) * np.sin(angle))
    along = np.abs((yy - cy) * np.sin(angle) + (xx - cx) * np.cos(angle))
    return (dist <= rng.uniform(1.0, 1.6)) & (along <= rng.uniform(0.25, 0.4) * size)


def _ellipse(size: int, rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cy, cx = rng.uniform(0.25, 0.75, 2) * size
    ry, rx = rng.uniform(lo, hi, 2) * size
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def inject(x: np.ndarray, defect: str, other: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One defect into crop ``x``; ``other`` is a crop of a different texture (for ``patch``).

    Returns (defective crop, mask) where the mask is exactly the region the defect was drawn into
    (a pasted patch is foreign material as a whole, even where a pixel happens to match).
    """
    size = x.shape[0]
    y = x.copy()
    if defect == "scratch":
        region = _scratch(x, rng)
        y[region] = 0.95 if x.mean() < 0.5 else 0.05
    elif defect == "hole":
        r = rng.uniform(0.06, 0.12)
        region = _ellipse(size, rng, r, r + 1e-3)
        y[region] = rng.uniform(0.0, 0.06, int(region.sum()))
    elif defect == "blob":
        region = _ellipse(size, rng, 0.08, 0.18)
        y[region] = y[region] + (0.35 if rng.random() < 0.5 else -0.35)
    elif defect == "patch":
        side = int(rng.uniform(0.2, 0.35) * size)
        top, left = (int(v) for v in rng.integers(0, size - side + 1, 2))
        region = np.zeros_like(x, dtype=bool)
        region[top : top + side, left : left + side] = True
        y[region] = other[top : top + side, left : left + side][region[top : top + side, left : left + side]]
    else:
        raise ValueError(f"unknown defect {defect!r}; expected one of {', '.join(DEFECTS)}")
    return y.clip(0, 1), region


def _to_u8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


def _save(path: Path, x: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_to_u8(x), mode="L").save(path)


def make_textures(out: Path, size: int = 128, n_train: int = 60, n_test_good: int = 20, n_test_bad: int = 40,
                  seed: int = 0, names: tuple[str, ...] = TEXTURES) -> dict[str, dict[str, int]]:
    """Write the set under ``out``; returns per texture the number of images per folder."""
    counts: dict[str, dict[str, int]] = {}
    for t_index, name in enumerate(names):
        rng = np.random.default_rng(seed * 1009 + t_index)
        img = texture(name)
        half = img.shape[0] // 2
        if size > min(half, img.shape[1]):
            raise ValueError(f"crop size {size} exceeds the {half}-pixel half of the {name} photograph")
        foreign = texture(names[(t_index + 1) % len(names)] if len(names) > 1 else TEXTURES[(TEXTURES.index(name) + 1) % 3])
        base = out / name
        for i in range(n_train):
            _save(base / "train" / "good" / f"{i:03d}.png", _crop(img, (0, half), size, rng))
        for i in range(n_test_good):
            _save(base / "test" / "good" / f"{i:03d}.png", _crop(img, (half, img.shape[0]), size, rng))
        per_defect = dict.fromkeys(DEFECTS, 0)
        for i in range(n_test_bad):
            defect = DEFECTS[i % len(DEFECTS)]
            crop = _crop(img, (half, img.shape[0]), size, rng)
            other = _crop(foreign, (0, foreign.shape[0]), size, rng)
            y, mask = inject(crop, defect, other, rng)
            k = per_defect[defect]
            _save(base / "test" / defect / f"{k:03d}.png", y)
            _save(base / "ground_truth" / defect / f"{k:03d}_mask.png", mask.astype(np.float32))
            per_defect[defect] += 1
        counts[name] = {"train/good": n_train, "test/good": n_test_good, **{f"test/{d}": n for d, n in per_defect.items()}}
    (out / "README.txt").write_text(
        "benchbox textures set (benchbox data make-textures): crops of scikit-image's bundled brick, grass and\n"
        "gravel photographs (CC0). Train crops from the top half of each photograph, test crops from the bottom\n"
        f"half; defects {', '.join(DEFECTS)} injected with exact masks. size={size} seed={seed}.\n"
        "MVTec AD layout: read with  benchbox run --dataset mvtec --dataset.root <this folder> --dataset.category brick\n"
    )
    return counts
