"""MVTec AD (15 categories, pixel masks) and any set in its folder layout, such as the textures set."""

from __future__ import annotations

from dataclasses import dataclass

from benchbox_plugins.datasets.base.folderdataset import FolderConfig, FolderDataset

CATEGORIES = ("bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut", "pill",
              "screw", "tile", "toothbrush", "transistor", "wood", "zipper")


class MVTecAD(FolderDataset):
    """MVTec AD from --dataset.root (<category>/train/good, test/<defect>, ground_truth masks)."""

    subdir = "mvtec"
    expected = "<category>/train/good/*.png, <category>/test/<defect>/*.png, <category>/ground_truth/<defect>/*_mask.png"

    @dataclass
    class Config(FolderConfig):
        category: str = "bottle"
        """Category folder under the root (MVTec AD: bottle, cable, ...; textures: brick, grass, gravel)."""
