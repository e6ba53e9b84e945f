"""PKU-GoodsAD: supermarket goods (6 categories, 3000x3000 images) in MVTec-style folders."""

from __future__ import annotations

from dataclasses import dataclass

from benchbox_plugins.datasets.base.folderdataset import FolderConfig, FolderDataset

CATEGORIES = ("drink_bottle", "drink_can", "food_bottle", "food_box", "food_package", "cigarette_box")


class PKUGoodsAD(FolderDataset):
    """PKU-GoodsAD from --dataset.root (MVTec-style folders; masks used where ground_truth exists)."""

    subdir = "pku"
    expected = "<category>/train/good/*.png, <category>/test/<defect>/*.png, optional <category>/ground_truth"
    masks = "optional"

    @dataclass
    class Config(FolderConfig):
        category: str = "drink_bottle"
        """One of drink_bottle, drink_can, food_bottle, food_box, food_package, cigarette_box."""
