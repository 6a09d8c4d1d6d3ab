"""The physical scale (µm per pixel) a file records, where it records one a microscope could have made.

Why: region mode rescales an upload to the model's training scale; a wrong scale silently changes
what every tile shows (at 2x the tiles hold a quarter of the tissue). A file that says its scale
(an Aperio or OME TIFF, a TIFF with resolution tags in cm, a DICOM with Pixel Spacing) must be
believed over a default; one that does not must be asked about (the app's region page).
"""

from __future__ import annotations

import re
from typing import Any

import cv2
import numpy as np

__all__ = ["MICROSCOPE_MPP", "NUCLEUS_UM", "plausible", "mpp_from_tiff", "mpp_from_dicom", "nucleus_size_um",
           "scale_doubt"]

MICROSCOPE_MPP = (0.05, 20.0)
"""µm per pixel a slide scanner or camera on a microscope can give (x100 oil to a 1x overview).
A TIFF's default 72 dpi (353 µm/px) or a mammogram's 70 µm/px lies outside: not a microscope scale."""

_APERIO_MPP = re.compile(r"\bMPP\s*=\s*([0-9.]+)", re.IGNORECASE)
_OME_SIZE = re.compile(r'PhysicalSizeX="([0-9.eE+-]+)"(?:[^>]*PhysicalSizeXUnit="([^"]+)")?')
_UNIT_UM = {2: 25_400.0, 3: 10_000.0}  # TIFF ResolutionUnit: 2 inch, 3 centimetre, in µm
_OME_UNITS = {"µm": 1.0, "um": 1.0, "nm": 1e-3, "mm": 1e3}


def plausible(mpp: float | None) -> float | None:
    """``mpp`` when it lies in :data:`MICROSCOPE_MPP`, else ``None``."""
    if mpp is None or not MICROSCOPE_MPP[0] <= mpp <= MICROSCOPE_MPP[1]:
        return None
    return float(mpp)


def mpp_from_tiff(description: str | None, x_resolution: Any, unit: Any) -> float | None:
    """From a TIFF's ImageDescription (Aperio ``MPP = 0.25``, OME ``PhysicalSizeX``) or else its
    XResolution (pixels per ResolutionUnit, inch or cm)."""
    text = description or ""
    found = _APERIO_MPP.search(text)
    if found:
        return plausible(_number(found.group(1)))
    found = _OME_SIZE.search(text)
    if found:
        size = _number(found.group(1))
        factor = _OME_UNITS.get(found.group(2) or "µm")
        return None if size is None or factor is None else plausible(size * factor)
    pixels_per_unit = _number(x_resolution)
    try:
        unit_um = _UNIT_UM.get(int(unit))
    except (TypeError, ValueError):
        return None
    if not pixels_per_unit or unit_um is None:
        return None
    return plausible(unit_um / pixels_per_unit)


def mpp_from_dicom(dataset: Any) -> float | None:
    """From Pixel Spacing (mm), top level or in the shared functional groups (DICOM whole-slide images)."""
    spacing = dataset.get("PixelSpacing")
    if spacing is None:
        try:
            spacing = dataset.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
        except (AttributeError, IndexError, KeyError, TypeError):
            return None
    try:
        row_mm, column_mm = (float(v) for v in spacing)
    except (TypeError, ValueError):
        return None
    return plausible(1000.0 * column_mm) if abs(row_mm - column_mm) <= 0.01 * column_mm else None


NUCLEUS_UM = (3.0, 20.0)
"""Median diameter of the dark (haematoxylin) blobs an H&E image shows at its true scale, in µm. On the
IDC patients' tissue at 4 µm/px it reads 7.8-9.0 µm; the same tissue enlarged 8x but still called
4 µm/px reads 37-49 µm, and at the right 0.5 µm/px 4.7-6.1 µm (docs/experiments/2026-12-06-region-scale.md)."""


def nucleus_size_um(rgb: np.ndarray, mpp: float) -> float | None:
    """Median equivalent diameter (µm at ``mpp``) of the dark blobs in the tissue: nuclei and their clusters.

    Why this measure: nuclei are the one structure of known size on every H&E slide, so their size
    at the claimed scale says whether the claim is plausible. The red channel is where haematoxylin
    absorbs most; Otsu's threshold inside the tissue separates nuclei from stroma. ``None`` when
    there is too little tissue (under 20 blobs) to say.
    """
    from bcc_model.imaging.tiling import tissue_mask

    if rgb.ndim != 3 or min(rgb.shape[:2]) < 32:
        return None
    mask = tissue_mask(rgb)
    red = np.ascontiguousarray(rgb[..., 0])
    values = red[mask]
    if values.size < 400:
        return None
    threshold, _ = cv2.threshold(values.reshape(-1, 1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    dark = ((red < threshold) & mask).astype(np.uint8)
    _, _, stats, _ = cv2.connectedComponentsWithStats(dark, connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    areas = areas[areas >= 2]
    if len(areas) < 20:
        return None
    return float(np.sqrt(4.0 * np.median(areas) / np.pi)) * mpp


def scale_doubt(rgb: np.ndarray, mpp: float) -> str | None:
    """A warning when the tissue does not look like ``mpp`` (nuclei far outside :data:`NUCLEUS_UM`), else ``None``."""
    size = nucleus_size_um(rgb, mpp)
    if size is None or NUCLEUS_UM[0] <= size <= NUCLEUS_UM[1]:
        return None
    likely = mpp * 8.0 / size  # the scale at which the blobs would measure a typical 8 µm
    return (f"At {mpp:.3g} µm/px the nuclei in this image would measure about {size:.0f} µm (H&E nuclei are about "
            f"{NUCLEUS_UM[0]:.0f}-{NUCLEUS_UM[1]:.0f} µm): the scale looks wrong, perhaps about {likely:.2g} µm/px. "
            "Tiles at a wrong scale hold the wrong amount of tissue, and the model's output means little.")


def _number(value: Any) -> float | None:
    """A float from a number, a string or a TIFF rational (a pair or an object with numerator/denominator)."""
    try:
        if isinstance(value, tuple) and len(value) == 2:
            return float(value[0]) / float(value[1]) if float(value[1]) else None
        return float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
