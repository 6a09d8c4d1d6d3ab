"""Rebuilt slides: patches go back where their names say, and region mode is scored tile by tile."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bcc_model.datasets.folders import DataError
from bcc_model.datasets.slides import PATCH_PX, complete_patients, patch_offset, rebuild_slide
from bcc_model.evaluation.slides import slide_scores
from bcc_model.imaging.io import read_image
from tests.support.bundles import shipped_bundle


def test_offsets_follow_the_idc_names():
    assert patch_offset("benign/8955_idx5_x51_y101_class0.png") == (50, 100)
    with pytest.raises(DataError, match="offset"):
        patch_offset("benign/no-offset.png")


def test_patches_are_pasted_where_their_names_say(slide_folder, sample_files, histo_spec):
    table = pd.read_csv(slide_folder / "labels.csv", dtype=str)
    assert complete_patients(table) == ["777"]
    slide = rebuild_slide(table, slide_folder, "777", histo_spec.labels)
    assert slide.rgb.shape == (4 * PATCH_PX, 4 * PATCH_PX, 3) and len(slide.boxes) == 16
    for (x0, y0, x1, y1), path in zip(slide.boxes.tolist(), sample_files[:16]):
        np.testing.assert_array_equal(slide.rgb[y0:y1, x0:x1], read_image(path).pixels)
    expected = np.mean([p.parent.name == "malignant" for p in sample_files[:16]])
    assert slide.positive_share == pytest.approx(expected)


def test_region_mode_is_scored_against_every_patch(slide_folder, histo_spec):
    table = pd.read_csv(slide_folder / "labels.csv", dtype=str)
    slide = rebuild_slide(table, slide_folder, "777", histo_spec.labels)
    scores, result = slide_scores(shipped_bundle(histo_spec.key), slide)
    assert scores["n_scored"] + scores["n_skipped"] == 16 and scores["n_scored"] == result.n_tiles
    assert 0.0 <= scores["predicted_positive_share"] <= 1.0
    if scores["roc_auc"] is not None:
        assert 0.0 <= scores["roc_auc"] <= 1.0
    assert scores["scored_fraction"] == pytest.approx(scores["n_scored"] / 16)
    # 16 tiles are one 8x8-tile block: too few to resample, so no interval and no claim that it holds the truth.
    assert scores["expected_share_interval"] is None and scores["interval_holds_truth"] is None
    assert 0.0 <= scores["indeterminate_share"] <= 1.0 and 0.0 <= scores["tile_ece"] <= 1.0


def test_tile_ece_is_zero_when_each_bin_matches_its_labels_and_large_when_it_does_not():
    from bcc_model.evaluation.slides import tile_ece

    p = np.array([0.25] * 4 + [0.75] * 4)
    truth = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    assert tile_ece(p, truth) == pytest.approx(0.0)
    assert tile_ece(p, 1 - truth) == pytest.approx(0.5)
