"""Safe image loading: a path or uploaded bytes in, a uint8 array plus PHI-free metadata out.

Everything that reads an image file in bcc goes through ``read_image`` so that every page, the
training data loader and the CLI agree on orientation, colour handling and bit-depth scaling,
and so that a bad upload always ends in one exception type, ``ImageReadError``, whose message
a clinician can act on. Nothing is written to disk and nothing is logged: the only side
channel is ``LoadedImage.warnings``, which never holds patient-identifying DICOM tags or file
names (file names often carry patient names).

Supported: PNG, JPEG, TIFF, BMP, PGM/PPM, WebP via Pillow; DICOM via pydicom (``dicom.py``).
"""

from __future__ import annotations

import os
import re
import struct
import warnings
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from bcc_model.imaging.scale import mpp_from_tiff
from bcc_model.imaging.pixels import (CORRUPTED, NOT_AN_IMAGE, ImageReadError, LoadedImage, check_decoded, check_size,
                                      megapixels, own_range, row_blocks, window)

__all__ = ["DEFAULT_MAX_PIXELS", "IMAGE_SUFFIXES", "ImageReadError", "LoadedImage", "read_image", "window"]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".pgm", ".ppm", ".webp", ".dcm"}
"""File endings read as single images (training folders, batches, the app's uploader)."""

DEFAULT_MAX_PIXELS: int = 100_000_000
"""Largest width * height accepted by default: a 10,000 x 10,000 px region fits, while a
crafted file declaring a far larger canvas would exhaust memory when decoded."""

# Pillow plugins we accept; anything else (GIF, ICO, PSD, ...) is "not a supported format".
# The JPEG plugin may hand back an "MPO" image: a JPEG embedding several (camera) images.
_PILLOW_FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "PPM", "WEBP")

# File signatures of supported formats. Pillow reports a file that starts like a PNG but
# breaks off inside its header as "unidentified"; the signature tells us it is truncated.
_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"II+\x00")
_TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
# First two bytes of a DICOM data set written without its preamble (little-endian group 0002 or
# 0008): the only bare data sets worth handing to pydicom.
_DICOM_GROUPS = (b"\x02\x00", b"\x08\x00")

# What Pillow's decoders raise on malformed input (fuzzing has found all of these).
_PILLOW_ERRORS = (
    OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError, TypeError
)

# Pillow modes decoded through numpy and windowed over their own range: Pillow's own
# ``convert("L")`` clips 16-bit and float values at 255 instead of scaling them.
_HIGH_DEPTH_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})
_MODE_BYTES = {"I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2, "I": 4, "F": 4}
_PILLOW_MODES = _HIGH_DEPTH_MODES | {
    "1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr"
}


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
        from bcc_model.imaging.dicom import read_dicom

        return read_dicom(data, max_pixels, has_dicom_magic)
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


# --- Pillow formats -------------------------------------------------------------------------


class _NotForPillow(Exception):
    """Pillow cannot open it, but another reader may: a TIFF Pillow lacks a mode for, or bare DICOM."""


def _read_tiff(data: bytes, max_pixels: int) -> LoadedImage:
    """A TIFF Pillow cannot decode (float or 32-bit RGB): the first page through tifffile, windowed.

    Float samples are windowed over the image's own finite min..max (``pixels.own_range``), as
    Pillow-read 16-bit and float greyscale images are.
    """
    import tifffile

    try:
        with tifffile.TiffFile(BytesIO(data)) as tiff:
            page = tiff.pages[0]
            check_size(int(page.imagewidth), int(page.imagelength), max_pixels)
            samples = int(page.samplesperpixel)
            if samples not in (1, 3, 4):
                raise ImageReadError(f"TIFF with {samples} samples per pixel is not supported (greyscale or RGB only)")
            check_decoded(int(page.imagewidth), int(page.imagelength), samples, int(page.dtype.itemsize))
            values, pages = page.asarray(), len(tiff.pages)
            tags = page.tags
            mpp = mpp_from_tiff(page.description,
                                tags["XResolution"].value if "XResolution" in tags else None,
                                tags["ResolutionUnit"].value if "ResolutionUnit" in tags else None)
    except ImageReadError:
        raise
    except Exception as err:  # tifffile raises many types on malformed input
        raise ImageReadError(CORRUPTED) from err
    if values.ndim == 3 and values.shape[-1] in (3, 4):
        values = values[..., :3]
    elif values.ndim != 2:
        raise ImageReadError(f"TIFF sample layout {values.shape} is not supported (greyscale or RGB only)")
    pixels, notes = own_range(values)
    notes = (f"{values.dtype} TIFF windowed over its own range to 8 bits", *notes)
    if pages > 1:
        notes = (*notes, f"multi-page TIFF: only the first of {pages} pages was read")
    pixels.flags.writeable = False
    return LoadedImage(pixels, "TIFF", f"{values.dtype}", values.dtype.itemsize * 8, notes, mpp=mpp)


def _read_pillow(data: bytes, max_pixels: int) -> LoadedImage:
    """Decode a PNG, JPEG, TIFF, BMP, PGM/PPM or WebP file with Pillow (tifffile or DICOM where Pillow cannot)."""
    try:
        image = _open_pillow(data, max_pixels)
    except _NotForPillow:
        if data.startswith(_TIFF_SIGNATURES):
            return _read_tiff(data, max_pixels)
        from bcc_model.imaging.dicom import read_dicom

        return read_dicom(data, max_pixels, has_magic=False)
    check_size(*image.size, max_pixels)
    if image.mode not in _PILLOW_MODES:
        raise ImageReadError(f"image colour mode {image.mode!r} is not supported")
    check_decoded(*image.size, len(image.getbands()), _MODE_BYTES.get(image.mode, 1))
    fmt = "JPEG" if image.format == "MPO" else str(image.format)
    source_mode = image.mode
    mpp = _pillow_tiff_mpp(image) if fmt == "TIFF" else None
    notes: list[str] = []
    try:
        bit_depth = _pillow_bit_depth(image, data)
        frames = getattr(image, "n_frames", 1)
        # A full load() makes a truncated file fail here instead of showing grey rows; it
        # relies on ImageFile.LOAD_TRUNCATED_IMAGES being left at its default, False.
        image.load()
        ImageOps.exif_transpose(image, in_place=True)  # in place: a copy would double the peak
        pixels, conversion_notes = _to_uint8(image)
    except _PILLOW_ERRORS as err:
        raise ImageReadError(CORRUPTED) from err
    if frames > 1:
        unit = "page" if fmt == "TIFF" else "frame"
        notes.append(f"multi-{unit} {fmt}: only the first of {frames} {unit}s was read")
    notes.extend(conversion_notes)
    pixels.flags.writeable = False
    return LoadedImage(pixels, fmt, source_mode, bit_depth, tuple(notes), mpp=mpp)


def _pillow_tiff_mpp(image: Image.Image) -> float | None:
    """The scale a TIFF opened by Pillow records (tags 270 ImageDescription, 282 XResolution, 296 ResolutionUnit)."""
    tags = getattr(image, "tag_v2", None)
    if tags is None:
        return None
    x_resolution = tags.get(282)
    if x_resolution is not None and hasattr(x_resolution, "numerator"):
        x_resolution = (x_resolution.numerator, x_resolution.denominator)
    return mpp_from_tiff(tags.get(270), x_resolution, tags.get(296))


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
        # Pillow's message carries the size the header declares: report it and our own limit.
        declared = re.search(r"\((\d+) pixels\)", str(err))
        size = f"{megapixels(int(declared.group(1)))} megapixels" if declared else "too many pixels"
        limit = min(max_pixels, 2 * (Image.MAX_IMAGE_PIXELS or max_pixels))  # Pillow refuses above twice its own
        raise ImageReadError(f"image too large: {size}, limit {megapixels(limit)} megapixels") from err
    except Image.UnidentifiedImageError as err:
        if data.startswith(_TIFF_SIGNATURES):
            raise _NotForPillow from err  # e.g. float RGB: tifffile reads it (``_read_tiff``)
        if data.startswith(_SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
            raise ImageReadError(CORRUPTED) from err
        if data[:2] in _DICOM_GROUPS:
            raise _NotForPillow from err  # a DICOM data set without its 128-byte preamble
        raise ImageReadError(NOT_AN_IMAGE) from err
    except _PILLOW_ERRORS as err:
        raise ImageReadError(CORRUPTED) from err


def _to_uint8(image: Image.Image) -> tuple[np.ndarray, tuple[str, ...]]:
    """Convert a loaded Pillow image to uint8 HxW (greyscale) or HxWx3 (colour)."""
    mode = image.mode
    if mode in _HIGH_DEPTH_MODES:
        return own_range(np.asarray(image))
    if mode == "1":
        return np.array(image.convert("L")), ()
    transparent = "transparency" in image.info
    if mode in ("LA", "La") or (mode == "L" and transparent):
        return _composite_on_white(image if mode == "LA" else image.convert("LA")), ()
    if mode in ("L", "RGB") and not transparent:
        return np.asarray(image), ()  # a view of Pillow's bytes: no second copy of a large image
    if mode in ("P", "PA", "RGBA", "RGBa") or (mode == "RGB" and transparent):
        # Palette images go through RGBA too, so a transparent palette index becomes white.
        return _composite_on_white(image if mode == "RGBA" else image.convert("RGBA")), ()
    return np.array(image.convert("RGB")), ()  # RGB, RGBX, CMYK, YCbCr


def _composite_on_white(image: Image.Image) -> np.ndarray:
    """Blend an ``LA`` or ``RGBA`` image's alpha onto white: ``round(colour * a + 255 * (1 - a))``.

    Transparent areas of an H&E image are background, which is white glass, not black. Integer
    arithmetic on bands of rows (``(c * a + 255 * (255 - a) + 127) // 255``, exactly the rounded
    blend) keeps the peak near the decoded image instead of several float copies of it.
    """
    width, height = image.size
    channels = len(image.getbands()) - 1
    out = np.empty((height, width, channels), np.uint8)
    for rows in row_blocks(out):
        top, bottom = rows.start, min(rows.stop, height)
        block = np.asarray(image.crop((0, top, width, bottom)), dtype=np.uint16).reshape(bottom - top, width, -1)
        alpha = block[..., -1:]
        out[top:bottom] = (block[..., :-1] * alpha + 255 * (255 - alpha) + 127) // 255
    return out[..., 0] if channels == 1 else out


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
