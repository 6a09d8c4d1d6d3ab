"""Lesion geometry: where the annotated lesions are, as masks in original and in model pixels.

Two sources, named by ``TrainingRecipe.lesion_source``:

* ``"circles"``: ``lesions.csv`` beside ``labels.csv`` (mini-MIAS), one row per lesion with the
  centre ``x, y`` and ``radius`` in px of the image as stored (origin top-left, y down); an image
  may have several rows, and a row with empty coordinates is a lesion whose position is unknown;
* ``"masks"``: the ``mask`` column of ``labels.csv`` (BUSI), a binary image of the same size.

A mask is ``None`` when the image's geometry is unknown: an image of a lesion class with no
circle coordinates or no mask file. An image of a class without lesions (``normal``) has an
all-False mask. Model-space masks go through ``preprocess.to_model_input_with_mask``, so they
follow the same crop, flip, padding and resize as the image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from bcc_model.imaging.pixels import ImageReadError
from bcc_model.imaging.io import read_image
from bcc_model.registry import ModalitySpec
from bcc_model.imaging.preprocess import to_model_input_with_mask

__all__ = ["LesionError", "Circle", "circle_mask", "read_circles", "lesion_mask", "model_space_masks"]

Circle = tuple[float, float, float]
"""``(x, y, radius)`` in px of the stored image, origin top-left."""


class LesionError(ValueError):
    """A lesion table or mask file is missing or malformed."""


def circle_mask(shape: tuple[int, int], circles: Iterable[Circle]) -> np.ndarray:
    """Bool HxW mask of the union of filled circles.

    A pixel is inside when its centre lies within ``radius`` of the circle centre; pixel ``(i, j)``
    (row, column) has its centre at ``x = j``, ``y = i``, the convention of MIAS coordinates.

    Args:
        shape: ``(height, width)`` in px.
        circles: ``(x, y, radius)`` triples in px.

    Returns:
        bool array of ``shape``; all False when ``circles`` is empty.
    """
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    mask = np.zeros(shape, dtype=bool)
    for x, y, radius in circles:
        if radius <= 0:
            raise LesionError(f"circle radius must be positive, got {radius}")
        mask |= (cols - x) ** 2 + (rows - y) ** 2 <= radius ** 2
    return mask


def read_circles(data_dir: str | Path) -> dict[str, list[Circle] | None]:
    """Lesion circles per file from ``<data_dir>/lesions.csv``.

    Returns:
        file -> list of circles (empty for an image without lesions), or ``None`` when any lesion
        of that image lacks coordinates (so the list would be incomplete).

    Raises:
        LesionError: if the table is missing or lacks the ``file, x, y, radius`` columns.
    """
    path = Path(data_dir) / "lesions.csv"
    if not path.is_file():
        raise LesionError(f"lesion table not found: {path} (expected columns file, x, y, radius)")
    table = pd.read_csv(path, dtype={"file": str})
    missing = {"file", "x", "y", "radius"} - set(table.columns)
    if missing:
        raise LesionError(f"{path} lacks column(s) {sorted(missing)}")
    is_lesion = table["abnormality"].ne("NORM") if "abnormality" in table.columns else table["x"].notna()
    circles: dict[str, list[Circle] | None] = {}
    for file, rows in table.groupby("file", sort=False):
        lesions = rows[is_lesion.loc[rows.index]]
        if lesions[["x", "y", "radius"]].isna().any(axis=None):
            circles[file] = None
        else:
            circles[file] = [(float(r.x), float(r.y), float(r.radius)) for r in lesions.itertuples()]
    return circles


def _mask_files(data_dir: Path) -> dict[str, str]:
    """file -> mask file from the ``mask`` column of ``labels.csv``; empty when there is none."""
    path = data_dir / "labels.csv"
    if not path.is_file():
        return {}
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    return dict(zip(table["file"], table["mask"])) if "mask" in table.columns else {}


def lesion_mask(spec: ModalitySpec, shape: tuple[int, int], label: str, *, circles: Sequence[Circle] | None = None,
                mask_path: str | Path | None = None) -> np.ndarray | None:
    """Lesion mask of one image in its own pixels.

    Args:
        spec: the modality (its ``lesion_source`` and ``lesion_labels``).
        shape: ``(height, width)`` of the image in px.
        label: the image's class; classes outside ``spec.recipe.lesion_labels`` get an all-False mask.
        circles: the image's circles (``"circles"`` source); ``None`` when unknown.
        mask_path: the image's mask file (``"masks"`` source); ``None`` or missing when unknown.

    Returns:
        bool HxW mask, or ``None`` when the geometry of a lesion image is unknown.

    Raises:
        LesionError: a mask file of the wrong size or unreadable.
    """
    if label not in spec.recipe.lesion_labels:
        return np.zeros(shape, dtype=bool)
    if spec.recipe.lesion_source == "circles":
        return None if circles is None or not circles else circle_mask(shape, circles)
    if spec.recipe.lesion_source == "masks":
        if mask_path is None or not Path(mask_path).is_file():
            return None
        try:
            pixels = read_image(mask_path).pixels
        except ImageReadError as err:
            raise LesionError(f"cannot read lesion mask {mask_path}: {err}") from err
        mask = (pixels if pixels.ndim == 2 else pixels.max(axis=2)) > 127
        if mask.shape != tuple(shape):
            raise LesionError(f"lesion mask {mask_path} is {mask.shape}, its image is {tuple(shape)}")
        return mask if mask.any() else None
    return None


def model_space_masks(table: pd.DataFrame, data_dir: str | Path, spec: ModalitySpec) -> list[np.ndarray | None]:
    """Lesion masks of every image of ``table`` in model-input pixels.

    Args:
        table: rows with ``file`` and ``label`` (``data.discover`` output), ``file`` relative to
            ``data_dir``.
        data_dir: the data folder (with ``lesions.csv`` or a ``mask`` column in ``labels.csv``
            when the source is present; without them every lesion image's geometry is unknown).
        spec: the modality; its preprocessing maps each mask like its image.

    Returns:
        One entry per row: bool ``(input_size, input_size)`` or ``None`` (unknown geometry).
    """
    root = Path(data_dir)
    circles: Mapping[str, list[Circle] | None] = {}
    mask_files: Mapping[str, str] = {}
    if spec.recipe.lesion_source == "circles" and (root / "lesions.csv").is_file():
        circles = read_circles(root)
    elif spec.recipe.lesion_source == "masks":
        mask_files = _mask_files(root)
    out: list[np.ndarray | None] = []
    for file, label in zip(table["file"], table["label"]):
        pixels = read_image(root / file).pixels
        mask_name = mask_files.get(file) or None
        mask = lesion_mask(spec, pixels.shape[:2], label, circles=circles.get(file),
                           mask_path=None if mask_name is None else root / mask_name)
        out.append(None if mask is None else to_model_input_with_mask(pixels, mask, spec)[1])
    return out
