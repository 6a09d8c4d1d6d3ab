"""Safe image loading: a path or uploaded bytes in, a uint8 array plus PHI-free metadata out.

Everything that reads an image file in bcc goes through ``read_image`` so that every page, the
training data loader and the CLI agree on orientation, colour handling and bit-depth scaling,
and so that a bad upload always ends in one exception type, ``ImageReadError``, whose message
a clinician can act on. Nothing is written to disk and nothing is logged: the only side
channel is ``LoadedImage.warnings``, which never holds patient-identifying DICOM tags or file
names (file names often carry patient names).

Supported: PNG, JPEG, TIFF, BMP, PGM/PPM, WebP via Pillow; DICOM via pydicom.
"""

from __future__ import annotations

import os
import struct
import warnings
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut, apply_voi, get_decoder, pixel_array
from pydicom.uid import UID

__all__ = ["DEFAULT_MAX_PIXELS", "ImageReadError", "LoadedImage", "read_image", "window"]

DEFAULT_MAX_PIXELS: int = 100_000_000
"""Largest width * height accepted by default: a 10,000 x 10,000 px region fits, while a
crafted file declaring a far larger canvas would exhaust memory when decoded."""

_NOT_AN_IMAGE = (
    "file is not an image (or not a supported format: "
    "PNG, JPEG, TIFF, BMP, PGM/PPM, WebP, DICOM)"
)
_CORRUPTED = "image is truncated or corrupted"
_BLANK = "image is blank: every pixel has the same value"

# Pillow plugins we accept; anything else (GIF, ICO, PSD, ...) is "not a supported format".
# The JPEG plugin may hand back an "MPO" image: a JPEG embedding several (camera) images.
_PILLOW_FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "PPM", "WEBP")

# File signatures of supported formats. Pillow reports a file that starts like a PNG but
# breaks off inside its header as "unidentified"; the signature tells us it is truncated.
_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"II+\x00")

# What Pillow's decoders raise on malformed input (fuzzing has found all of these).
_PILLOW_ERRORS = (
    OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError, TypeError
)

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

# Pillow modes decoded through numpy and windowed over their own range: Pillow's own
# ``convert("L")`` clips 16-bit and float values at 255 instead of scaling them.
_HIGH_DEPTH_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})
_PILLOW_MODES = _HIGH_DEPTH_MODES | {
    "1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr"
}
_DICOM_GREY = frozenset({"MONOCHROME1", "MONOCHROME2"})
# pydicom's pixel_array returns these as RGB (it converts YBR_FULL*; the JPEG 2000 decoders
# undo YBR_ICT/YBR_RCT themselves).
_DICOM_COLOUR = frozenset({"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT"})


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


def read_image(
    source: str | os.PathLike[str] | bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> LoadedImage:
    """Read an image file or uploaded bytes into a uint8 array.

    EXIF orientation is applied; transparency is composited on white (slides are white);
    palette and CMYK become RGB; 16-bit and float images are windowed over their own
    min..max; DICOM gets its modality LUT, then its VOI LUT or window, and MONOCHROME1 is
    inverted so that bright always means high. Only the first page or frame is read.

    Args:
        source: a file path, or the file's bytes (e.g. from an upload widget). A DICOM file
            is recognised by ``DICM`` at byte 128, or by a ``.dcm`` path.
        max_pixels: largest width * height accepted, checked before any pixel is decoded.

    Returns:
        The image and PHI-free metadata.

    Raises:
        ImageReadError: for any unreadable, unsupported, corrupted or too-large input.
        ValueError: if ``max_pixels`` is not a positive integer (a caller bug).
        TypeError: if ``source`` is not a path or bytes (a caller bug).
    """
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise ValueError(f"max_pixels must be a positive integer, got {max_pixels!r}")
    data, named_dcm = _read_source(source)
    if not data:
        raise ImageReadError("file is empty")
    has_dicom_magic = data[128:132] == b"DICM"
    if has_dicom_magic or named_dcm:
        return _read_dicom(data, max_pixels, has_dicom_magic)
    return _read_pillow(data, max_pixels)


def _read_source(source: str | os.PathLike[str] | bytes) -> tuple[bytes, bool]:
    """Return the file's bytes and whether its name ends in ``.dcm``.

    Messages never include the path: file names often carry patient names.
    """
    if isinstance(source, bytes):
        return source, False
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"source must be a path or bytes, got {type(source).__name__}")
    path = Path(source)
    try:
        data = path.read_bytes()
    except FileNotFoundError as err:
        raise ImageReadError("file not found") from err
    except IsADirectoryError as err:
        raise ImageReadError("path is a folder, not a file") from err
    except PermissionError as err:
        raise ImageReadError("file could not be opened: permission denied") from err
    except OSError as err:
        raise ImageReadError("file could not be read") from err
    return data, path.suffix.lower() == ".dcm"


def _check_size(width: int, height: int, max_pixels: int) -> None:
    """Refuse a canvas over ``max_pixels`` before its pixels are decoded."""
    if width * height > max_pixels:
        raise ImageReadError(
            f"image too large: {_megapixels(width * height)} megapixels, "
            f"limit {_megapixels(max_pixels)} megapixels"
        )


def _megapixels(pixels: int) -> str:
    """Format a pixel count in megapixels without rounding two different counts together."""
    return f"{pixels / 1_000_000:.10g}"


def _own_range(values: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """Window an array over its own finite min..max; a single-value image becomes black."""
    finite = values if values.dtype.kind in "biu" else values[np.isfinite(values)]
    if finite.size == 0 or finite.min() == finite.max():
        return np.zeros(values.shape, np.uint8), (_BLANK,)
    return window(values, float(finite.min()), float(finite.max())), ()


# --- Pillow formats -------------------------------------------------------------------------


def _read_pillow(data: bytes, max_pixels: int) -> LoadedImage:
    """Decode a PNG, JPEG, TIFF, BMP, PGM/PPM or WebP file with Pillow."""
    image = _open_pillow(data, max_pixels)
    _check_size(*image.size, max_pixels)
    if image.mode not in _PILLOW_MODES:
        raise ImageReadError(f"image colour mode {image.mode!r} is not supported")
    fmt = "JPEG" if image.format == "MPO" else str(image.format)
    source_mode = image.mode
    notes: list[str] = []
    try:
        bit_depth = _pillow_bit_depth(image, data)
        frames = getattr(image, "n_frames", 1)
        # A full load() makes a truncated file fail here instead of showing grey rows; it
        # relies on ImageFile.LOAD_TRUNCATED_IMAGES being left at its default, False.
        image.load()
        image = ImageOps.exif_transpose(image)
        pixels, conversion_notes = _to_uint8(image)
    except _PILLOW_ERRORS as err:
        raise ImageReadError(_CORRUPTED) from err
    if frames > 1:
        unit = "page" if fmt == "TIFF" else "frame"
        notes.append(f"multi-{unit} {fmt}: only the first of {frames} {unit}s was read")
    notes.extend(conversion_notes)
    pixels.flags.writeable = False
    return LoadedImage(pixels, fmt, source_mode, bit_depth, tuple(notes))


def _open_pillow(data: bytes, max_pixels: int) -> Image.Image:
    """Open lazily (header only), turning Pillow's own bomb guard into ``ImageReadError``.

    Pillow warns above ``Image.MAX_IMAGE_PIXELS`` and refuses above twice that. The warning is
    silenced here, without touching the global limit, because ``max_pixels`` is the policy
    and is checked right after opening; the refusal is reported in our own terms.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(BytesIO(data), formats=_PILLOW_FORMATS)
    except Image.DecompressionBombError as err:
        pillow_limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        raise ImageReadError(
            f"image too large: over {_megapixels(pillow_limit)} megapixels, "
            f"limit {_megapixels(min(max_pixels, pillow_limit))} megapixels"
        ) from err
    except Image.UnidentifiedImageError as err:
        if data.startswith(_SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
            raise ImageReadError(_CORRUPTED) from err
        raise ImageReadError(_NOT_AN_IMAGE) from err
    except _PILLOW_ERRORS as err:
        raise ImageReadError(_CORRUPTED) from err


def _to_uint8(image: Image.Image) -> tuple[np.ndarray, tuple[str, ...]]:
    """Convert a loaded Pillow image to uint8 HxW (greyscale) or HxWx3 (colour)."""
    mode = image.mode
    if mode in _HIGH_DEPTH_MODES:
        return _own_range(np.asarray(image))
    if mode == "1":
        return np.array(image.convert("L")), ()
    transparent = "transparency" in image.info
    if mode in ("LA", "La") or (mode == "L" and transparent):
        return _composite_on_white(np.asarray(image.convert("LA"))), ()
    if mode == "L":
        return np.array(image), ()
    if mode in ("P", "PA", "RGBA", "RGBa") or (mode == "RGB" and transparent):
        # Palette images go through RGBA too, so a transparent palette index becomes white.
        return _composite_on_white(np.asarray(image.convert("RGBA"))), ()
    return np.array(image.convert("RGB")), ()  # RGB, RGBX, CMYK, YCbCr


def _composite_on_white(with_alpha: np.ndarray) -> np.ndarray:
    """Blend the last (alpha) channel onto white: ``colour * a + 255 * (1 - a)``.

    Transparent areas of an H&E image are background, which is white glass, not black.
    """
    alpha = with_alpha[..., -1:].astype(np.float32) / 255.0
    colour = with_alpha[..., :-1].astype(np.float32)
    blended = np.rint(colour * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return blended[..., 0] if blended.shape[-1] == 1 else blended


def _pillow_bit_depth(image: Image.Image, data: bytes) -> int:
    """Bits per sample as stored in the file; call before the image is transposed.

    Pillow's mode alone hides it: 16-bit RGB PNG/TIFF decode to 8-bit ``RGB`` and 16-bit PGM
    to 32-bit ``I``, so the file's own header is asked where that is cheap.
    """
    if image.format == "TIFF":
        bits = image.tag_v2.get(258)  # BitsPerSample, one value per channel
        if bits:
            return int(max(bits)) if isinstance(bits, tuple) else int(bits)
    if image.format == "PNG" and data[12:16] == b"IHDR":
        return data[24]  # IHDR bit depth (of the palette index for palette images)
    if image.format == "PPM" and image.mode == "I":
        return 16  # a PGM whose maximum value is above 255
    if image.mode.startswith("I;16"):
        return 16
    return {"1": 1, "I": 32, "F": 32}.get(image.mode, 8)


# --- DICOM ----------------------------------------------------------------------------------


def _read_dicom(data: bytes, max_pixels: int, has_magic: bool) -> LoadedImage:
    """Decode the first frame of a DICOM file; only technical tags are ever read.

    Patient tags are never accessed, so pydicom never even converts (or warns about) them.
    """
    try:
        dataset = dcmread(BytesIO(data), force=not has_magic)
    except _PYDICOM_ERRORS as err:
        raise ImageReadError(_CORRUPTED if has_magic else _NOT_AN_IMAGE) from err
    if not any(tag in dataset for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise ImageReadError("DICOM file has no pixel data" if has_magic else _NOT_AN_IMAGE)
    try:
        rows, columns = int(dataset.Rows), int(dataset.Columns)
        photometric = str(dataset.PhotometricInterpretation).strip().upper()
        bit_depth = int(dataset.BitsAllocated)
        frames = int(dataset.get("NumberOfFrames") or 1)
    except _PYDICOM_ERRORS as err:
        raise ImageReadError(_CORRUPTED) from err
    _check_size(columns, rows, max_pixels)
    if photometric not in _DICOM_GREY | _DICOM_COLOUR:
        raise ImageReadError(f"DICOM colour encoding {photometric!r} is not supported")
    failure = _check_transfer_syntax(dataset.file_meta.get("TransferSyntaxUID"))
    try:
        raw = pixel_array(dataset, index=0)  # decodes the first frame only
    except _PYDICOM_ERRORS as err:
        raise ImageReadError(failure) from err
    grey = photometric in _DICOM_GREY
    if raw.shape != ((rows, columns) if grey else (rows, columns, 3)):
        raise ImageReadError(_CORRUPTED)  # e.g. Samples per Pixel contradicts the encoding
    notes: tuple[str, ...] = ()
    try:
        if grey:
            pixels, notes = _dicom_grey_to_uint8(apply_modality_lut(raw, dataset), dataset)
        else:
            pixels = _dicom_colour_to_uint8(raw, dataset)
    except _PYDICOM_ERRORS as err:
        raise ImageReadError(_CORRUPTED) from err
    if photometric == "MONOCHROME1":
        pixels = 255 - pixels  # MONOCHROME1 stores bright as low; show high as bright
    if frames > 1:
        notes = (f"multi-frame DICOM: only the first of {frames} frames was read", *notes)
    pixels.flags.writeable = False
    return LoadedImage(pixels, "DICOM", photometric, bit_depth, notes)


def _check_transfer_syntax(transfer_syntax: str | None) -> str:
    """Refuse a compression no installed plugin decodes; else give the message if decoding fails.

    Raises:
        ImageReadError: if no installed pydicom plugin decodes this transfer syntax.
    """
    uid = UID(transfer_syntax or "")
    if not uid.is_valid:
        return _CORRUPTED  # missing or garbled: decoding will fail and say so
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
        return _CORRUPTED
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
        pixels, notes = _own_range(values)
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


def _dicom_colour_to_uint8(values: np.ndarray, dataset: Dataset) -> np.ndarray:
    """Scale RGB samples to uint8 over the range that Bits Stored allows."""
    if values.dtype == np.uint8:
        return values
    return window(values, 0, 2 ** int(dataset.BitsStored) - 1)
