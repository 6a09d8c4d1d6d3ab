"""Conformal sets: per-class coverage holds on exchangeable patients, sets grow with the level, calibration round-trips."""

from __future__ import annotations

import numpy as np
import pytest

from bcc_model.evaluation.conformal import conformal_report, fit_conformal, one_per_patient
from bcc_model.models.conformal import ConformalCalibration, aps_scores, lac_scores, prediction_sets, set_words

LABELS = ("benign", "malignant")


def _patients(n: int, n_patients: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Calibrated-looking probabilities with a patient effect: harder patients shift every patch."""
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, n_patients, n)
    shift = rng.normal(0, 0.6, n_patients)[groups]
    y = rng.integers(0, 2, n)
    logit = (2 * y - 1) * 1.5 + shift + rng.normal(0, 1.2, n)
    p = 1 / (1 + np.exp(-logit))
    return np.stack([1 - p, p], axis=1), y, groups.astype(str)


def test_one_case_per_patient_and_class():
    y = np.array([0, 0, 1, 1, 1, 0])
    groups = np.array(["a", "a", "a", "b", "b", "c"])
    keep = one_per_patient(y, groups, seed=3)
    assert sorted(zip(groups[keep], y[keep])) == [("a", 0), ("a", 1), ("b", 1), ("c", 0)]
    assert np.array_equal(keep, one_per_patient(y, groups, seed=3))


def test_per_class_coverage_holds_on_new_patients_and_sets_grow_with_the_level():
    probs, y, groups = _patients(20000, 800, seed=1)
    calibration_patients = groups.astype(int) < 400
    calibration = fit_conformal(probs[calibration_patients], y[calibration_patients], groups[calibration_patients],
                                LABELS, seed=0)
    assert all(350 <= len(v) <= 400 for v in calibration.scores.values())  # one per patient and class
    new = ~calibration_patients
    report = conformal_report(calibration, probs[new], y[new], groups[new], level=0.9, n_resamples=200)
    for label in LABELS:
        assert report["coverage_by_class"][label]["value"] == pytest.approx(0.9, abs=0.04)
    assert 1.0 <= report["mean_set_size"]["value"] <= 2.0
    at_80, at_95 = (prediction_sets(calibration, probs[new], level) for level in (0.8, 0.95))
    assert np.all(at_95 >= at_80) and at_95.sum() > at_80.sum()


def test_a_calibration_round_trips_through_model_json_and_refuses_a_bad_one():
    calibration = fit_conformal(*_patients(500, 60, seed=2), LABELS, score="aps", seed=1)
    again = ConformalCalibration.from_json(calibration.to_json(), LABELS)
    assert again.score == "aps" and {k: len(v) for k, v in again.scores.items()} == \
        {k: len(v) for k, v in calibration.scores.items()}
    with pytest.raises(ValueError):
        ConformalCalibration.from_json({"score": "lac", "scores": {"benign": [0.1]}}, LABELS)


def test_scores_and_words():
    p = np.array([[0.7, 0.2, 0.1]])
    assert lac_scores(p)[0] == pytest.approx([0.3, 0.8, 0.9])
    assert aps_scores(p)[0] == pytest.approx([0.7, 0.9, 1.0])
    assert set_words(["IDC"], ["no IDC", "IDC"], 0.9) == "IDC"
    assert set_words(["IDC", "no IDC"], ["no IDC", "IDC"], 0.9) == "IDC or no IDC: can't decide at 90 %"
