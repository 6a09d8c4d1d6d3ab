"""The image contract of the imaging stage: ``LoadedImage``, ``ImageReadError`` and windowing.

Every reader (``io.py`` for Pillow formats, ``dicom.py``) returns a ``LoadedImage`` or raises an
``ImageReadError`` whose message a clinician can act on; these are shared here so the readers
do not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from bcc_model.imaging.views import ViewInfo

__all__ = ["ImageReadError", "LoadedImage", "window", "check_size", "check_decoded", "own_range", "megapixels",
           "row_blocks", "NOT_AN_IMAGE", "CORRUPTED", "BLANK", "DEFAULT_MAX_DECODED_BYTES"]

DEFAULT_MAX_DECODED_BYTES = 768 << 20
"""Largest decoded image (width x height x samples x bytes per sample) read: a 100-megapixel RGBA
PNG (400 MB) fits, a float64 RGB TIFF of the same size (2.4 GB) or one with 64 samples per pixel
does not. Conversions to uint8 then work in bands of rows (``row_blocks``), so the peak stays
near the decoded size."""
_BLOCK_BYTES = 32 << 20

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
        burned_in: the file says text is burned into the pixels (DICOM ``BurnedInAnnotation``
            YES): they may identify the patient, so no export may show them.
        mpp: µm per pixel the file records, where it is a microscope's (``imaging.scale``);
            ``None`` when the file does not say.
        dicom_modality: a DICOM file's Modality (``MG``, ``US``, ``SM``...), upper case; ``None``
            for other formats or a file without one. The header says what the image is, so it
            goes before any guess from the pixels (``modality_guess.header_modality``).
        view: a DICOM file's side, projection and pseudonymous exam key (``imaging.views``);
            ``None`` for other formats.
    """

    pixels: np.ndarray
    format: str
    source_mode: str
    bit_depth: int
    warnings: tuple[str, ...] = ()
    burned_in: bool = False
    mpp: float | None = None
    dicom_modality: str | None = None
    view: "ViewInfo | None" = None

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
    out = np.empty(values.shape, np.uint8)
    for rows in row_blocks(values):  # band by band: the float copy never holds the whole image
        scaled = (values[rows].astype(work_dtype) - low) * (255.0 / (high - low))
        np.clip(scaled, 0.0, 255.0, out=scaled)
        np.rint(scaled, out=scaled)
        out[rows] = np.nan_to_num(scaled, nan=0.0)
    return out


def check_size(width: int, height: int, max_pixels: int) -> None:
    """Refuse a canvas over ``max_pixels`` before its pixels are decoded."""
    if width * height > max_pixels:
        raise ImageReadError(
            f"image too large: {megapixels(width * height)} megapixels, "
            f"limit {megapixels(max_pixels)} megapixels"
        )


def check_decoded(width: int, height: int, samples: int, bytes_per_sample: int,
                  max_bytes: int = DEFAULT_MAX_DECODED_BYTES) -> None:
    """Refuse an image whose decoded samples would exceed ``max_bytes``, before it is decoded."""
    size = width * height * samples * bytes_per_sample
    if size > max_bytes:
        raise ImageReadError(f"image too large to decode: {size / (1 << 20):,.0f} MiB of samples ({samples} per "
                             f"pixel, {bytes_per_sample * 8} bits each), limit {max_bytes / (1 << 20):,.0f} MiB")


def row_blocks(array: np.ndarray) -> list:
    """Slices of ``array``'s rows holding about 32 MB each: conversions work band by band, not on copies of all."""
    if array.ndim == 0 or array.size == 0:
        return [...]
    row_bytes = max(1, array.nbytes // array.shape[0]) * 8  # a float64 working copy of a row
    rows = max(1, _BLOCK_BYTES // row_bytes)
    return [slice(start, start + rows) for start in range(0, array.shape[0], rows)]


def megapixels(pixels: int) -> str:
    """Format a pixel count in megapixels without rounding two different counts together."""
    return f"{pixels / 1_000_000:.10g}"


def own_range(values: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """Window an array over its own finite min..max; a single-value image becomes black."""
    low, high = np.inf, -np.inf
    for rows in row_blocks(values):
        block = values[rows]
        finite = block if block.dtype.kind in "biu" else block[np.isfinite(block)]
        if finite.size:
            low, high = min(low, float(finite.min())), max(high, float(finite.max()))
    if not low < high:
        return np.zeros(values.shape, np.uint8), (BLANK,)
    return window(values, low, high), ()
