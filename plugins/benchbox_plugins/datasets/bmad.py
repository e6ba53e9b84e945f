"""BMAD medical anomaly detection: Brain, Liver, Retina_RESC (pixel labels), OCT2017, Chest, Histopathology."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from benchbox.errors import DataError
from benchbox_plugins.datasets.base.folderdataset import FolderConfig, FolderDataset
from benchbox_plugins.datasets.base.folders import Layout, scan_bmad

CATEGORIES = ("Brain", "Liver", "Retina_RESC", "Retina_OCT2017", "Chest", "Histopathology")


class BMAD(FolderDataset):
    """BMAD from --dataset.root (train/good, valid and test with good/Ungood; img + label masks)."""

    subdir = "bmad"
    expected = "<category>/train/good, <category>/{valid,test}/{good,Ungood}, optionally with img/ and label/ or anomaly_mask/"

    @dataclass
    class Config(FolderConfig):
        category: str = "Brain"
        """Brain, Liver, Retina_RESC (pixel labels) or Retina_OCT2017, Chest, Histopathology."""

    def root(self) -> Path:
        try:
            return super().root()
        except DataError as exc:  # no root given: name the offline demo set too
            raise DataError(f"{exc}; no BMAD at hand? benchbox data make-demo bmad DIR writes a demo set in this "
                            "layout (real medical images, synthetic lesions), then pass --dataset.root DIR "
                            "--dataset.category Histopathology") from None

    def scan(self, root: Path, category: str) -> Layout:
        return scan_bmad(root, category, self.name)
