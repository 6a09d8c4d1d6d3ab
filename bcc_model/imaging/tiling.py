"""Region mode: cut a large H&E image into model-scale tissue tiles and merge tile results.

The model was trained on small patches at a fixed physical scale (``ModalitySpec.mpp``, µm per
pixel). A larger field of view is handled the way TIAToolbox's patch predictor does it: rescale
the image to the model's scale, slide a window of the model's input size over it, drop windows
that are mostly glass, predict each remaining tile, and average the tile results back into a
map in the original image's pixel grid (``merge_to_map``).

Everything here is pure numpy/OpenCV; the model call happens in between, elsewhere.

Coordinates: boxes are ``(x0, y0, x1, y1)`` in original-image pixels, half-open (``x1``/``y1``
exclusive), so ``image[y0:y1, x0:x1]`` is the tile's footprint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "Tiles",
    "tissue_mask",
    "tile_image",
    "magnification_to_mpp",
    "merge_to_map",
    "flagged_fraction",
    "top_tiles",
]

# Greyscale level (0-255) at and above which a pixel counts as bare glass. Unstained glass in
# brightfield scans sits at ~235-255; pale eosin-stained stroma is usually darker than ~220.
_WHITE_LEVEL = 220
# Upper limit for the Otsu saturation threshold (0-255 scale, ~0.12 in HSV terms). When the
# image is all tissue, Otsu splits the stains from each other instead of tissue from glass; the
# cap keeps pale but stained tissue in the mask in that case.
_MAX_SATURATION_THRESHOLD = 20
# Closing kernel side in px: fills pinholes and the gaps between the strands of fat and loose
# stroma a few pixels wide without changing the outline of tissue at tile scale (tiles are ~50 px).
_CLEANUP_KERNEL_PX = 5
# Connected tissue pieces smaller than this many px are dust, not tissue. (An opening removed
# dust too, but also the thin strands of fat and loose stroma: a quarter of the labelled patches
# of the complete H&E slides went unscored; docs/experiments/2026-12-06-tissue-coverage.md.)
_MIN_PIECE_PX = 25


def _check_rgb(rgb: np.ndarray) -> None:
    """Refuse anything but uint8 HxWx3: the tissue test needs colour (saturation)."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be a uint8 HxWx3 RGB image, got {rgb.dtype} {rgb.shape}")


@dataclass(frozen=True)
class Tiles:
    """Tissue tiles of one image, ready for the model.

    Attributes:
        patches: (N, p, p, 3) uint8 RGB, at the model's scale (``p`` = ``patch_px``, normally
            ``ModalitySpec.input_size``).
        boxes: (N, 4) int64 ``x0, y0, x1, y1`` of each patch in original-image pixels.
        image_shape: (H, W) of the original image in px.
        skipped_background: number of tiles dropped because they were mostly glass.
    """

    patches: np.ndarray
    boxes: np.ndarray
    image_shape: tuple[int, int]
    skipped_background: int


def tissue_mask(rgb: np.ndarray) -> np.ndarray:
    """Separate stained tissue from background glass.

    A pixel is tissue when it is both *saturated* (HSV saturation above an Otsu threshold,
    capped at ``_MAX_SATURATION_THRESHOLD``) and *not near-white* (grey level below
    ``_WHITE_LEVEL``). Saturation is the usual cue because haematoxylin and eosin are coloured
    while glass is grey; the brightness test catches faintly tinted glass and scanner colour
    casts that pass the saturation test. A closing with a small elliptical kernel fills
    pinholes (lumens smaller than the kernel) and joins the strands of fat and loose stroma;
    pieces smaller than ``_MIN_PIECE_PX`` are dropped as dust.

    Args:
        rgb: uint8 HxWx3 RGB image.

    Returns:
        bool HxW mask, True for tissue.

    Raises:
        ValueError: not a uint8 HxWx3 image.

    References:
        N. Otsu, "A threshold selection method from gray-level histograms", IEEE Trans. SMC
        9(1):62-66 (1979).
    """
    _check_rgb(rgb)
    saturation = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[:, :, 1]
    otsu, _ = cv2.threshold(saturation, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    saturated = saturation > min(otsu, _MAX_SATURATION_THRESHOLD)
    not_white = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) < _WHITE_LEVEL
    mask = (saturated & not_white).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (_CLEANUP_KERNEL_PX, _CLEANUP_KERNEL_PX))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
    _, pieces, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= _MIN_PIECE_PX
    keep[0] = False  # the background label
    return keep[pieces]


def magnification_to_mpp(magnification: float, *, mpp_at_40x: float = 0.25) -> float:
    """Approximate µm per pixel from an objective magnification: ``mpp_at_40x * 40 / mag``.

    This is a convention, not a measurement: scanners differ (a "40x" scan is 0.23-0.27 µm/px),
    so use the scan's own mpp metadata when it exists.

    Args:
        magnification: apparent objective magnification, e.g. 40 or 2.5.
        mpp_at_40x: µm per pixel assumed at 40x.

    Returns:
        µm per pixel.

    Raises:
        ValueError: a non-positive or non-finite argument.

    Examples:
        >>> magnification_to_mpp(2.5)
        4.0
    """
    for name, value in (("magnification", magnification), ("mpp_at_40x", mpp_at_40x)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number, got {value}")
    return mpp_at_40x * 40.0 / magnification


def tile_image(
    rgb: np.ndarray,
    *,
    image_mpp: float,
    model_mpp: float,
    patch_px: int,
    stride_px: int | None = None,
    min_tissue_fraction: float = 0.1,
) -> Tiles:
    """Cut an image into model-scale tissue tiles.

    The image is rescaled by ``image_mpp / model_mpp`` (``cv2.INTER_AREA`` when shrinking,
    ``cv2.INTER_LINEAR`` when enlarging) so that one pixel covers ``model_mpp`` µm, as in
    training. Windows of ``patch_px`` are taken every ``stride_px`` from the top-left corner;
    a partial window at the right or bottom edge is dropped. Windows whose tissue fraction
    (``tissue_mask`` of the rescaled image) is below ``min_tissue_fraction`` are skipped and
    counted. An image with no tissue gives zero patches, not an error.

    Args:
        rgb: uint8 HxWx3 RGB image.
        image_mpp: scale of ``rgb`` in µm per pixel.
        model_mpp: scale the model expects in µm per pixel (``ModalitySpec.mpp``).
        patch_px: window side in px at the model's scale (``ModalitySpec.input_size``).
        stride_px: step between windows in model-scale px; defaults to ``patch_px``
            (non-overlapping). A smaller stride gives overlapping tiles, which
            ``merge_to_map`` averages.
        min_tissue_fraction: share of tissue pixels, in [0, 1], a window needs to be kept.

    Returns:
        The kept tiles, their boxes in original pixels and the background count.

    Raises:
        ValueError: bad image, non-positive scale, patch or stride, fraction outside [0, 1],
            or an image too small for one patch at the model's scale.
    """
    _check_rgb(rgb)
    for name, value in (("image_mpp", image_mpp), ("model_mpp", model_mpp)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number of µm per pixel, got {value}")
    stride_px = patch_px if stride_px is None else stride_px
    if patch_px < 1 or stride_px < 1:
        raise ValueError(f"patch_px and stride_px must be >= 1, got {patch_px} and {stride_px}")
    if not 0.0 <= min_tissue_fraction <= 1.0:
        raise ValueError(f"min_tissue_fraction must be in [0, 1], got {min_tissue_fraction}")

    height, width = rgb.shape[:2]
    scale = image_mpp / model_mpp
    scaled_w, scaled_h = round(width * scale), round(height * scale)
    if min(scaled_w, scaled_h) < patch_px:
        needed = math.ceil(patch_px / scale)
        raise ValueError(
            f"image of {width}x{height} px at {float(image_mpp)} µm/px is smaller than one "
            f"{patch_px}x{patch_px} patch at {float(model_mpp)} µm/px (needs at least "
            f"{needed}x{needed} px)"
        )
    if (scaled_w, scaled_h) == (width, height):
        scaled = rgb
    else:
        interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
        scaled = cv2.resize(rgb, (scaled_w, scaled_h), interpolation=interpolation)

    ys = np.arange(0, scaled_h - patch_px + 1, stride_px)
    xs = np.arange(0, scaled_w - patch_px + 1, stride_px)
    y0, x0 = (grid.ravel() for grid in np.meshgrid(ys, xs, indexing="ij"))
    y1, x1 = y0 + patch_px, x0 + patch_px

    # Summed-area table: the tissue pixel count of any window in four lookups.
    counts = cv2.integral(tissue_mask(scaled).astype(np.uint8))
    tissue = counts[y1, x1] - counts[y0, x1] - counts[y1, x0] + counts[y0, x0]
    keep = tissue >= min_tissue_fraction * patch_px * patch_px

    patches = np.empty((int(keep.sum()), patch_px, patch_px, 3), np.uint8)
    for i, (top, left) in enumerate(zip(y0[keep], x0[keep])):
        patches[i] = scaled[top : top + patch_px, left : left + patch_px]

    # Back to original pixels with the exact per-axis ratio (rounding made the sizes integers).
    fx, fy = width / scaled_w, height / scaled_h
    boxes = np.stack([x0[keep] * fx, y0[keep] * fy, x1[keep] * fx, y1[keep] * fy], axis=1)
    boxes = np.minimum(np.rint(boxes), [width, height, width, height]).astype(np.int64)
    return Tiles(
        patches=patches,
        boxes=boxes,
        image_shape=(height, width),
        skipped_background=int((~keep).sum()),
    )


def merge_to_map(boxes: np.ndarray, values: np.ndarray, image_shape: tuple[int, int]) -> np.ndarray:
    """Paint per-tile values into an image-sized map, averaging where tiles overlap.

    Args:
        boxes: (N, 4) int ``x0, y0, x1, y1`` in px of the map, half-open, inside the image.
        values: (N,) float, one value per box (e.g. P(positive)).
        image_shape: (H, W) of the map in px.

    Returns:
        float32 HxW: mean of the values of all boxes covering each pixel; NaN where no box
        does (not processed: background or the dropped right/bottom margin).

    Raises:
        ValueError: mismatched lengths, a malformed box or one outside the image.

    Examples:
        Two 2x2 tiles overlapping in one column of a 2x4 image, one pixel column untouched:

        >>> boxes = np.array([[0, 0, 2, 2], [1, 0, 3, 2]])
        >>> merge_to_map(boxes, np.array([0.2, 0.6]), (2, 4))
        array([[0.2, 0.4, 0.6, nan],
               [0.2, 0.4, 0.6, nan]], dtype=float32)
    """
    boxes = np.asarray(boxes)
    values = np.asarray(values, dtype=np.float32)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4), got {boxes.shape}")
    if values.shape != (boxes.shape[0],):
        raise ValueError(f"values must have shape ({boxes.shape[0]},), got {values.shape}")
    height, width = image_shape
    x0, y0, x1, y1 = boxes.T
    bad = (x0 < 0) | (y0 < 0) | (x1 > width) | (y1 > height) | (x1 <= x0) | (y1 <= y0)
    if bad.any():
        raise ValueError(f"box {boxes[bad][0].tolist()} is empty or outside the {width}x{height} image")

    # float32/int32 accumulators: the map is as large as the original image (often 10^8 px).
    total = np.zeros((height, width), np.float32)
    count = np.zeros((height, width), np.int32)
    for (left, top, right, bottom), value in zip(boxes.tolist(), values.tolist()):
        total[top:bottom, left:right] += value
        count[top:bottom, left:right] += 1
    processed = count > 0
    total[processed] /= count[processed]
    total[~processed] = np.nan
    return total


def flagged_fraction(values: np.ndarray, threshold: float) -> float:
    """Share of processed tissue tiles whose value is at or above ``threshold``.

    Args:
        values: (N,) per-tile values (e.g. P(positive)), one per kept tissue tile.
        threshold: decision threshold on the same scale.

    Returns:
        Fraction in [0, 1].

    Raises:
        ValueError: ``values`` is not 1-D or is empty (no tissue was processed, so the share
            is undefined).
    """
    values = np.asarray(values)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"values must be a non-empty 1-D array, got shape {values.shape}")
    return float(np.mean(values >= threshold))


def top_tiles(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest values, highest first (ties keep tile order).

    Args:
        values: (N,) per-tile values.
        k: how many, >= 0; more than N returns all N.

    Returns:
        int64 indices, shape (min(k, N),).

    Raises:
        ValueError: ``values`` not 1-D or ``k`` negative.
    """
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {values.shape}")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    return np.argsort(-values, kind="stable")[:k].astype(np.int64)
