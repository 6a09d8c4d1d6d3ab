"""The image contract of the imaging stage: ``LoadedImage``, ``ImageReadError`` and windowing.

Every reader (``io.py`` for Pillow formats, ``dicom.py``) returns a ``LoadedImage`` or raises an
``ImageReadError`` whose message a clinician can act on; these are shared here so the readers
do not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ImageReadError", "LoadedImage", "window", "check_size", "own_range", "megapixels", "NOT_AN_IMAGE", "CORRUPTED", "BLANK"]

NOT_AN_IMAGE = (
    "file is not an image (or not a supported format: "
    "PNG, JPEG, TIFF, BMP, PGM/PPM, WebP, DICOM)"
)
CORRUPTED = "image is truncated or corrupted"
BLANK = "image is blank: every pixel has the same value"


class ImageReadError(ValueError):
    """An image could not be read; the message is written for the person who uploaded it."""


@dataclass(frozen=True)
class LoadedImage:
    """A decoded image ready for display or preprocessing.

    Attributes:
        pixels: uint8, HxW for greyscale sources or HxWx3 RGB for colour sources; read-only,
            so a cached image cannot be changed by one caller under another.
        format: container format, e.g. ``"PNG"``, ``"JPEG"``, ``"TIFF"``, ``"DICOM"``.
        source_mode: pixel layout before conversion: a Pillow mode (``"RGB"``, ``"I;16"``,
            ``"P"``, ``"CMYK"``...) or the DICOM Photometric Interpretation.
        bit_depth: bits per sample as stored in the file (1, 8, 16 or 32).
        warnings: plain-language notes on what was not shown, e.g. skipped pages.
    """

    pixels: np.ndarray
    format: str
    source_mode: str
    bit_depth: int
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Refuse arrays that break the layout contract every caller relies on."""
        shape = self.pixels.shape
        if self.pixels.dtype != np.uint8 or not (
            len(shape) == 2 or (len(shape) == 3 and shape[2] == 3)
        ):
            raise ValueError(
                f"pixels must be uint8 HxW or HxWx3, got {self.pixels.dtype} {shape}"
            )

    @property
    def is_greyscale(self) -> bool:
        """True when the source had one channel (the array is HxW)."""
        return self.pixels.ndim == 2


def window(array: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map the intensity window ``[low, high]`` linearly onto uint8 ``[0, 255]``.

    ``out = clip(round((x - low) / (high - low) * 255), 0, 255)``. The one windowing function
    for 16-bit and float images, DICOM window centre/width and display contrast, so they
    cannot disagree. A zero-width window (``low == high``) is a threshold: values above it
    are 255, the rest 0, as DICOM specifies for a window width of 1. NaN maps to 0.

    Args:
        array: any real-valued array; it is not modified.
        low: value shown as black.
        high: value shown as white; must be ``>= low``.

    Returns:
        uint8 array of the same shape.

    Raises:
        ValueError: if ``low`` or ``high`` is not finite or ``low > high``.
    """
    if not (np.isfinite(low) and np.isfinite(high)) or low > high:
        raise ValueError(f"window needs finite low <= high, got low={low}, high={high}")
    values = np.asarray(array)
    if high == low:
        return np.where(values > high, 255, 0).astype(np.uint8)
    # float32 is exact for 16-bit samples; wider inputs keep float64 precision.
    work_dtype = np.float32 if values.dtype.itemsize <= 2 else np.float64
    scaled = (values.astype(work_dtype) - low) * (255.0 / (high - low))
    np.clip(scaled, 0.0, 255.0, out=scaled)
    np.rint(scaled, out=scaled)
    return np.nan_to_num(scaled, nan=0.0).astype(np.uint8)


def check_size(width: int, height: int, max_pixels: int) -> None:
    """Refuse a canvas over ``max_pixels`` before its pixels are decoded."""
    if width * height > max_pixels:
        raise ImageReadError(
            f"image too large: {megapixels(width * height)} megapixels, "
            f"limit {megapixels(max_pixels)} megapixels"
        )


def megapixels(pixels: int) -> str:
    """Format a pixel count in megapixels without rounding two different counts together."""
    return f"{pixels / 1_000_000:.10g}"


def own_range(values: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """Window an array over its own finite min..max; a single-value image becomes black."""
    finite = values if values.dtype.kind in "biu" else values[np.isfinite(values)]
    if finite.size == 0 or finite.min() == finite.max():
        return np.zeros(values.shape, np.uint8), (BLANK,)
    return window(values, float(finite.min()), float(finite.max())), ()
