"""Mammogram hygiene on real images: polarity and the pectoral muscle (modalities/mammography/hygiene.py)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from bcc_model.datasets.lesions import circle_mask, read_circles
from bcc_model.imaging.io import read_image
from bcc_model.modalities.mammography.hygiene import PECTORAL_AREA, is_inverted, normalise_polarity, pectoral_mask
from bcc_model.imaging.preprocess import STEPS, to_model_input
from bcc_model.registry import get_modality

from tests.conftest import ROOT
from tests.support.bundles import shipped_bundle

MIAS = ROOT / "samples" / "mammography"
RSNA = ROOT / "samples" / "mammography-rsna"


def _grey(path) -> np.ndarray:
    pixels = read_image(path).pixels
    return pixels if pixels.ndim == 2 else pixels[..., 0]  # RSNA JPEGs: three equal channels


def _oriented(grey: np.ndarray, mask: np.ndarray | None = None):
    spec = get_modality("mammography")
    crop, mask = STEPS["breast_crop"](normalise_polarity(grey), mask, spec)
    return STEPS["laterality_flip"](crop, mask, spec)


def test_polarity_is_read_from_the_image_not_trusted_from_a_column():
    table = pd.read_csv(RSNA / "labels.csv", dtype={"bright_background": int})
    assert [is_inverted(_grey(RSNA / f)) for f in table["file"]] == table["bright_background"].astype(bool).tolist()
    for path in sorted(MIAS.glob("*/*.png")):
        grey = _grey(path)
        assert not is_inverted(grey)
        inverted = (255 - grey).astype(np.uint8)
        assert is_inverted(inverted)
        np.testing.assert_array_equal(normalise_polarity(inverted), grey)


def test_an_inverted_mammogram_reaches_the_model_as_its_normal_twin():
    spec = replace(get_modality("mammography"), preprocessing=(
        "to_grey", "polarity", "breast_crop", "laterality_flip", "pectoral_removal", "pad_square", "resize"))
    stored = read_image(sorted((RSNA / "malignant").glob("10635_*"))[0]).pixels
    assert is_inverted(stored[..., 0])
    np.testing.assert_array_equal(to_model_input(stored, spec), to_model_input(255 - stored, spec))


def test_the_pectoral_muscle_is_a_top_left_triangle_that_spares_every_lesion():
    circles = read_circles(MIAS)
    table = pd.read_csv(MIAS / "labels.csv", dtype=str)
    found = 0
    for file in table["file"]:
        grey = _grey(MIAS / file)
        centres = circle_mask(grey.shape, [(x, y, 1.0) for x, y, _ in circles.get(file) or []])
        crop, centres = _oriented(grey, centres)
        muscle = pectoral_mask(crop)
        if not muscle.any():
            continue
        found += 1
        breast = crop > 0
        assert PECTORAL_AREA[0] <= muscle.sum() / breast.sum() <= PECTORAL_AREA[1]
        assert not (muscle & ~breast).any()
        rows, cols = np.nonzero(muscle)
        assert rows.min() == 0 and cols.min() <= 0.1 * crop.shape[1], "it touches the top edge at the chest wall"
        assert rows.max() < 0.9 * crop.shape[0] and cols.max() < 0.8 * crop.shape[1]
        assert not (muscle & centres).any(), f"{file}: a lesion centre would be blanked"
    assert found >= 5, "all six samples are MLO views with a visible muscle"


def test_no_muscle_is_invented_on_plain_tissue_or_blank_film():
    height, width = 400, 250
    rows, cols = np.mgrid[0:height, 0:width]
    breast = ((cols / width) ** 2 + ((rows - height / 2) / (height / 2)) ** 2 <= 1).astype(np.uint8)
    texture = np.random.default_rng(0).normal(120, 10, (height, width)).clip(1, 255).astype(np.uint8)
    assert not pectoral_mask(breast * texture).any()  # a CC-like view: tissue without a muscle
    assert not pectoral_mask(np.zeros((300, 200), np.uint8)).any()


@pytest.mark.parametrize("step", ["polarity", "pectoral_removal"])
def test_hygiene_steps_leave_a_lesion_mask_where_it_was(step):
    spec = get_modality("mammography")
    grey = _grey(MIAS / "malignant" / "mdb028.png")
    crop, _ = _oriented(grey)
    mask = np.zeros(crop.shape, bool)
    mask[100:120, 80:100] = True
    out, out_mask = STEPS[step](crop, mask, spec)
    assert out.shape == crop.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out_mask, mask)


def test_training_never_accepts_a_label_that_names_no_class():
    from bcc_model.datasets.folders import DataError, discover

    with pytest.raises(DataError, match="negative"):
        discover(RSNA, get_modality("mammography"))
    assert set(discover(RSNA, get_modality("mammography"), negatives=True)["label"]) == {"negative", "malignant"}


def test_the_analysis_of_a_mammogram_carries_the_breast_it_reads(histo_spec):
    """The app outlines this mask on the model view: it holds the lesion and not the padding."""
    from bcc_model.analysis.image import analyse
    from bcc_model.imaging.preprocess import to_model_input_with_mask

    spec = get_modality("mammography")
    grey = _grey(MIAS / "malignant" / "mdb028.png")
    (x, y, radius), = read_circles(MIAS)["malignant/mdb028.png"]
    _, lesion = to_model_input_with_mask(grey, circle_mask(grey.shape, [(x, y, radius)]), spec)
    analysis = analyse(shipped_bundle("mammography"), grey)
    breast = analysis.breast_mask
    assert breast.shape == spec.input_shape[:2] and 0.2 < breast.mean() < 0.9
    assert breast[lesion].all()
    assert not breast[:, -5:].any(), "the padding right of the oriented breast is not breast"
    patch = read_image(sorted((ROOT / "samples" / "histopathology").glob("*/*.png"))[0]).pixels
    assert analyse(shipped_bundle("histopathology"), patch).breast_mask is None
