"""Issue 32, decoders: every pydicom test file whose pixels pydicom itself decodes is read.

pydicom's wheel ships these files (JPEG baseline, extended and lossless, JPEG-LS lossless and
near-lossless, JPEG 2000, RLE, palette colour, big endian...): DICOM written by other people's
software. The reference is pydicom's own ``pixel_array`` with the decoder plugins in requirements.txt
(GDCM, OpenJPEG, RLE); a file it cannot decode either is not counted, and is refused with a message
that names its transfer syntax.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import dcmread

from bcc_model.imaging.io import read_image

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def _decodable() -> list[Path]:
    paths = []
    for path in sorted(TEST_FILES.glob("*.dcm")):
        try:
            dataset = dcmread(path)
            if "PixelData" in dataset:
                dataset.pixel_array  # noqa: B018 - pydicom's own decode decides what counts
                paths.append(path)
        except Exception:  # noqa: BLE001 - pydicom cannot decode it either: not counted
            continue
    return paths


def test_every_file_pydicom_decodes_is_read_including_jpeg_ls_jpeg_2000_and_palette_colour():
    paths = _decodable()
    syntaxes = {dcmread(p, stop_before_pixels=True).file_meta.TransferSyntaxUID.name for p in paths}
    assert len(paths) >= 50 and {"JPEG-LS Lossless Image Compression", "JPEG 2000 Image Compression",
                                 "RLE Lossless"} <= syntaxes, "the decoder plugins are installed"
    unread = []
    for path in paths:
        try:
            image = read_image(path.read_bytes())
        except Exception as err:  # noqa: BLE001 - collected, reported together
            unread.append(f"{path.name}: {err}")
            continue
        assert image.pixels.dtype == np.uint8 and image.format == "DICOM"
    assert not unread, unread
    palette = read_image((TEST_FILES / "examples_palette.dcm").read_bytes())
    assert palette.pixels.ndim == 3 and palette.source_mode == "PALETTE COLOR"
    assert len(np.unique(palette.pixels.reshape(-1, 3), axis=0)) > 2, "the lookup tables give colours, not indices"


@pytest.mark.parametrize("name", ["JPEG2000.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_RLE.dcm"])
def test_compressed_files_give_the_same_picture_as_pydicom(name):
    """Decoded by the plugins, windowed like any DICOM: the brightest and darkest places match pydicom's."""
    reference = dcmread(TEST_FILES / name).pixel_array.astype(np.float64)
    pixels = read_image((TEST_FILES / name).read_bytes()).pixels.astype(np.float64)
    if pixels.ndim == 3:
        pixels = pixels.mean(axis=2)
    if reference.ndim == 3:
        reference = reference[0] if reference.shape[-1] not in (3, 4) else reference.mean(axis=2)
    assert pixels.shape == reference.shape
    assert np.corrcoef(pixels.ravel(), reference.ravel())[0, 1] > 0.95


def test_what_no_installed_decoder_reads_is_refused_naming_its_compression():
    """12-bit JPEG Extended: GDCM and Pillow do not decode it (pylibjpeg-libjpeg would, but it is GPL-3.0)."""
    from bcc_model.imaging.pixels import ImageReadError

    with pytest.raises(ImageReadError, match="JPEG Extended"):
        read_image((TEST_FILES / "JPGExtended.dcm").read_bytes())



def test_the_header_says_what_the_image_shows_before_the_pixels_do():
    """BodyPartExamined other than the breast warns; an H&E model never reads a greyscale SM file."""
    from bcc_model.imaging.gates import input_problem
    from bcc_model.registry import get_modality
    from tests.hostile import make_dicom

    from tests.conftest import ROOT

    grey = read_image(ROOT / "samples" / "mammography" / "malignant" / "mdb028.png").pixels.astype(np.uint16) * 257
    chest = read_image(make_dicom(grey, BodyPartExamined="CHEST"))
    assert any("CHEST" in note and "not the breast" in note for note in chest.warnings)
    assert not read_image(make_dicom(grey, BodyPartExamined="BREAST")).warnings
    slide = read_image(make_dicom(grey, Modality="SM"))
    assert "greyscale" in input_problem(slide.pixels, get_modality("histopathology"), slide.dicom_modality)
