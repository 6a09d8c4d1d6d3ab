"""Conformal sets: per-class coverage holds on new patients, patients weigh the same, sets are never empty,
the two-class band is the set's, calibration round-trips."""

from __future__ import annotations

import numpy as np
import pytest

from bcc_model.evaluation.conformal import conformal_report, fit_conformal, patient_means
from bcc_model.models.conformal import (PATIENT_QUANTILES, ConformalCalibration, aps_scores, lac_scores,
                                        prediction_sets, raps_scores, set_words, undecided_band)
from bcc_model.models.decision import OperatingPoint

LABELS = ("benign", "malignant")


def _patients(n: int, n_patients: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Calibrated-looking probabilities with a patient effect: harder patients shift every patch;
    patients contribute very different numbers of patches, as on the IDC slides."""
    rng = np.random.default_rng(seed)
    sizes = rng.pareto(1.2, n_patients) + 1
    groups = rng.choice(n_patients, n, p=sizes / sizes.sum())
    shift = rng.normal(0, 0.6, n_patients)[groups]
    y = rng.integers(0, 2, n)
    logit = (2 * y - 1) * 1.5 + shift + rng.normal(0, 1.2, n)
    p = 1 / (1 + np.exp(-logit))
    return np.stack([1 - p, p], axis=1), y, groups.astype(str)


def test_per_class_coverage_per_patient_holds_on_new_patients_and_sets_grow_with_the_level():
    probs, y, groups = _patients(30000, 600, seed=1)
    calibration_patients = groups.astype(int) < 300
    calibration = fit_conformal(probs[calibration_patients], y[calibration_patients], groups[calibration_patients],
                                LABELS)
    patients = {label: len(v) for label, v in calibration.scores.items()}
    assert all(200 <= n <= 300 for n in patients.values())  # one entry per patient and class ...
    assert max(len(p) for v in calibration.scores.values() for p in v) == PATIENT_QUANTILES  # ... summarised
    new = ~calibration_patients
    report = conformal_report(calibration, probs[new], y[new], groups[new], level=0.9, n_resamples=200)
    for label in LABELS:
        entry = report["coverage_by_class"][label]
        assert entry["value"] == pytest.approx(0.9, abs=0.03)
        assert entry["ci95"][0] < entry["value"] < entry["ci95"][1] and entry["n"] < entry["n_cases"]
    assert 1.0 <= report["mean_set_size"]["value"] <= 2.0
    assert set(report["by_level"]) == {"0.8", "0.9", "0.95"}
    at_80, at_95 = (prediction_sets(calibration, probs[new], level) for level in (0.8, 0.95))
    assert np.all(at_95 >= at_80) and at_95.sum() > at_80.sum()


def test_each_patient_weighs_the_same_however_many_patches_it_has():
    # Patient "big" has 1,000 patches scoring 0.9 (strange), 20 small patients one patch each at 0.1.
    scores = {"benign": ((0.9,) * PATIENT_QUANTILES,) + tuple((0.1,) for _ in range(20)),
              "malignant": tuple((0.9,) for _ in range(21))}  # malignant is in every set here
    calibration = ConformalCalibration("lac", LABELS, scores, "test")
    # A benign case scoring 0.5: 1 of 21 patients is at least as strange -> p = 2/22 < 0.1 -> not in the 90 % set.
    assert not prediction_sets(calibration, np.array([[0.5, 0.5]]), 0.9)[0, 0]
    # Counted by patch instead, the big patient would make p about 0.98 and keep benign in every set.
    assert prediction_sets(calibration, np.array([[0.5, 0.5]]), 0.95)[0, 0]  # 2/22 >= 0.05


def test_a_set_is_never_empty_and_the_two_class_band_is_exactly_where_the_set_is_not_the_rules_class():
    probs, y, groups = _patients(4000, 200, seed=4)
    calibration = fit_conformal(probs, y, groups, LABELS)
    grid = np.linspace(0, 1, 401)
    p = np.stack([1 - grid, grid], axis=1)
    for level in (0.8, 0.9, 0.95):
        sets = prediction_sets(calibration, p, level)
        assert sets.any(axis=1).all()
        low, high = undecided_band(calibration, 1, 0.4, level)
        point = OperatingPoint(LABELS, 1, 0.4, (low, high), 1.0, calibration, level)
        _, by_set = point.decide(p)
        by_band = (grid >= low) & (grid < high)
        assert np.mean(by_set == by_band) > 0.99  # equal but for the grid step at the edges
    assert undecided_band(ConformalCalibration("lac", ("a", "b", "c"), {k: ((0.5,),) for k in "abc"}, ""), 0, 0.5,
                          0.9) is None


def test_a_calibration_round_trips_through_model_json_and_reads_old_flat_scores():
    calibration = fit_conformal(*_patients(500, 60, seed=2), LABELS, score="aps")
    again = ConformalCalibration.from_json(calibration.to_json(), LABELS)
    assert again.score == "aps" and again.scores == calibration.scores
    flat = ConformalCalibration.from_json({"score": "lac", "scores": {"benign": [0.1, 0.2], "malignant": [0.3]}},
                                          LABELS)
    assert flat.scores == {"benign": ((0.1,), (0.2,)), "malignant": ((0.3,),)}
    with pytest.raises(ValueError):
        ConformalCalibration.from_json({"score": "lac", "scores": {"benign": [0.1]}}, LABELS)


def test_scores_words_and_patient_means():
    p = np.array([[0.7, 0.2, 0.1]])
    assert lac_scores(p)[0] == pytest.approx([0.3, 0.8, 0.9])
    assert aps_scores(p)[0] == pytest.approx([0.7, 0.9, 1.0])
    assert raps_scores(p)[0] == pytest.approx([0.7, 1.0, 1.2])  # 0.1 per rank beyond the first
    assert set_words(["IDC"], ["no IDC", "IDC"], 0.9) == "IDC"
    assert set_words(["IDC", "no IDC"], ["no IDC", "IDC"], 0.9) == "IDC or no IDC: can't decide at 90 %"
    means, patients = patient_means(np.array([1.0, 0.0, 0.0, 1.0]), np.array(["a", "a", "a", "b"]))
    assert list(patients) == ["a", "b"] and means == pytest.approx([1 / 3, 1.0])
