"""Tests for bcc_model.modality_guess on real H&E, mammography and ultrasound samples (and grey H&E)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from bcc_model.registry import MODALITIES, ModalitySpec
from bcc_model.imaging.modality_guess import describe_appearance, modality_hint, suggest_modality


@pytest.fixture(scope="module")
def he_patches(sample_files) -> list[np.ndarray]:
    assert sample_files, "no sample patches under samples/histopathology"
    return [np.asarray(Image.open(path).convert("RGB")) for path in sample_files]


def _greyscale_registry(*keys: str) -> dict[str, ModalitySpec]:
    """A registry of stand-in greyscale modalities, independent of what the real one holds today."""
    return {
        key: ModalitySpec(key=key, title=key.title(), kind="image", labels=("benign", "malignant"),
                          positive_label="malignant", input_size=64, channels=1)
        for key in keys
    }


def test_every_sample_reads_as_he_and_suggests_histopathology(he_patches):
    for rgb in he_patches:
        appearance = describe_appearance(rgb)
        assert appearance.kind == "he_stain", appearance.reason
        assert appearance.he_fraction >= 0.6
        assert suggest_modality(rgb) == "histopathology"
        assert modality_hint(rgb, "histopathology") is None


def test_greyscale_versions_are_flagged_for_the_histopathology_model(he_patches):
    grey = cv2.cvtColor(he_patches[0], cv2.COLOR_RGB2GRAY)
    for pixels in (grey, np.repeat(grey[:, :, None], 3, axis=2)):  # one channel, and grey stored as RGB
        appearance = describe_appearance(pixels)
        assert appearance.kind == "greyscale"
        # No greyscale model, or several (mammography and ultrasound look alike in colour): no suggestion ...
        assert suggest_modality(pixels, {"histopathology": MODALITIES["histopathology"]}) is None
        assert suggest_modality(pixels, _greyscale_registry("mammography", "ultrasound")) is None
        # ... but the user is told the histopathology model expects colour H&E.
        hint = modality_hint(pixels, "histopathology")
        assert hint is not None and "greyscale" in hint and "colour H&E" in hint


def test_greyscale_suggests_a_registered_greyscale_modality(he_patches):
    grey = cv2.cvtColor(he_patches[0], cv2.COLOR_RGB2GRAY)
    assert suggest_modality(grey, _greyscale_registry("mammography")) == "mammography"
    assert suggest_modality(he_patches[0], _greyscale_registry("mammography")) is None  # no H&E model there


def test_non_he_colour_is_not_taken_for_he(he_patches):
    # Swap red and green: pink/purple stain becomes green/teal, same saturation and texture.
    green = he_patches[0][:, :, [1, 0, 2]]
    appearance = describe_appearance(np.ascontiguousarray(green))
    assert appearance.kind == "other_colour"
    assert suggest_modality(np.ascontiguousarray(green)) is None
    assert "does not look H&E-stained" in modality_hint(np.ascontiguousarray(green), "histopathology")


def test_unknown_expectation_and_bad_input():
    grey = np.full((8, 8), 128, np.uint8)
    assert modality_hint(grey, "no-such-modality") is None
    with pytest.raises(ValueError, match="uint8"):
        describe_appearance(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="empty"):
        describe_appearance(np.zeros((0, 8, 3), np.uint8))


def _whole_images(modality: str) -> list[tuple[str, np.ndarray]]:
    from bcc_model.datasets.folders import sample_images
    from bcc_model.imaging.io import read_image

    paths = sample_images(MODALITIES[modality])
    assert paths, f"no samples under samples/{modality}"
    return [(path.name, read_image(path.read_bytes()).pixels) for path in paths]


@pytest.mark.parametrize("modality", ["mammography", "ultrasound"])
def test_every_greyscale_sample_suggests_its_own_modality(modality):
    other = "ultrasound" if modality == "mammography" else "mammography"
    for name, pixels in _whole_images(modality):
        appearance = describe_appearance(pixels)
        assert suggest_modality(pixels) == modality, (name, appearance.reason)
        assert modality_hint(pixels, modality) is None, name
        # With the other greyscale model, or the H&E model, selected, the page warns and names the right one.
        for selected in (other, "histopathology"):
            hint = modality_hint(pixels, selected)
            assert hint is not None and MODALITIES[modality].title in hint, (name, selected, hint)


def test_he_patch_with_a_greyscale_model_selected_is_flagged(he_patches):
    for selected in ("mammography", "ultrasound"):
        hint = modality_hint(he_patches[0], selected)
        assert hint is not None and "H&E" in hint and MODALITIES["histopathology"].title in hint


def test_tabular_modality_has_no_expected_look(he_patches):
    assert modality_hint(he_patches[0], "cytology") is None


SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"


def _training_images(source: str, n: int, *, where: str | None = None) -> list[tuple[str, np.ndarray]]:
    """A seeded sample of a training folder's images (``where``: a labels.csv column that must be "1")."""
    import pandas as pd

    from bcc_model.imaging.io import read_image

    table = pd.read_csv(SHARED_DATA / source / "labels.csv", dtype=str)
    if where is not None:
        table = table[table[where] == "1"]
    chosen = table.sample(min(n, len(table)), random_state=0)["file"]
    return [(name, read_image(SHARED_DATA / source / name).pixels) for name in chosen]


@pytest.mark.skipif(not (SHARED_DATA / "mammography-rsna" / "labels.csv").is_file(), reason="needs ../shared/data")
def test_screening_film_and_ultrasound_training_images_are_never_taken_for_the_other_modality():
    """RSNA screening JPEGs have more speckle than BUSI (texture alone called 73 % of them ultrasound); the layout
    rules keep every one of them, inverted polarity included, and every MIAS and BUSI image with its own model."""
    cases = [("mammography", _training_images("mammography-rsna", 24)),
             ("mammography", _training_images("mammography-rsna", 8, where="bright_background")),
             ("mammography", _training_images("mammography", 12)),
             ("ultrasound", _training_images("ultrasound", 20))]
    for modality, images in cases:
        for name, pixels in images:
            assert modality_hint(pixels, modality) is None, (modality, name, describe_appearance(pixels).reason)


def test_a_dicom_header_names_the_modality_before_any_guess_from_the_pixels():
    """Issue 32, header first: a real mammogram and a real B-mode image as DICOM files with their Modality.

    The header's MG or US decides: the other model refuses the file by its header, its own model never
    judges it by its pixels (the statistics speak only where the header is silent).
    """
    from bcc_model.imaging.gates import input_problem
    from bcc_model.imaging.io import read_image
    from bcc_model.imaging.modality_guess import header_modality
    from tests.hostile import make_dicom

    mammogram = read_image(sorted(MODALITIES["mammography"].sample_dir.glob("*/*.png"))[0]).pixels
    b_mode = read_image(sorted(MODALITIES["ultrasound"].sample_dir.glob("*/*.png"))[0]).pixels
    as_mg = read_image(make_dicom(mammogram, bits_stored=8, Modality="MG"))
    as_us = read_image(make_dicom(b_mode if b_mode.ndim == 2 else b_mode[..., 0], bits_stored=8, Modality="US"))
    assert (as_mg.dicom_modality, as_us.dicom_modality) == ("MG", "US")
    assert header_modality("mg") == "mammography" and header_modality("CR") is None and header_modality(None) is None
    refusal = input_problem(as_us.pixels, MODALITIES["mammography"], as_us.dicom_modality)
    assert refusal and "DICOM header says Modality US" in refusal and "ultrasound" in refusal.lower()
    assert input_problem(as_mg.pixels, MODALITIES["mammography"], "MG") is None
    assert "DICOM header says Modality MG" in input_problem(as_mg.pixels, MODALITIES["ultrasound"], "MG")
    # A header naming no model's modality leaves the pixels to decide, as for a PNG.
    assert input_problem(as_mg.pixels, MODALITIES["mammography"], "OT") == input_problem(
        as_mg.pixels, MODALITIES["mammography"])
