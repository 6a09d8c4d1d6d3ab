"""Fitting and checking conformal prediction sets on held-out patients (``models/conformal.py`` applies them).

Calibration uses one score per patient and class, drawn with a fixed seed: patches of one patient
share stain, scanner and tumour, so they are not exchangeable with another patient's, and a
patient with 700 patches would otherwise set the quantile alone. The promise is then about a
patch of a new patient. Coverage is checked per class on patients the calibration never saw,
with intervals from resampling whole patients.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from bcc_model.evaluation.bootstrap import group_bootstrap_mean
from bcc_model.models.conformal import SCORES, ConformalCalibration, prediction_sets

__all__ = ["one_per_patient", "fit_conformal", "conformal_report"]


def one_per_patient(y: np.ndarray, groups: Sequence[str], seed: int) -> np.ndarray:
    """Indices of one case per (patient, class) present, drawn with ``seed``; sorted."""
    rng = np.random.default_rng(seed)
    groups = np.asarray([str(g) for g in groups])
    y = np.asarray(y)
    keys = np.char.add(np.char.add(groups, "\x00"), y.astype(str))
    order = rng.permutation(len(y))
    _, first = np.unique(keys[order], return_index=True)
    return np.sort(order[first])


def fit_conformal(probs: np.ndarray, y: np.ndarray, groups: Sequence[str], labels: Sequence[str], *,
                  score: str = "lac", seed: int = 0, fitted_on: str = "held-out patients") -> ConformalCalibration:
    """Class-conditional calibration scores from held-out calibrated probabilities ``probs`` (N, K).

    Raises:
        ValueError: a class without any calibration case (no set could be promised for it).
    """
    if score not in SCORES:
        raise ValueError(f"score must be one of {sorted(SCORES)}, got {score!r}")
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y)
    keep = one_per_patient(y, groups, seed)
    scores = SCORES[score](p[keep])[np.arange(len(keep)), y[keep]]
    by_class = {label: tuple(scores[y[keep] == k].tolist()) for k, label in enumerate(labels)}
    empty = [label for label, values in by_class.items() if not values]
    if empty:
        raise ValueError(f"no calibration case of class(es) {empty}")
    n_patients = len(set(str(g) for g in groups))
    return ConformalCalibration(score=score, labels=tuple(labels), scores=by_class,
                                fitted_on=f"{fitted_on}: one case per patient and class ({len(keep)} cases of "
                                          f"{n_patients} patients, seed {seed})")


def conformal_report(calibration: ConformalCalibration, probs: np.ndarray, y: np.ndarray, groups: Sequence[str],
                     level: float = 0.9, *, n_resamples: int = 1000, seed: int = 0) -> dict:
    """metrics.json ``conformal``: per-class coverage, mean set size and singleton rate at ``level``.

    Coverage of class ``k`` is the share of its cases whose set holds ``k``; every figure has a
    95 % interval from resampling whole patients.
    """
    y = np.asarray(y)
    groups = np.asarray([str(g) for g in groups])
    sets = prediction_sets(calibration, probs, level)
    covered = sets[np.arange(len(y)), y].astype(float)
    size = sets.sum(axis=1).astype(float)
    coverage = {label: group_bootstrap_mean(covered[y == k], groups[y == k], n_resamples=n_resamples, seed=seed)
                for k, label in enumerate(calibration.labels) if (y == k).any()}
    return {"level": level, "score": calibration.score,
            "coverage_by_class": coverage,
            "mean_set_size": group_bootstrap_mean(size, groups, n_resamples=n_resamples, seed=seed),
            "singleton_rate": group_bootstrap_mean((size == 1).astype(float), groups, n_resamples=n_resamples,
                                                   seed=seed),
            "empty_rate": float((size == 0).mean()) if len(size) else None}
