"""Lesion geometry: circles to masks, the lesion tables of the samples, model-space masks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bcc_model.datasets.folders import discover
from bcc_model.datasets.lesions import LesionError, circle_mask, lesion_mask, model_space_masks, read_circles
from bcc_model.registry import get_modality

from tests.conftest import ROOT

MAMMO = ROOT / "samples" / "mammography"


def test_circle_mask_is_the_filled_disc_in_top_left_coordinates():
    mask = circle_mask((20, 30), [(10.0, 5.0, 2.0)])
    assert mask.shape == (20, 30) and mask.dtype == bool
    rows, cols = np.nonzero(mask)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (3, 7, 8, 12)
    assert mask[5, 10] and not mask[10, 5]  # x is the column, y the row
    assert mask.sum() == 13  # lattice points within radius 2 of a lattice centre


def test_several_circles_are_united_and_empty_means_no_lesion():
    two = circle_mask((50, 50), [(10, 10, 3), (40, 40, 3)])
    assert two[10, 10] and two[40, 40] and not two[25, 25]
    assert not circle_mask((5, 5), []).any()
    with pytest.raises(LesionError, match="radius"):
        circle_mask((5, 5), [(1, 1, 0)])


def test_read_circles_of_the_samples():
    circles = read_circles(MAMMO)
    assert circles["normal/mdb027.png"] == []
    assert circles["malignant/mdb028.png"] == [(169.0, 355.0, 28.0)]
    assert len(circles) == 6


def test_images_without_coordinates_are_unknown(tmp_path):
    (tmp_path / "lesions.csv").write_text(
        "file,abnormality,x,y,radius\n"
        "a.png,CIRC,10,10,3\n"
        "a.png,CALC,,,\n"           # a second lesion without coordinates: geometry incomplete
        "b.png,CIRC,5,5,2\n"
        "c.png,NORM,,,\n"
    )
    circles = read_circles(tmp_path)
    assert circles == {"a.png": None, "b.png": [(5.0, 5.0, 2.0)], "c.png": []}
    spec = get_modality("mammography")
    assert lesion_mask(spec, (20, 20), "malignant", circles=None) is None
    assert lesion_mask(spec, (20, 20), "benign", circles=[]) is None
    assert not lesion_mask(spec, (20, 20), "normal", circles=None).any()
    with pytest.raises(LesionError, match="not found"):
        read_circles(tmp_path / "nowhere")


def test_mask_files_are_read_and_checked(tmp_path):
    from PIL import Image

    spec = get_modality("ultrasound")
    pixels = np.zeros((30, 40), np.uint8)
    pixels[5:10, 5:15] = 255
    Image.fromarray(pixels).save(tmp_path / "m.png")
    mask = lesion_mask(spec, (30, 40), "benign", mask_path=tmp_path / "m.png")
    assert mask.sum() == 50
    assert lesion_mask(spec, (30, 40), "benign", mask_path=tmp_path / "missing.png") is None
    with pytest.raises(LesionError, match="its image is"):
        lesion_mask(spec, (31, 40), "benign", mask_path=tmp_path / "m.png")


def test_model_space_masks_of_the_sample_mammograms():
    spec = get_modality("mammography")
    table = discover(MAMMO, spec)
    masks = model_space_masks(table, MAMMO, spec)
    assert len(masks) == 6
    for (file, label), mask in zip(table[["file", "label"]].itertuples(index=False), masks):
        assert mask is not None and mask.shape == (spec.input_size, spec.input_size), file
        assert mask.any() == (label != "normal"), file
    # A 1.5 px calcification still keeps a few model pixels after the crop and the resize to the input.
    tiny = masks[list(table["file"]).index("benign/mdb212.png")]
    assert 1 <= tiny.sum() <= 16


def test_ultrasound_sample_masks_are_read_and_their_absence_means_unknown(tmp_path):
    spec = get_modality("ultrasound")
    folder = ROOT / "samples" / "ultrasound"
    table = discover(folder, spec)
    masks = model_space_masks(table, folder, spec)
    for label, mask in zip(table["label"], masks):
        assert mask is not None and mask.any() == (label != "normal"), label
    for name in table["file"]:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    pd.read_csv(folder / "labels.csv").drop(columns="mask").to_csv(tmp_path / "labels.csv", index=False)
    for label, mask in zip(table["label"], model_space_masks(discover(tmp_path, spec), tmp_path, spec)):
        assert (mask is None) == (label != "normal")
