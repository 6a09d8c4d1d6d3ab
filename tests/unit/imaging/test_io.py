"""Tests for bcc_model.io: every format round-trips, every bad input gives ImageReadError.

All files are built in memory (or in tmp_path) with Pillow, numpy and pydicom, so the tests
need no fixtures on disk beyond the one real sample patch.
"""

from __future__ import annotations

import struct
import warnings
import zlib
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    UID,
    DigitalMammographyXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    MPEG2MPML,
    generate_uid,
)

from bcc_model.imaging.io import DEFAULT_MAX_PIXELS, read_image
from bcc_model.imaging.pixels import ImageReadError, LoadedImage, window
from tests.conftest import ROOT
from tests.hostile import PATIENT_TAGS, make_dicom

SAMPLE_PATCH = next((ROOT / "samples" / "histopathology" / "benign").glob("*.png"))


# --- helpers --------------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    """Save a Pillow image to bytes in the given format."""
    buffer = BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def rgb_gradient(height: int = 24, width: int = 32) -> np.ndarray:
    """A smooth HxWx3 uint8 image whose channels differ (survives lossy codecs)."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack(
        [x * 255 // (width - 1), y * 255 // (height - 1), np.full_like(x, 128)], axis=-1
    ).astype(np.uint8)


def noise(height: int = 64, width: int = 64, channels: int = 3) -> np.ndarray:
    """Incompressible pixels, so a file cut in half loses image data, not just trailers."""
    return np.random.default_rng(0).integers(0, 256, (height, width, channels), dtype=np.uint8)


def ramp16() -> np.ndarray:
    """A 16-bit ramp from 0 to 65535 across 256 columns, 4 rows."""
    return np.tile(np.linspace(0, 65535, 256).round().astype(np.uint16), (4, 1))


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG header declaring a huge canvas, with an empty IDAT: cheap to open."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")


def read_error(source: object, **kwargs: object) -> str:
    """The ImageReadError message read_image raises for this source."""
    with pytest.raises(ImageReadError) as caught:
        read_image(source, **kwargs)  # type: ignore[arg-type]
    return str(caught.value)


# --- window ---------------------------------------------------------------------------------


def test_window_maps_linearly_and_clips() -> None:
    values = np.array([-10.0, 0.0, 40.0, 100.0, 1e9, np.nan])
    assert window(values, 0, 100).tolist() == [0, 0, 102, 255, 255, 0]


def test_window_zero_width_is_a_threshold_not_a_division_by_zero() -> None:
    assert window(np.array([4, 5, 6]), 5, 5).tolist() == [0, 0, 255]


def test_window_does_not_modify_its_input() -> None:
    values = np.array([1.0, 2.0, 3.0])
    window(values, 1, 3)
    assert values.tolist() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize(("low", "high"), [(2, 1), (0, np.inf), (np.nan, 1)])
def test_window_refuses_bad_bounds(low: float, high: float) -> None:
    with pytest.raises(ValueError, match="low <= high"):
        window(np.zeros(3), low, high)


# --- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "params", "expected_format"),
    [
        ("PNG", {}, "PNG"),
        ("TIFF", {}, "TIFF"),
        ("BMP", {}, "BMP"),
        ("PPM", {}, "PPM"),
        ("WEBP", {"lossless": True}, "WEBP"),
    ],
)
def test_lossless_rgb_formats_round_trip_exactly(
    fmt: str, params: dict[str, object], expected_format: str
) -> None:
    pixels = rgb_gradient()
    loaded = read_image(encode(Image.fromarray(pixels), fmt, **params))
    assert loaded.format == expected_format
    assert loaded.source_mode == "RGB"
    assert loaded.bit_depth == 8
    assert loaded.pixels.dtype == np.uint8
    np.testing.assert_array_equal(loaded.pixels, pixels)
    assert not loaded.is_greyscale
    assert loaded.warnings == ()


@pytest.mark.parametrize(("fmt", "expected_format"), [("PNG", "PNG"), ("PPM", "PPM")])
def test_greyscale_png_and_pgm_stay_two_dimensional(fmt: str, expected_format: str) -> None:
    pixels = rgb_gradient()[..., 0]
    loaded = read_image(encode(Image.fromarray(pixels), fmt))
    assert loaded.format == expected_format
    assert loaded.source_mode == "L"
    assert loaded.is_greyscale
    np.testing.assert_array_equal(loaded.pixels, pixels)


def test_jpeg_round_trips_within_compression_error() -> None:
    pixels = rgb_gradient()
    loaded = read_image(encode(Image.fromarray(pixels), "JPEG", quality=95))
    assert (loaded.format, loaded.source_mode, loaded.pixels.shape) == ("JPEG", "RGB", (24, 32, 3))
    assert np.abs(loaded.pixels.astype(int) - pixels).mean() < 3


def test_reads_from_a_path_the_same_as_from_bytes(tmp_path: Path) -> None:
    data = encode(Image.fromarray(rgb_gradient()), "PNG")
    path = tmp_path / "slide.png"
    path.write_bytes(data)
    from_path, from_bytes = read_image(path), read_image(data)
    np.testing.assert_array_equal(from_path.pixels, from_bytes.pixels)
    assert read_image(str(path)).format == "PNG"


def test_identical_channels_stay_rgb() -> None:
    grey_rgb = np.repeat(rgb_gradient()[..., :1], 3, axis=-1)
    loaded = read_image(encode(Image.fromarray(grey_rgb), "PNG"))
    assert loaded.pixels.shape == (24, 32, 3)


def test_pixels_are_read_only() -> None:
    loaded = read_image(encode(Image.fromarray(rgb_gradient()), "PNG"))
    with pytest.raises(ValueError):
        loaded.pixels[0, 0, 0] = 1


def test_real_histopathology_patch() -> None:
    loaded = read_image(SAMPLE_PATCH)
    assert loaded.pixels.shape == (50, 50, 3)
    assert loaded.pixels.dtype == np.uint8
    assert loaded.format == "PNG"


# --- orientation, pages ---------------------------------------------------------------------


def test_exif_orientation_is_applied() -> None:
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = (255, 0, 0)  # left half red
    pixels[:, 20:] = (0, 0, 255)  # right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated; display turns it 90 degrees clockwise
    loaded = read_image(encode(Image.fromarray(pixels), "JPEG", exif=exif, quality=95))
    assert loaded.pixels.shape == (40, 20, 3)
    top, bottom = loaded.pixels[:15].mean(axis=(0, 1)), loaded.pixels[-15:].mean(axis=(0, 1))
    assert top[0] > 200 > top[2]  # the left (red) half is now on top
    assert bottom[2] > 200 > bottom[0]


def test_multi_page_tiff_reads_first_page_with_warning() -> None:
    pages = [Image.fromarray(np.full((8, 8), value, np.uint8)) for value in (10, 20, 30)]
    data = encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    loaded = read_image(data)
    assert loaded.format == "TIFF"
    assert np.all(loaded.pixels == 10)
    assert loaded.warnings == ("multi-page TIFF: only the first of 3 pages was read",)


# --- high bit depth -------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["TIFF", "PNG", "PPM"])
def test_16_bit_ramp_keeps_its_full_range(fmt: str) -> None:
    data = encode(Image.fromarray(ramp16()), fmt)
    loaded = read_image(data)
    row = loaded.pixels[0].astype(int)
    assert loaded.bit_depth == 16
    assert loaded.is_greyscale
    assert (row.min(), row.max()) == (0, 255)
    assert np.all(np.diff(row) >= 0)
    # Pillow's convert("L") clips: everything above 255 would be white.
    assert np.count_nonzero(row == 255) == 1
    assert abs(int(row[128]) - 128) <= 1


def test_tiff_16_bit_reports_its_mode() -> None:
    loaded = read_image(encode(Image.fromarray(ramp16()), "TIFF"))
    assert loaded.source_mode == "I;16"
    assert loaded.format == "TIFF"


def test_float_image_is_windowed_over_its_own_range() -> None:
    values = np.linspace(-1.5, 2.5, 64, dtype=np.float32).reshape(8, 8)
    loaded = read_image(encode(Image.fromarray(values, mode="F"), "TIFF"))
    assert (loaded.source_mode, loaded.bit_depth) == ("F", 32)
    assert (loaded.pixels.min(), loaded.pixels.max()) == (0, 255)
    assert np.all(np.diff(loaded.pixels.ravel().astype(int)) >= 0)


def test_constant_16_bit_image_is_blank_not_an_error() -> None:
    data = encode(Image.fromarray(np.full((8, 8), 1000, np.uint16)), "PNG")
    loaded = read_image(data)
    assert loaded.pixels.shape == (8, 8)
    assert np.all(loaded.pixels == 0)
    assert loaded.warnings == ("image is blank: every pixel has the same value",)


# --- colour modes ---------------------------------------------------------------------------


def test_cmyk_becomes_rgb() -> None:
    cmyk = np.zeros((2, 2, 4), np.uint8)
    cmyk[0, 0] = (255, 0, 0, 0)  # cyan
    loaded = read_image(encode(Image.fromarray(cmyk, mode="CMYK"), "TIFF"))
    assert loaded.source_mode == "CMYK"
    assert loaded.pixels[0, 0].tolist() == [0, 255, 255]
    assert loaded.pixels[1, 1].tolist() == [255, 255, 255]


def test_palette_with_transparency_becomes_rgb_on_white() -> None:
    image = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), mode="P")
    image.putpalette([0, 0, 0, 200, 30, 40])  # index 0 black, index 1 red-ish
    loaded = read_image(encode(image, "PNG", transparency=0))
    assert (loaded.source_mode, loaded.pixels.shape) == ("P", (2, 2, 3))
    assert loaded.pixels[0, 0].tolist() == [255, 255, 255]  # transparent black -> white
    assert loaded.pixels[0, 1].tolist() == [200, 30, 40]


def test_rgba_is_composited_on_white() -> None:
    rgba = np.array([[[255, 0, 0, 0], [0, 0, 0, 128], [10, 20, 30, 255]]], np.uint8)
    loaded = read_image(encode(Image.fromarray(rgba, mode="RGBA"), "PNG"))
    assert loaded.source_mode == "RGBA"
    assert loaded.pixels.tolist() == [[[255, 255, 255], [127, 127, 127], [10, 20, 30]]]


def test_la_is_composited_on_white_and_stays_greyscale() -> None:
    la = np.array([[[0, 0], [0, 255], [100, 51]]], np.uint8)
    loaded = read_image(encode(Image.fromarray(la, mode="LA"), "PNG"))
    assert (loaded.source_mode, loaded.is_greyscale) == ("LA", True)
    assert loaded.pixels.tolist() == [[255, 0, 224]]


def test_one_bit_image_becomes_black_and_white() -> None:
    image = Image.fromarray(np.array([[0, 255]], np.uint8)).convert("1")
    loaded = read_image(encode(image, "PNG"))
    assert (loaded.source_mode, loaded.bit_depth) == ("1", 1)
    assert loaded.pixels.tolist() == [[0, 255]]


# --- bad input ------------------------------------------------------------------------------


def test_zero_bytes() -> None:
    assert read_error(b"") == "file is empty"


def test_empty_file_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    assert read_error(path) == "file is empty"


def test_text_named_png_is_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "report.png"
    path.write_text("Histology report: benign.\n")
    assert read_error(path).startswith("file is not an image")


def test_unsupported_format_is_named_as_such() -> None:
    gif = encode(Image.fromarray(rgb_gradient()), "GIF")
    assert "not a supported format" in read_error(gif)


def test_truncated_png() -> None:
    data = encode(Image.fromarray(noise()), "PNG")
    assert read_error(data[: len(data) // 2]) == "image is truncated or corrupted"


def test_png_cut_inside_its_header_is_truncated_not_unknown() -> None:
    data = encode(Image.fromarray(noise()), "PNG")
    assert read_error(data[:20]) == "image is truncated or corrupted"


def test_truncated_jpeg_raises_instead_of_showing_grey() -> None:
    data = encode(Image.fromarray(noise()), "JPEG", quality=90)
    assert read_error(data[: len(data) // 2]) == "image is truncated or corrupted"


def test_over_limit_names_both_sizes() -> None:
    data = encode(Image.fromarray(rgb_gradient(100, 100)), "PNG")
    message = read_error(data, max_pixels=5_000)
    assert message == "image too large: 0.01 megapixels, limit 0.005 megapixels"


def test_pillow_bomb_guard_becomes_image_read_error() -> None:
    # 400 MP is over Pillow's own hard limit, which refuses it while opening.
    message = read_error(png_header_only(20_000, 20_000), max_pixels=10**10)
    assert message == "image too large: 400 megapixels, limit 178.95697 megapixels"  # the size, not "over"


def test_default_limit_is_ours_and_pillow_warnings_do_not_escape() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow warns above ~89 MP; that must stay inside
        too_large = read_error(png_header_only(10_500, 10_500))
        # 90.25 MP is within our 100 MP default: it gets as far as decoding (and has no data).
        within_limit = read_error(png_header_only(9_500, 9_500))
    assert too_large == "image too large: 110.25 megapixels, limit 100 megapixels"
    assert within_limit == "image is truncated or corrupted"


def test_missing_file(tmp_path: Path) -> None:
    assert read_error(tmp_path / "nowhere.png") == "file not found"


def test_bad_arguments_are_caller_bugs_not_read_errors() -> None:
    with pytest.raises(ValueError, match="max_pixels"):
        read_image(b"x", max_pixels=0)
    with pytest.raises(TypeError, match="path or bytes"):
        read_image(42)  # type: ignore[arg-type]


def test_loaded_image_refuses_wrong_layout() -> None:
    with pytest.raises(ValueError, match="uint8"):
        LoadedImage(np.zeros((2, 2), np.float32), "PNG", "F", 32)


# --- DICOM ----------------------------------------------------------------------------------


def test_dicom_monochrome2_16_bit() -> None:
    loaded = read_image(make_dicom(ramp16()))
    assert (loaded.format, loaded.source_mode, loaded.bit_depth) == ("DICOM", "MONOCHROME2", 16)
    assert loaded.is_greyscale
    assert (loaded.pixels.min(), loaded.pixels.max()) == (0, 255)
    assert np.all(np.diff(loaded.pixels[0].astype(int)) >= 0)


def test_dicom_detected_by_dcm_name_without_preamble(tmp_path: Path) -> None:
    path = tmp_path / "scan.dcm"
    path.write_bytes(make_dicom(ramp16())[132:])  # drop preamble and DICM magic
    assert read_image(path).format == "DICOM"


def test_dicom_monochrome1_is_inverted() -> None:
    pixels = np.zeros((4, 4), np.uint16)
    pixels[0, 0] = 4000  # high value: dark in MONOCHROME1
    loaded = read_image(make_dicom(pixels, photometric="MONOCHROME1", bits_stored=12))
    assert loaded.source_mode == "MONOCHROME1"
    assert loaded.pixels[0, 0] == 0
    assert loaded.pixels[1, 1] == 255


def test_dicom_rescale_slope_and_intercept_are_applied() -> None:
    pixels = np.array([[0, 100, 200]], np.uint16)
    # Modality values -1000, 0, 1000; a window 0..1000 only makes sense after rescaling.
    data = make_dicom(
        pixels,
        RescaleSlope=10,
        RescaleIntercept=-1000,
        WindowCenter=500.5,
        WindowWidth=1001,
    )
    assert read_image(data).pixels.tolist() == [[0, 0, 255]]


def test_dicom_window_centre_width_clips_outside_values() -> None:
    pixels = np.array([[0, 1000, 1200, 2000, 4000]], np.uint16)
    data = make_dicom(pixels, WindowCenter=1500.5, WindowWidth=1001)
    assert read_image(data).pixels.tolist() == [[0, 0, 51, 255, 255]]


def test_dicom_sigmoid_window() -> None:
    pixels = np.array([[0, 100, 1000]], np.uint16)
    data = make_dicom(pixels, WindowCenter=100, WindowWidth=50, VOILUTFunction="SIGMOID")
    assert read_image(data).pixels.tolist() == [[0, 128, 255]]


def test_dicom_invalid_window_falls_back_to_full_range_with_warning() -> None:
    pixels = np.array([[0, 50, 100]], np.uint16)
    loaded = read_image(make_dicom(pixels, WindowCenter=50, WindowWidth=0))
    assert loaded.pixels.tolist() == [[0, 128, 255]]
    assert loaded.warnings == (
        "DICOM window settings are invalid; the full intensity range is shown",
    )


def test_dicom_voi_lut_wins_over_window() -> None:
    lut = Dataset()
    lut.add_new("LUTDescriptor", "US", [4, 0, 8])  # 4 entries from value 0, 8-bit output
    lut.add_new("LUTData", "US", [255, 170, 85, 0])  # an inverting lookup table
    data = make_dicom(
        np.array([[0, 1, 2, 3, 10]], np.uint16),
        VOILUTSequence=[lut],
        WindowCenter=1000,
        WindowWidth=10,
    )
    assert read_image(data).pixels.tolist() == [[255, 170, 85, 0, 0]]


def test_dicom_multi_frame_reads_first_frame_with_warning() -> None:
    frames = np.stack([np.full((4, 4), value, np.uint16) for value in (100, 200, 300)])
    frames[0, 0, 0] = 0  # give frame 0 a range so it is not blank
    loaded = read_image(make_dicom(frames))
    assert loaded.pixels.shape == (4, 4)
    assert loaded.pixels[0, 0] == 0 and loaded.pixels[1, 1] == 255
    assert loaded.warnings == ("multi-frame DICOM: only the first of 3 frames was read",)


def test_dicom_rgb() -> None:
    pixels = rgb_gradient()
    loaded = read_image(make_dicom(pixels, photometric="RGB", bits_stored=8))
    assert (loaded.source_mode, loaded.bit_depth) == ("RGB", 8)
    np.testing.assert_array_equal(loaded.pixels, pixels)


def test_text_named_dcm_is_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "scan.dcm"
    path.write_text("not a DICOM file at all, just a note about the scan\n" * 5)
    assert read_error(path).startswith("file is not an image")


def test_dicom_without_pixel_data() -> None:
    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.SOPClassUID = DigitalMammographyXRayImageStorageForPresentation
    dataset.SOPInstanceUID = generate_uid()
    dataset.PatientName = PATIENT_TAGS["PatientName"]
    buffer = BytesIO()
    dcmwrite(buffer, dataset, enforce_file_format=True)
    assert read_error(buffer.getvalue()) == "DICOM file has no pixel data"


def test_dicom_over_limit_is_refused_before_decoding() -> None:
    message = read_error(make_dicom(ramp16()), max_pixels=100)
    assert message == "image too large: 0.001024 megapixels, limit 0.0001 megapixels"


def test_dicom_truncated_pixel_data() -> None:
    data = make_dicom(ramp16())
    assert read_error(data[:-600]) == "image is truncated or corrupted"


def compressed_dicom(transfer_syntax: UID, payload: bytes) -> bytes:
    """A DICOM file that claims a compressed transfer syntax but holds bogus fragments."""
    return make_dicom(
        np.zeros((8, 8), np.uint16),
        transfer_syntax=transfer_syntax,
        PixelData=encapsulate([payload]),
    )


def test_dicom_bogus_jpeg_2000_names_the_transfer_syntax() -> None:
    message = read_error(compressed_dicom(JPEG2000Lossless, b"\x00\x01not a codestream" * 4))
    assert "JPEG 2000 Image Compression (Lossless Only)" in message
    assert "not supported" in message


def test_dicom_transfer_syntax_without_decoder_is_not_supported() -> None:
    message = read_error(compressed_dicom(MPEG2MPML, b"\x00\x00\x01\xb3" * 8))
    assert message.startswith(f"DICOM transfer syntax '{MPEG2MPML.name}' is not supported")


def test_dicom_never_leaks_patient_tags() -> None:
    outputs: list[str] = []
    for data in (
        make_dicom(np.stack([ramp16(), ramp16()])),
        make_dicom(np.full((4, 4), 7, np.uint16), WindowCenter=0, WindowWidth=0),
        make_dicom(rgb_gradient(), photometric="RGB", bits_stored=8),
    ):
        loaded = read_image(data)
        outputs += [repr(loaded), loaded.format, loaded.source_mode, *loaded.warnings]
    for data, limit in (
        (make_dicom(ramp16())[:-600], DEFAULT_MAX_PIXELS),
        (make_dicom(ramp16()), 10),
        (compressed_dicom(JPEG2000Lossless, b"bogus" * 8), DEFAULT_MAX_PIXELS),
        (compressed_dicom(MPEG2MPML, b"bogus" * 8), DEFAULT_MAX_PIXELS),
    ):
        outputs.append(read_error(data, max_pixels=limit))
    text = " ".join(outputs)
    assert len(outputs) == 16
    for value in (*PATIENT_TAGS.values(), "Doe", "Jane"):
        assert value not in text
