"""MVTec AD (15 categories, pixel masks) and any set in its folder layout, such as the textures set."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from benchbox_plugins.datasets.base.folderdataset import FolderConfig, FolderDataset
from benchbox_plugins.datasets.base.folders import Layout, mvtec_categories, scan_mvtec

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

    def scan(self, root: Path, category: str) -> Layout:
        return scan_mvtec(root, category, self.name, masks="required")

    def categories(self, root: Path) -> list[str]:
        return mvtec_categories(root)
