"""Fitting and checking conformal prediction sets on held-out patients (``models/conformal.py`` applies them).

Calibration keeps every held-out case, grouped by patient (each patient then weighs the same in
the p-value, ``models.conformal``): patches of one patient share stain, scanner and tumour, so
they are not exchangeable with another patient's, and a patient with 700 patches would otherwise
set the quantile alone. The promise is about a case of a new patient, and it is checked that
way: coverage per class is the mean over the held-out patients of the share of their cases
whose set holds the true class, with intervals from resampling whole patients. The pooled,
every-case-once figures stand beside it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from bcc_model.evaluation.bootstrap import group_bootstrap_mean
from bcc_model.models.conformal import (DEFAULT_LEVEL, LEVELS, PATIENT_QUANTILES, SCORES, ConformalCalibration,
                                        patient_quantiles, prediction_sets)

__all__ = ["fit_conformal", "conformal_report", "patient_means"]


def _patient_scores(scores: np.ndarray) -> tuple[float, ...]:
    """A patient's scores, summarised by :data:`PATIENT_QUANTILES` quantiles when it has more cases."""
    kept = np.sort(scores) if scores.size <= PATIENT_QUANTILES else patient_quantiles(scores)
    return tuple(round(float(v), 6) for v in kept)


def fit_conformal(probs: np.ndarray, y: np.ndarray, groups: Sequence[str], labels: Sequence[str], *,
                  score: str = "lac", fitted_on: str = "held-out patients") -> ConformalCalibration:
    """Class-conditional, patient-grouped calibration scores from held-out calibrated probabilities ``probs`` (N, K).

    Raises:
        ValueError: a class without any calibration case (no set could be promised for it).
    """
    if score not in SCORES:
        raise ValueError(f"score must be one of {sorted(SCORES)}, got {score!r}")
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y)
    groups = np.asarray([str(g) for g in groups])
    own = SCORES[score](p)[np.arange(len(y)), y] if len(y) else np.zeros(0)
    by_class = {}
    for k, label in enumerate(labels):
        mine = y == k
        by_class[label] = tuple(_patient_scores(own[mine & (groups == g)]) for g in np.unique(groups[mine]))
    empty = [label for label, patients in by_class.items() if not patients]
    if empty:
        raise ValueError(f"no calibration case of class(es) {empty}")
    counts = ", ".join(f"{len(by_class[label])} {label}" for label in labels)
    return ConformalCalibration(score=score, labels=tuple(labels), scores=by_class,
                                fitted_on=f"{fitted_on}: {len(y)} cases of {np.unique(groups).size} patients, "
                                          f"grouped by patient ({counts} patients per class)")


def patient_means(values: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(per-patient mean of values, patient ids)``: the unit a patient-level promise is checked on."""
    patients, index = np.unique(groups, return_inverse=True)
    return np.bincount(index, weights=values) / np.bincount(index), patients


def _per_patient(values: np.ndarray, groups: np.ndarray, n_resamples: int, seed: int) -> dict:
    means, patients = patient_means(values, groups)
    entry = group_bootstrap_mean(means, patients, n_resamples=n_resamples, seed=seed)
    pooled = group_bootstrap_mean(values, groups, n_resamples=n_resamples, seed=seed)
    return {**entry, "n_cases": int(values.size), "pooled": {k: pooled[k] for k in ("value", "ci95")}}


def conformal_report(calibration: ConformalCalibration, probs: np.ndarray, y: np.ndarray, groups: Sequence[str],
                     level: float = DEFAULT_LEVEL, *, n_resamples: int = 1000, seed: int = 0) -> dict:
    """metrics.json ``conformal``: per-class coverage, mean set size and singleton rate at ``level``.

    Each figure is a mean over patients (of a class, for coverage) with a 95 % interval from
    resampling whole patients; ``n`` counts patients, ``pooled`` gives every case once.
    ``by_level`` repeats the per-class coverage and mean set size at every level a user may choose.
    """
    y = np.asarray(y)
    groups = np.asarray([str(g) for g in groups])
    labels = calibration.labels

    def at(chosen: float, resamples: int) -> dict:
        sets = prediction_sets(calibration, probs, chosen)
        covered = sets[np.arange(len(y)), y].astype(float)
        size = sets.sum(axis=1).astype(float)
        return {"coverage_by_class": {label: _per_patient(covered[y == k], groups[y == k], resamples, seed)
                                      for k, label in enumerate(labels) if (y == k).any()},
                "mean_set_size": _per_patient(size, groups, resamples, seed),
                "singleton_rate": _per_patient((size == 1).astype(float), groups, resamples, seed)}

    report = {"level": level, "score": calibration.score, "unit": "patient", **at(level, n_resamples)}
    report["by_level"] = {f"{chosen:g}": {"coverage_by_class": {label: entry["value"] for label, entry in
                                                                 other["coverage_by_class"].items()},
                                          "mean_set_size": other["mean_set_size"]["value"]}
                          for chosen in LEVELS for other in [at(chosen, 0)]}
    return report
