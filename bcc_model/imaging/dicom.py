"""DICOM pixels through pydicom: modality LUT, VOI LUT or window, MONOCHROME1 inverted.

Part of ``io.read_image`` (which recognises a DICOM file and hands it here). Only pixel data
and the tags that say how to display it are read; no patient-identifying tag reaches the
returned metadata or any message; the exam's identifiers are read only to be hashed into a
pseudonymous key (``imaging.views``).
"""

from __future__ import annotations

import struct
from io import BytesIO
from typing import Any

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi, get_decoder, pixel_array
from pydicom.uid import UID

from bcc_model.imaging.scale import mpp_from_dicom
from bcc_model.imaging.views import ViewInfo, view_from_dicom
from bcc_model.imaging.pixels import (CORRUPTED, NOT_AN_IMAGE, ImageReadError, LoadedImage, check_decoded, check_size,
                                      own_range, window)

__all__ = ["read_dicom", "BURNED_IN_WARNING"]

BURNED_IN_WARNING = ("the DICOM header says text is burned into the pixels (BurnedInAnnotation YES): they may "
                     "identify the patient, so the image is left out of reports")

# What pydicom raises on malformed input; AttributeError is its "required element missing".
_PYDICOM_ERRORS = (
    InvalidDicomError,
    BytesLengthException,
    OSError,
    ValueError,
    EOFError,
    struct.error,
    IndexError,
    KeyError,
    TypeError,
    AttributeError,
    NotImplementedError,
    RuntimeError,
)

_DICOM_GREY = frozenset({"MONOCHROME1", "MONOCHROME2"})
# pydicom's pixel_array returns these as RGB (it converts YBR_FULL*; the JPEG 2000 decoders
# undo YBR_ICT/YBR_RCT themselves).
_DICOM_COLOUR = frozenset({"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT"})
_PALETTE = "PALETTE COLOR"  # one sample per pixel, an index into the file's red, green and blue lookup tables


# --- DICOM ----------------------------------------------------------------------------------


def read_dicom(data: bytes, max_pixels: int, has_magic: bool) -> LoadedImage:
    """Decode the first frame of a DICOM file; only technical tags are read as they are.

    The Patient ID and Study Instance UID are read only to be hashed into the exam key
    (``views.view_from_dicom``); no other patient tag is accessed.
    """
    try:
        dataset = dcmread(BytesIO(data), force=not has_magic)
    except _PYDICOM_ERRORS as err:
        raise ImageReadError(CORRUPTED if has_magic else NOT_AN_IMAGE) from err
    if not any(tag in dataset for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise ImageReadError("DICOM file has no pixel data" if has_magic else NOT_AN_IMAGE)
    try:
        rows, columns = int(dataset.Rows), int(dataset.Columns)
        photometric = str(dataset.PhotometricInterpretation).strip().upper()
        bit_depth = int(dataset.BitsAllocated)
        frames = int(dataset.get("NumberOfFrames") or 1)
    except _PYDICOM_ERRORS as err:
        raise ImageReadError(CORRUPTED) from err
    check_size(columns, rows, max_pixels)
    if photometric not in _DICOM_GREY | _DICOM_COLOUR | {_PALETTE}:
        raise ImageReadError(f"DICOM colour encoding {photometric!r} is not supported")
    grey = photometric in _DICOM_GREY
    # Greyscale goes through the modality LUT in float64: that copy is the largest.
    check_decoded(columns, rows, 1 if grey else 3, 8 if grey or photometric == _PALETTE else max(1, bit_depth // 8))
    failure = _check_transfer_syntax(dataset.file_meta.get("TransferSyntaxUID"))
    try:
        raw = pixel_array(dataset, index=0)  # decodes the first frame only
    except _PYDICOM_ERRORS as err:
        raise ImageReadError(failure) from err
    if raw.shape != ((rows, columns) if grey or photometric == _PALETTE else (rows, columns, 3)):
        raise ImageReadError(CORRUPTED)  # e.g. Samples per Pixel contradicts the encoding
    notes: tuple[str, ...] = ()
    try:
        if grey:
            pixels, notes = _dicom_grey_to_uint8(apply_modality_lut(raw, dataset), dataset)
        elif photometric == _PALETTE:
            pixels = _palette_to_uint8(raw, dataset)
        else:
            pixels = _dicom_colour_to_uint8(raw, dataset)
    except _PYDICOM_ERRORS as err:
        raise ImageReadError(CORRUPTED) from err
    if photometric == "MONOCHROME1":
        pixels = 255 - pixels  # MONOCHROME1 stores bright as low; show high as bright
    if frames > 1:
        notes = (f"multi-frame DICOM: only the first of {frames} frames was read", *notes)
    part = _body_part(dataset)
    if part:
        notes = (f"the DICOM header says the image shows {part} (BodyPartExamined), not the breast: check it "
                 "before reading any result", *notes)
    burned_in = str(dataset.get("BurnedInAnnotation", "")).strip().upper() == "YES"
    if burned_in:
        notes = (BURNED_IN_WARNING, *notes)
    pixels.flags.writeable = False
    modality = str(dataset.get("Modality", "") or "").strip().upper() or None
    return LoadedImage(pixels, "DICOM", photometric, bit_depth, notes, burned_in=burned_in, mpp=mpp_from_dicom(dataset),
                       dicom_modality=modality, view=_view(dataset))


_BREAST_PARTS = ("BREAST", "MAMMA", "MAMMO")


def _body_part(dataset: Dataset) -> str | None:
    """BodyPartExamined when it names something other than the breast (a defined term: no patient data)."""
    try:
        part = str(dataset.get("BodyPartExamined", "") or "").strip().upper()
    except _PYDICOM_ERRORS:
        return None
    return part[:32] if part and not part.startswith(_BREAST_PARTS) and part.replace(" ", "").isalnum() else None


def _view(dataset: Dataset) -> ViewInfo | None:
    """The header's side, view and exam key; ``None`` when those tags are malformed (never a failed read)."""
    try:
        return view_from_dicom(dataset)
    except _PYDICOM_ERRORS:
        return None


def _check_transfer_syntax(transfer_syntax: str | None) -> str:
    """Refuse a compression no installed plugin decodes; else give the message if decoding fails.

    Raises:
        ImageReadError: if no installed pydicom plugin decodes this transfer syntax.
    """
    uid = UID(transfer_syntax or "")
    if not uid.is_valid:
        return CORRUPTED  # missing or garbled: decoding will fail and say so
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        decoder = None
    if decoder is None or not decoder.is_available:
        raise ImageReadError(
            f"DICOM transfer syntax {uid.name!r} is not supported here: "
            "ask for an uncompressed export (Explicit VR Little Endian)"
        )
    if decoder.is_native:
        return CORRUPTED
    return (
        f"DICOM image compressed as {uid.name!r} could not be decoded: the data is corrupted, "
        "or this variant of the compression is not supported"
    )


def _dicom_grey_to_uint8(
    values: np.ndarray, dataset: Dataset
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Apply the VOI transform (PS3.3 C.11.2) to modality values, giving uint8.

    A VOI LUT Sequence wins over Window Center/Width (pydicom's default preference); with
    neither, the image's own min..max is used.
    """
    voi_luts = dataset.get("VOILUTSequence")
    if voi_luts:
        lut_bits = int(voi_luts[0].LUTDescriptor[2])
        return window(apply_voi(values, dataset, index=0), 0, 2**lut_bits - 1), ()
    settings = _window_settings(dataset)
    if settings is None:
        pixels, notes = own_range(values)
        if "WindowWidth" in dataset:
            notes = ("DICOM window settings are invalid; the full intensity range is shown",
                     *notes)
        return pixels, notes
    center, width, function = settings
    if function == "SIGMOID":
        with np.errstate(over="ignore"):
            sigmoid = 255.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
        return np.rint(sigmoid).astype(np.uint8), ()
    if function == "LINEAR_EXACT":
        return window(values, center - width / 2, center + width / 2), ()
    half = (width - 1.0) / 2  # LINEAR
    return window(values, center - 0.5 - half, center - 0.5 + half), ()


def _window_settings(dataset: Dataset) -> tuple[float, float, str] | None:
    """First Window Center/Width preset and VOI LUT Function (PS3.3 C.11.2.1.2), if valid.

    LINEAR maps ``(c - 0.5) +/- (w - 1) / 2`` to black/white and needs ``w >= 1``;
    LINEAR_EXACT maps ``c +/- w / 2``; SIGMOID is ``255 / (1 + exp(-4 (x - c) / w))``.
    Invalid settings give None too: a readable image is shown rather than refused.
    """
    if "WindowCenter" not in dataset or "WindowWidth" not in dataset:
        return None
    try:
        center = float(_first(dataset.WindowCenter))
        width = float(_first(dataset.WindowWidth))
        function = str(dataset.get("VOILUTFunction") or "LINEAR").strip().upper()
    except (TypeError, ValueError, IndexError):
        return None
    if function not in ("LINEAR_EXACT", "SIGMOID"):
        function = "LINEAR"  # the default when absent; unknown names are treated the same
    too_narrow = width < 1.0 if function == "LINEAR" else width <= 0.0
    if not (np.isfinite(center) and np.isfinite(width)) or too_narrow:
        return None
    return center, width, function


def _first(value: Any) -> Any:
    """The first value of a multi-valued DICOM element, or the value itself."""
    return value[0] if isinstance(value, MultiValue) else value


def _palette_to_uint8(indices: np.ndarray, dataset: Dataset) -> np.ndarray:
    """RGB through the file's palette lookup tables (PS3.3 C.7.6.3.1.5), scaled by the tables' bit depth."""
    rgb = apply_color_lut(indices, dataset)
    bits = int(dataset.RedPaletteColorLookupTableDescriptor[2])
    return window(rgb, 0, 2 ** bits - 1) if rgb.dtype != np.uint8 else rgb


def _dicom_colour_to_uint8(values: np.ndarray, dataset: Dataset) -> np.ndarray:
    """Scale RGB samples to uint8 over the range that Bits Stored allows."""
    if values.dtype == np.uint8:
        return values
    return window(values, 0, 2 ** int(dataset.BitsStored) - 1)
