"""Greyscale whole-image preprocessing on the real sample mammograms and ultrasound images."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from bcc_model.imaging.io import read_image
from bcc_model.datasets.lesions import circle_mask, read_circles
from bcc_model.registry import get_modality
from bcc_model.imaging.preprocess import STEPS, to_model_input, to_model_input_with_mask
from bcc_model.modalities.mammography.hygiene import breast_box, faces_right

from tests.conftest import ROOT

MAMMO = ROOT / "samples" / "mammography"
ULTRASOUND = ROOT / "samples" / "ultrasound"
MAMMO_FILES = sorted(pd.read_csv(MAMMO / "labels.csv")["file"])


@pytest.fixture(scope="module")
def mammo_spec():
    """The registry's mammography steps without pectoral removal, which blanks the bright chest-wall corner."""
    spec = get_modality("mammography")
    return replace(spec, preprocessing=tuple(s for s in spec.preprocessing if s != "pectoral_removal"))


def _pixels(path):
    return np.array(read_image(path).pixels)


@pytest.mark.parametrize("file", MAMMO_FILES)
def test_breast_crop_drops_background_and_film_labels(file, mammo_spec):
    grey = _pixels(MAMMO / file)
    (x0, y0, x1, y1), breast = breast_box(grey)
    # The breast box is smaller than the film and holds almost all of the bright tissue.
    assert (x1 - x0) * (y1 - y0) < 0.9 * grey.size
    bright = grey > 100
    assert breast[bright].mean() > 0.95
    # Everything kept outside the breast is blanked: no bright label pixel survives the step.
    cropped, _ = STEPS["breast_crop"](grey, None, mammo_spec)
    assert cropped.shape == (y1 - y0, x1 - x0)
    outside = ~breast[y0:y1, x0:x1]
    assert not cropped[outside].any()


def test_film_label_is_removed_from_a_real_mammogram(mammo_spec):
    """mdb063 has a bright 'L ML' film label left of the breast."""
    grey = _pixels(MAMMO / "benign/mdb063.png")
    (x0, y0, x1, y1), breast = breast_box(grey)
    labels_outside = (grey > 200) & ~breast
    assert labels_outside.sum() > 1000, "the sample should contain a bright film label outside the breast"
    image, label_pixels = to_model_input_with_mask(grey, labels_outside, mammo_spec)
    # Wherever the label lands after crop, flip, padding and resize (if it survives the crop at all),
    # the model sees black.
    assert not image[..., 0][label_pixels].any()


@pytest.mark.parametrize("file", MAMMO_FILES)
def test_laterality_flip_puts_the_chest_wall_on_the_left(file, mammo_spec):
    grey = _pixels(MAMMO / file)
    image = to_model_input(grey, mammo_spec)[..., 0].astype(np.uint8)
    assert not faces_right(image)
    # Mini-MIAS: even numbers are left breasts, shown with the chest wall on the left already.
    number = int(file[-7:-4])
    assert faces_right(grey) == (number % 2 == 1)


def test_flip_and_crop_follow_a_mirrored_input(mammo_spec):
    """The same breast mirrored gives the same model input (flip undoes the mirror)."""
    grey = _pixels(MAMMO / "malignant/mdb028.png")
    direct = to_model_input(grey, mammo_spec)
    mirrored = to_model_input(np.ascontiguousarray(grey[:, ::-1]), mammo_spec)
    assert np.abs(direct - mirrored).mean() < 1.0


@pytest.mark.parametrize("file", ["malignant/mdb028.png", "benign/mdb063.png"])
def test_lesion_mask_follows_crop_flip_pad_and_resize(file, mammo_spec):
    """A bright marker painted at the lesion lands inside the mapped lesion mask."""
    grey = _pixels(MAMMO / file)
    (x, y, radius), = read_circles(MAMMO)[file]
    mask = circle_mask(grey.shape, [(x, y, radius)])
    marked = np.minimum(grey, 200)
    marked[circle_mask(grey.shape, [(x, y, min(radius, 6.0))])] = 255  # the only bright structure
    image, model_mask = to_model_input_with_mask(marked, mask, mammo_spec)
    assert model_mask.shape == (mammo_spec.input_size,) * 2 and model_mask.dtype == bool
    row, col = np.unravel_index(np.argmax(image[..., 0]), model_mask.shape)
    assert model_mask[row, col]
    # Area scales with the squared zoom of the crop + resize (within rounding at the edge).
    x0, y0, x1, y1 = breast_box(marked)[0]
    zoom = mammo_spec.input_size / max(x1 - x0, y1 - y0)
    assert model_mask.sum() == pytest.approx(mask.sum() * zoom ** 2, rel=0.25)
    np.testing.assert_array_equal(image, to_model_input(marked, mammo_spec))


def test_mask_of_wrong_shape_is_refused(mammo_spec):
    grey = _pixels(MAMMO / "normal/mdb027.png")
    with pytest.raises(ValueError, match="mask shape"):
        to_model_input_with_mask(grey, np.zeros((10, 10), bool), mammo_spec)


def test_pad_square_keeps_aspect_ratio_of_ultrasound():
    spec = get_modality("ultrasound")
    file = sorted(pd.read_csv(ULTRASOUND / "labels.csv")["file"])[0]
    grey = _pixels(ULTRASOUND / file)
    height, width = grey.shape
    assert height != width
    mask = np.zeros_like(grey, bool)
    mask[height // 4: height // 4 + 40, width // 3: width // 3 + 80] = True  # a 2:1 box
    image, model_mask = to_model_input_with_mask(grey, mask, spec)
    assert image.shape == spec.input_shape
    rows, cols = np.nonzero(model_mask)
    assert (np.ptp(cols) + 1) / (np.ptp(rows) + 1) == pytest.approx(2.0, rel=0.1)
    # Padding is black and centred on the short side.
    pad = (spec.input_size - round(height * spec.input_size / width)) // 2
    assert pad > 0 and not image[: pad - 1].any() and not image[-(pad - 1):].any()


def test_clahe_and_unknown_steps():
    spec = replace(get_modality("mammography"), preprocessing=("to_grey", "clahe", "pad_square", "resize"))
    grey = _pixels(MAMMO / "benign/mdb063.png")
    out = to_model_input(grey, spec)
    assert out.shape == spec.input_shape and 0 <= out.min() and out.max() <= 255
    assert not np.array_equal(out, to_model_input(grey, replace(spec, preprocessing=("to_grey", "pad_square", "resize"))))
    with pytest.raises(KeyError, match="valid"):
        to_model_input(grey, replace(spec, preprocessing=("to_grey", "sharpen")))


def test_non_mammogram_keeps_the_whole_frame():
    blank = np.zeros((60, 80), np.uint8)
    (x0, y0, x1, y1), breast = breast_box(blank)
    assert (x0, y0, x1, y1) == (0, 0, 80, 60) and breast.all()


def test_model_view_is_the_model_input_for_display(mammo_spec):
    from bcc_model.imaging.preprocess import model_view

    grey = _pixels(MAMMO / "malignant/mdb028.png")
    view = model_view(grey, mammo_spec)
    assert view.dtype == np.uint8 and view.shape == (mammo_spec.input_size,) * 2
    np.testing.assert_array_equal(view, to_model_input(grey, mammo_spec)[..., 0].astype(np.uint8))


def test_model_view_caption_names_the_geometry_changes():
    from bcc_model.registry import get_modality
    from bcc_model.imaging.preprocess import model_view_caption

    mammo, ultrasound = get_modality("mammography").input_size, get_modality("ultrasound").input_size
    assert model_view_caption(get_modality("mammography")) == (
        f"as the model sees it (polarity-normalised, cropped, oriented, pectoral muscle removed, padded, resized to "
        f"{mammo}×{mammo} px)")
    assert model_view_caption(get_modality("ultrasound")) == (
        f"as the model sees it (padded, resized to {ultrasound}×{ultrasound} px)")
    assert model_view_caption(get_modality("histopathology")) == "as the model sees it (resized to 50×50 px)"
