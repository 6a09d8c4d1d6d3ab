"""Whole slides rebuilt from IDC patches: what a pathologist uploads, with the truth of every patch.

The IDC data set cut each slide into 50 px patches named ``<patient>_idx5_x<X>_y<Y>_class<C>.png``;
the patch's top-left corner is at ``(X - 1, Y - 1)`` on the slide, on a 50 px grid. For the
patients whose every patch is in the data (``coverage == "complete"``), pasting the patches back
gives the slide (white glass where no patch exists) and a label for every tissue tile: the test
bed for region mode that single patches cannot be.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bcc_model.datasets.folders import DataError
from bcc_model.imaging.io import read_image

__all__ = ["PATCH_PX", "RebuiltSlide", "patch_offset", "complete_patients", "rebuild_slide"]

PATCH_PX = 50
"""Side of an IDC patch and of the slide grid, in slide pixels."""
_OFFSET = re.compile(r"_x(\d+)_y(\d+)_")
_GLASS = 255


@dataclass(frozen=True)
class RebuiltSlide:
    """One patient's slide pasted back together.

    Attributes:
        patient: the patient (group) id.
        rgb: uint8 HxWx3, white where no patch exists.
        boxes: int64 (N, 4) ``x0, y0, x1, y1`` of each patch on the slide, in slide px.
        labels: int64 (N,) class index of each patch (in the modality's label order).
    """

    patient: str
    rgb: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray

    @property
    def positive_share(self) -> float:
        """Share of patches of the positive (last) class: the slide's true IDC share."""
        return float(np.mean(self.labels == 1)) if len(self.labels) else float("nan")


def patch_offset(file: str) -> tuple[int, int]:
    """Top-left ``(x, y)`` on the slide of a patch named ``..._x<X>_y<Y>_...``: ``(X - 1, Y - 1)``."""
    match = _OFFSET.search(Path(file).name)
    if match is None:
        raise DataError(f"{Path(file).name}: no _x<X>_y<Y>_ offset in the name")
    return int(match.group(1)) - 1, int(match.group(2)) - 1


def complete_patients(table: pd.DataFrame) -> list[str]:
    """Patients whose every patch is in the data (``coverage == "complete"`` in labels.csv)."""
    if "coverage" not in table.columns:
        return []
    return sorted(table.loc[table["coverage"] == "complete", "group"].unique().tolist())


def rebuild_slide(table: pd.DataFrame, data_dir: str | Path, patient: str, labels: tuple[str, ...]) -> RebuiltSlide:
    """Paste one patient's patches onto a white canvas at their offsets.

    Args:
        table: labels.csv rows (``file, label, group``); only ``patient``'s are used.
        data_dir: the folder the files are relative to.
        patient: the group id.
        labels: class names in model-output order.

    Raises:
        DataError: the patient has no patches, or a name has no offset.
    """
    rows = table[table["group"] == patient]
    if rows.empty:
        raise DataError(f"patient {patient} has no patches")
    offsets = np.array([patch_offset(f) for f in rows["file"]], dtype=np.int64)
    width = int(offsets[:, 0].max()) + PATCH_PX
    height = int(offsets[:, 1].max()) + PATCH_PX
    canvas = np.full((height, width, 3), _GLASS, np.uint8)
    boxes = []
    for (x, y), file in zip(offsets, rows["file"]):
        patch = read_image(Path(data_dir) / file).pixels
        if patch.ndim == 2:
            patch = np.repeat(patch[..., None], 3, axis=2)
        h, w = patch.shape[:2]
        canvas[y:y + h, x:x + w] = patch
        boxes.append((x, y, x + w, y + h))
    index = {label: i for i, label in enumerate(labels)}
    return RebuiltSlide(patient=str(patient), rgb=canvas, boxes=np.array(boxes, np.int64),
                        labels=rows["label"].map(index).to_numpy(np.int64))
