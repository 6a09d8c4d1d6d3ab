"""Maps in the model's frame carried back onto the source image's pixels (for DICOM results that overlay it).

Why: heatmaps and lesion maps live on the model input, which preprocessing shrank, cropped to the
breast, mirrored, padded and resized; a DICOM Parametric Map must lie on the source image's own
pixel grid to show beside it in a PACS viewer. Every geometric step is axis-aligned (scales,
offsets and mirrors), so each axis maps linearly, model = a * source + b. The steps' own mask path
(``preprocess.to_model_input_with_mask``) carries two planes holding each source pixel's x and y
through the same crop, flip, padding and resize; a least-squares line per axis recovers (a, b),
and the map is resampled onto the source grid by the inverse. Nothing is re-implemented, so a new
geometric step is followed as long as it moves masks with the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from bcc_model.imaging.preprocess import to_model_input_with_mask
from bcc_model.registry import ModalitySpec

__all__ = ["AxisMap", "model_geometry", "to_source_frame"]

_INSIDE_MARGIN = 2
"""Model pixels this close to the padding are left out of the fit (resizing blends them with zeros)."""


@dataclass(frozen=True)
class AxisMap:
    """model coordinate = ``scale`` * source coordinate + ``offset`` along one axis (pixel centres)."""

    scale: float
    offset: float


def _fit(model_coordinate: np.ndarray, source_coordinate: np.ndarray) -> AxisMap:
    """The source-to-model line along one axis, from model positions and the source positions they hold."""
    slope, intercept = np.polyfit(source_coordinate, model_coordinate, 1)
    return AxisMap(float(slope), float(intercept))


def model_geometry(pixels: np.ndarray, spec: ModalitySpec) -> tuple[AxisMap, AxisMap, np.ndarray]:
    """``(x map, y map, inside)``: how ``pixels`` sit in the model input, and which model pixels hold the image.

    Raises:
        ValueError: preprocessing kept too little of the image to fit a line (fewer than two columns or rows).
    """
    height, width = pixels.shape[:2]
    planes = [np.broadcast_to(np.arange(1, n + 1, dtype=np.float32)[None, :] if axis == 1 else
                              np.arange(1, n + 1, dtype=np.float32)[:, None], (height, width)).copy()
              for axis, n in ((1, width), (0, height))]
    xs, ys = (to_model_input_with_mask(pixels, plane, spec)[1] for plane in planes)
    inside = (xs > 0) & (ys > 0)
    core = cv2.erode(inside.astype(np.uint8), np.ones((2 * _INSIDE_MARGIN + 1,) * 2, np.uint8)).astype(bool)
    rows, columns = np.nonzero(core)
    if np.unique(columns).size < 2 or np.unique(rows).size < 2:
        raise ValueError("preprocessing kept too little of the image to place its maps on the source")
    # planes hold 1-based source positions; pixel centres are the 0-based ones
    return _fit(columns.astype(float), xs[core] - 1.0), _fit(rows.astype(float), ys[core] - 1.0), inside


def to_source_frame(model_map: np.ndarray, pixels: np.ndarray, spec: ModalitySpec) -> np.ndarray:
    """float32 (H, W) of ``pixels``: ``model_map`` (model-input size) resampled onto the source pixels.

    Source pixels that preprocessing dropped (cropped away, or under the padding) get 0.
    """
    x_map, y_map, inside = model_geometry(pixels, spec)
    height, width = pixels.shape[:2]
    kept = np.where(inside, model_map.astype(np.float32), 0.0).astype(np.float32)
    map_x = (x_map.scale * np.arange(width, dtype=np.float32) + x_map.offset).astype(np.float32)
    map_y = (y_map.scale * np.arange(height, dtype=np.float32) + y_map.offset).astype(np.float32)
    grid_x, grid_y = np.broadcast_to(map_x[None, :], (height, width)), np.broadcast_to(map_y[:, None], (height, width))
    return cv2.remap(kept, np.ascontiguousarray(grid_x), np.ascontiguousarray(grid_y), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
