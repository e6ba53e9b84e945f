"""Decode image and mask files with Pillow into float arrays, explicitly per pixel format.

* 8-bit grayscale (``L``) and RGB are scaled by 255; 16-bit grayscale (``I;16*``, ``I``) by
  65535; 32-bit float (``F``) is taken as is and clipped to [0, 1].
* Palette (``P``) images are expanded through their palette; if every palette colour used is
  grey the result is grayscale. Alpha channels (``LA``, ``RGBA``) are dropped; ``CMYK`` and
  ``YCbCr`` (JPEG) are converted to RGB.
* Masks keep their raw values (palette indices for ``P``) and are binarised as ``value > 0``,
  so 0/255, 0/1 and non-binary masks (VisA) all work.

Every failure is a :class:`DataError` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchbox.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _open(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(path)
        img.load()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: not a readable image ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    return img


def read_image(path: Path) -> np.ndarray:
    """``H x W`` (grayscale) or ``H x W x 3`` (colour) float32 array in [0, 1]."""
    img = _open(path)
    mode = img.mode
    palette = mode in ("P", "PA")
    if palette:
        img = img.convert("RGB")
        mode = "RGB"
    if mode in ("1", "L", "LA"):
        arr = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    elif mode.startswith("I;16") or mode == "I":
        arr = (np.asarray(img, dtype=np.float64) / 65535.0).astype(np.float32)
    elif mode == "F":
        arr = np.asarray(img, dtype=np.float32)
    elif mode in ("RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
        arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    else:
        raise DataError(f"{path}: unsupported image mode {mode!r}")
    # a palette of greys is a grayscale image; a true RGB file stays RGB even if it looks grey
    if palette and np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2]):
        arr = arr[..., 0]
    return np.clip(arr, 0.0, 1.0)


def read_mask(path: Path) -> np.ndarray:
    """``H x W`` float32 mask in {0, 1}: any non-zero value (or palette index) is anomalous."""
    img = _open(path)
    if img.mode in ("RGB", "RGBA", "CMYK", "YCbCr", "LA", "PA"):
        arr = np.asarray(img.convert("L"))
    else:  # 1, L, P (indices), I;16, I, F
        arr = np.asarray(img)
    return (arr > 0).astype(np.float32)


def centre_crop_resize(x: torch.Tensor, size: int, mask: bool = False) -> torch.Tensor:
    """``N x C x H x W``: crop the centred square (keeps the aspect), then resize to ``size``.

    Images use antialiased bilinear resampling; masks use nearest so they stay binary.
    """
    h, w = x.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    x = x[..., top : top + side, left : left + side]
    if size and size != side:
        if mask:
            x = F.interpolate(x, size=(size, size), mode="nearest")
        else:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x.clamp(0.0, 1.0)
