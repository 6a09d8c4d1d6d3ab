"""Whole-slide images through OpenSlide, and plain large images behind the same small interface.

OpenSlide (``openslide-python`` with the ``openslide-bin`` wheel, so no system package) reads the
formats pathology labs produce: Aperio ``.svs``, Hamamatsu ``.ndpi``, MIRAX ``.mrxs``, Leica
``.scn``, Ventana ``.bif``, generic tiled TIFF and DICOM-WSI. A slide is never decoded whole:
callers read regions from the pyramid level that fits the model's scale. Plain PNG/JPEG/TIFF
images (up to the decompression-bomb limit of ``io.read_image``) are wrapped so they take the
same path.

The microns per pixel come from the slide's metadata (``openslide.mpp-x``, or for a plain TIFF or
DICOM image its resolution tags or Pixel Spacing: ``imaging.scale``); where a file has none, the
caller must say (``--mpp``), because the model only knows one physical scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from bcc_model.imaging.io import read_image
from bcc_model.imaging.pixels import ImageReadError

__all__ = ["Slide", "SLIDE_SUFFIXES", "BAND_PIXELS", "open_slide", "is_slide_file"]

BAND_PIXELS = 4_000_000
"""Source pixels read at once for a slide's thumbnail (about 16 MB as RGBA)."""

SLIDE_SUFFIXES = frozenset({".svs", ".ndpi", ".mrxs", ".scn", ".bif", ".vms", ".vmu", ".svslide", ".tif", ".tiff",
                            ".dcm"})
"""File suffixes OpenSlide may read (TIFF and DICOM files are tried, then read as plain images)."""


@dataclass
class Slide:
    """An open slide or image: level-0 size, scale, pyramid, and a region reader.

    Attributes:
        dimensions: ``(width, height)`` of level 0 in px.
        mpp: µm per level-0 pixel, or ``None`` when the file does not say.
        downsamples: downsample factor of each pyramid level (level 0 first, 1.0).
        source: ``"openslide:<vendor>"`` or ``"image"``.
        read: ``read(x, y, level, width, height)`` -> uint8 RGB region; ``x, y`` in level-0 px,
            size in that level's px.
        close: releases the file handle.
    """

    dimensions: tuple[int, int]
    mpp: float | None
    downsamples: tuple[float, ...]
    source: str
    read: Callable[[int, int, int, int, int], np.ndarray]
    close: Callable[[], None]

    def best_level(self, downsample: float) -> int:
        """The coarsest level whose downsample is at most ``downsample`` (never coarser than asked)."""
        fits = [i for i, d in enumerate(self.downsamples) if d <= downsample * 1.001]
        return max(fits, key=lambda i: self.downsamples[i]) if fits else 0

    def thumbnail(self, max_side: int) -> tuple[np.ndarray, float]:
        """``(rgb, factor)``: the whole slide at most ``max_side`` px long, and level-0 px per thumbnail px.

        Read in bands of at most ``BAND_PIXELS`` source pixels, each shrunk before the next is read,
        so memory stays bounded whatever the file: a slide without a pyramid (one 20,000² px level)
        is never decoded whole.
        """
        width, height = self.dimensions
        factor = max(width, height) / max_side if max(width, height) > max_side else 1.0
        level = self.best_level(2 * factor)  # up to half the resolution asked: never decode a level far too large
        scale = self.downsamples[level]
        level_w, level_h = int(np.ceil(width / scale)), int(np.ceil(height / scale))
        out_w, out_h = max(1, round(width / factor)), max(1, round(height / factor))
        rows_per_band = max(1, int(BAND_PIXELS // max(1, level_w) * out_h // max(1, level_h)))
        bands = []
        for top in range(0, out_h, rows_per_band):
            bottom = min(out_h, top + rows_per_band)
            src_top, src_bottom = int(top * level_h / out_h), max(int(top * level_h / out_h) + 1,
                                                                  int(np.ceil(bottom * level_h / out_h)))
            region = self.read(0, int(src_top * scale), level, level_w, src_bottom - src_top)
            bands.append(cv2.resize(region, (out_w, bottom - top), interpolation=cv2.INTER_AREA))
        return np.concatenate(bands, axis=0), factor


def is_slide_file(path: Path) -> bool:
    """True for files OpenSlide recognises (pyramidal or vendor formats)."""
    import openslide

    try:
        return openslide.OpenSlide.detect_format(str(path)) is not None
    except (OSError, openslide.OpenSlideError):
        return False


def open_slide(source: str | Path | bytes, *, mpp: float | None = None) -> Slide:
    """Open a whole-slide file through OpenSlide, or any readable image as a one-level slide.

    Args:
        source: a path (slide or image) or an image's bytes.
        mpp: µm per pixel, overriding (or supplying) the file's own value.

    Raises:
        ImageReadError: neither OpenSlide nor ``read_image`` can read it.
    """
    if not isinstance(source, bytes) and is_slide_file(Path(source)):
        return _open_openslide(Path(source), mpp)
    image = read_image(source)
    rgb = image.pixels if image.pixels.ndim == 3 else np.repeat(image.pixels[..., None], 3, axis=2)

    def read(x: int, y: int, level: int, width: int, height: int) -> np.ndarray:
        out = np.full((height, width, 3), 255, np.uint8)
        part = rgb[y:y + height, x:x + width]
        out[:part.shape[0], :part.shape[1]] = part
        return out

    scale = mpp if mpp is not None else image.mpp  # a TIFF or DICOM may record a microscope's scale
    return Slide(dimensions=(rgb.shape[1], rgb.shape[0]), mpp=scale, downsamples=(1.0,), source="image",
                 read=read, close=lambda: None)


def _open_openslide(path: Path, mpp: float | None) -> Slide:
    import openslide

    try:
        handle = openslide.OpenSlide(str(path))
    except (OSError, openslide.OpenSlideError) as err:
        raise ImageReadError("slide could not be opened (truncated, or a format OpenSlide does not read)") from err
    recorded = handle.properties.get(openslide.PROPERTY_NAME_MPP_X)
    scale = mpp if mpp is not None else (float(recorded) if recorded else None)

    def read(x: int, y: int, level: int, width: int, height: int) -> np.ndarray:
        region = np.asarray(handle.read_region((int(x), int(y)), int(level), (int(width), int(height))))
        rgb, alpha = region[..., :3].astype(np.float32), region[..., 3:].astype(np.float32) / 255.0
        return np.rint(rgb * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)  # outside the scan: white glass

    vendor = handle.properties.get(openslide.PROPERTY_NAME_VENDOR, "unknown")
    return Slide(dimensions=tuple(handle.dimensions), mpp=scale, downsamples=tuple(handle.level_downsamples),
                 source=f"openslide:{vendor}", read=read, close=handle.close)
