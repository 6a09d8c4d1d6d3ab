"""Pointing game and energy inside the lesion on hand-made heatmaps, and their group intervals."""

from __future__ import annotations

import numpy as np
import pytest

from bcc_model.evaluation.localisation import energy_inside, localisation_scores, pointing_hit
from bcc_model.evaluation.bootstrap import group_bootstrap_mean


def _mask(shape=(10, 10), rows=slice(2, 5), cols=slice(2, 5)):
    mask = np.zeros(shape, bool)
    mask[rows, cols] = True
    return mask


def test_pointing_hit_and_miss():
    heat = np.zeros((10, 10))
    heat[3, 3] = 1.0
    assert pointing_hit(heat, _mask())
    heat[8, 8] = 2.0
    assert not pointing_hit(heat, _mask())


def test_pointing_tolerance_counts_near_misses():
    heat = np.zeros((10, 10))
    heat[3, 7] = 1.0  # two columns right of the mask's last column (4)
    assert not pointing_hit(heat, _mask())
    assert pointing_hit(heat, _mask(), tolerance_px=3.0)
    assert not pointing_hit(heat, _mask(), tolerance_px=2.9)


def test_all_zero_heatmap_is_a_miss_with_no_energy():
    assert not pointing_hit(np.zeros((10, 10)), _mask())
    assert energy_inside(np.zeros((10, 10)), _mask()) == 0.0


def test_energy_inside_is_the_mass_share():
    heat = np.zeros((10, 10))
    heat[_mask()] = 1.0           # 9 px inside
    heat[8, 8] = 3.0              # 3 units outside
    assert energy_inside(heat, _mask()) == pytest.approx(9 / 12)
    assert energy_inside(np.ones((10, 10)), _mask()) == pytest.approx(9 / 100)


def test_invalid_inputs_are_refused():
    with pytest.raises(ValueError, match="empty"):
        pointing_hit(np.ones((4, 4)), np.zeros((4, 4), bool))
    with pytest.raises(ValueError, match="shapes"):
        energy_inside(np.ones((4, 4)), np.ones((5, 5), bool))
    with pytest.raises(ValueError, match="non-negative"):
        energy_inside(-np.ones((4, 4)), np.ones((4, 4), bool))


def test_scores_exclude_unknown_geometry_and_count_it():
    hit = np.zeros((10, 10))
    hit[3, 3] = 1.0
    miss = np.zeros((10, 10))
    miss[9, 9] = 1.0
    heatmaps = [hit, miss, hit, hit]
    masks = [_mask(), _mask(), None, np.zeros((10, 10), bool)]
    block = localisation_scores(heatmaps, masks, ["a", "b", "c", "d"], energy=True, n_resamples=200, seed=1)
    assert block["n_excluded"] == 2
    assert block["pointing_game"]["value"] == 0.5 and block["pointing_game"]["n"] == 2
    assert block["energy_inside"]["value"] == pytest.approx(0.5)
    lo, hi = block["pointing_game"]["ci95"]
    assert lo == 0.0 and hi == 1.0
    circles = localisation_scores(heatmaps, masks, ["a", "b", "c", "d"], energy=False, n_resamples=0)
    assert "energy_inside" not in circles and circles["pointing_game"]["ci95"] == [None, None]


def test_group_bootstrap_resamples_whole_groups():
    values = np.array([1.0, 1.0, 1.0, 0.0])
    result = group_bootstrap_mean(values, ["p1", "p1", "p1", "p2"], n_resamples=500, seed=0)
    assert result["value"] == 0.75 and result["n"] == 4
    # Resampling patients, the mean is 1 (p1 twice), 0 (p2 twice) or 0.75 (both).
    assert result["ci95"][0] == 0.0 and result["ci95"][1] == 1.0
    again = group_bootstrap_mean(values, ["p1", "p1", "p1", "p2"], n_resamples=500, seed=0)
    assert again == result
    single = group_bootstrap_mean(values, ["p"] * 4, n_resamples=500)
    assert single["ci95"] == [None, None]
    assert group_bootstrap_mean(np.array([]), [], n_resamples=10) == {"value": None, "ci95": [None, None], "n": 0}
