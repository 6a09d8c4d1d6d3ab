"""Conformal prediction sets: the classes a bundle cannot rule out at a chosen level.

Why: an indeterminate band is a rule of thumb; a conformal set is a promise a reader can check.
With class-conditional (Mondrian) calibration, at level 90 % the set holds the true class for
about 90 % of new patients' cases *of each class*, provided new patients are exchangeable with
the calibration patients (Vovk et al. 2005; Angelopoulos & Bates 2021).

Patients, not patches, are the exchangeable units: one patient's patches share stain, scanner
and tumour. The calibration therefore keeps each patient's scores apart, and a class's p-value
counts patients: ``p(s) = (sum over calibration patients of the share of their cases scoring
>= s, + 1) / (n_patients + 1)``, the pooled-CDF method of Dunn, Wasserman & Ramdas (2023). Using
every case of a patient instead of one drawn at random removes the draw's noise: on the H&E
validation patients one random patch per patient moved the test coverage by ±0.05 from seed to
seed, the pooled CDF by ±0.004 (docs/experiments/2026-12-06-conformal-on-own-patients.md).

The p-values come from ``crepes`` (Boström 2022, BSD-3-Clause), one ``ConformalClassifier`` per
class: each patient enters as :data:`PATIENT_QUANTILES` quantiles of its scores (so every patient
weighs the same), plus ``PATIENT_QUANTILES - 1`` infinite scores (stranger than any case), which
turns crepes' patch count into the patient count above exactly. Unsmoothed p-values keep a set
the same on every run. This module applies a stored calibration; fitting it is
``evaluation.conformal``'s job, so prediction never imports evaluation.

References:
    Vovk, Gammerman & Shafer (2005). Algorithmic Learning in a Random World. Springer.
    Sadinle, Lei & Wasserman (2019). Least ambiguous set-valued classifiers with bounded error
        levels. JASA 114 (LAC).
    Romano, Sesia & Candès (2020). Classification with valid and adaptive coverage. NeurIPS (APS).
    Angelopoulos & Bates (2021). A Gentle Introduction to Conformal Prediction. arXiv:2107.07511.
    Boström (2022). crepes: a Python package for generating conformal regressors and predictive
        systems. COPA, PMLR 179.
    Dunn, Wasserman & Ramdas (2023). Distribution-free prediction sets for two-layer hierarchical
        models. JASA 118.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Mapping, Sequence

import numpy as np

__all__ = ["LEVELS", "DEFAULT_LEVEL", "SCORES", "PATIENT_QUANTILES", "ConformalCalibration", "prediction_sets",
           "undecided_band", "set_words", "level_text", "patient_quantiles"]

LEVELS = (0.8, 0.9, 0.95)
"""The levels a user may choose."""

DEFAULT_LEVEL = 0.9
"""The level of model.json's indeterminate band, the card's figures and the app's first view."""

PATIENT_QUANTILES = 50
"""Quantiles that stand for one calibration patient's scores (a patient with one case: 50 copies)."""

_TOP_SCORE = np.inf
"""Padding scores count as "at least as strange" as any case (RAPS scores may exceed 1)."""


def lac_scores(probs: np.ndarray) -> np.ndarray:
    """Least-ambiguous-set score of every class: ``1 - p_k`` (Sadinle, Lei & Wasserman 2019)."""
    return 1.0 - np.asarray(probs, dtype=np.float64)


def aps_scores(probs: np.ndarray) -> np.ndarray:
    """Adaptive-prediction-set score of every class, unrandomised: the mass of the classes at least as likely.

    ``sum of p_j over j with p_j >= p_k`` (Romano et al. 2020 without the random tie term, so a
    set never changes between runs).
    """
    p = np.asarray(probs, dtype=np.float64)
    return (p[:, None, :] * (p[:, None, :] >= p[:, :, None])).sum(axis=2)


RAPS_PENALTY, RAPS_FREE_RANKS = 0.1, 1
"""RAPS's penalty per class ranked beyond the first ``RAPS_FREE_RANKS`` (Angelopoulos et al. 2021)."""


def raps_scores(probs: np.ndarray) -> np.ndarray:
    """Regularised APS, unrandomised: the APS score plus ``RAPS_PENALTY`` per rank beyond ``RAPS_FREE_RANKS``.

    Why: with three classes APS lets an unlikely third class in too easily; the penalty keeps
    sets small where the ranking is clear (Angelopoulos, Bates, Malik & Jordan 2021, ICLR).
    """
    p = np.asarray(probs, dtype=np.float64)
    rank = (p[:, None, :] > p[:, :, None]).sum(axis=2) + 1  # 1 for the most probable class
    return aps_scores(p) + RAPS_PENALTY * np.maximum(rank - RAPS_FREE_RANKS, 0)


SCORES: Mapping[str, Callable[[np.ndarray], np.ndarray]] = {"lac": lac_scores, "aps": aps_scores,
                                                            "raps": raps_scores}
"""Nonconformity scores by name: (N, K) calibrated probabilities -> (N, K) scores (higher: stranger)."""


def patient_quantiles(scores: Sequence[float]) -> np.ndarray:
    """:data:`PATIENT_QUANTILES` quantiles of one patient's scores: the patient's equal-weight stand-in."""
    steps = (np.arange(PATIENT_QUANTILES) + 0.5) / PATIENT_QUANTILES
    return np.quantile(np.asarray(scores, dtype=np.float64), steps, method="inverted_cdf")


@dataclass(frozen=True)
class ConformalCalibration:
    """A bundle's stored conformal calibration (``model.json`` ``conformal``).

    Attributes:
        score: name in :data:`SCORES`.
        labels: the classes, in the model's output order.
        scores: per class, per calibration patient, the scores of that patient's cases of the class
            (at most :data:`PATIENT_QUANTILES` of them: quantiles when the patient had more).
        fitted_on: where the scores came from, in words.
    """

    score: str
    labels: tuple[str, ...]
    scores: Mapping[str, tuple[tuple[float, ...], ...]]
    fitted_on: str

    @classmethod
    def from_json(cls, data: Mapping, labels: Sequence[str]) -> "ConformalCalibration":
        """Read ``model.json``'s ``conformal`` block; ``ValueError`` when it does not fit ``labels``.

        A flat list of numbers per class (bundles before patient-grouped scores) reads as one
        case per patient.
        """
        score, scores = data.get("score"), data.get("scores")
        if score not in SCORES or not isinstance(scores, Mapping) or set(scores) != set(labels):
            raise ValueError(f"conformal: need a score in {sorted(SCORES)} and scores for every class {list(labels)}")
        values = {label: tuple(tuple(float(v) for v in (patient if isinstance(patient, Sequence) else [patient]))
                               for patient in scores[label]) for label in labels}
        if any(not patients or any(not p or not np.all(np.isfinite(p)) for p in patients)
               for patients in values.values()):
            raise ValueError("conformal: every class needs finite calibration scores")
        return cls(score=score, labels=tuple(labels), scores=values, fitted_on=str(data.get("fitted_on", "")))

    def to_json(self) -> dict:
        return {"score": self.score, "fitted_on": self.fitted_on, "unit": "patient",
                "n_by_class": {label: len(self.scores[label]) for label in self.labels},
                "scores": {label: [[round(v, 6) for v in patient] for patient in self.scores[label]]
                           for label in self.labels}}

    @cached_property
    def _bands(self) -> dict:
        """``undecided_band`` results by (positive index, level), filled on first use."""
        return {}

    @cached_property
    def _classifiers(self) -> tuple:
        """One fitted crepes classifier per class over its patients' equal-weight scores (built once)."""
        from crepes import ConformalClassifier

        fitted = []
        for label in self.labels:
            patients = self.scores[label]
            alphas = np.concatenate([patient_quantiles(p) for p in patients]
                                    + [np.full(PATIENT_QUANTILES - 1, _TOP_SCORE)])
            fitted.append(ConformalClassifier().fit(alphas))
        return tuple(fitted)


def prediction_sets(calibration: ConformalCalibration, probs: np.ndarray, level: float) -> np.ndarray:
    """bool (N, K): class ``k`` is in case ``n``'s set at ``level`` (its patient-unit p-value >= 1 - level).

    A set that would be empty holds instead the class with the highest p-value: class-conditional
    sets of a very confident model are empty for about ``1 - level`` of the cases (a patch too
    plainly benign to be among the 90 % most typical), and "no class fits" would read as doubt
    where there is none. Coverage can only rise by it.

    Args:
        calibration: the bundle's stored calibration.
        probs: (N, K) calibrated probabilities, columns in ``calibration.labels`` order.
        level: the promised coverage per class, in (0, 1).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != len(calibration.labels):
        raise ValueError(f"probs must be (N, {len(calibration.labels)}), got {p.shape}")
    if len(p) == 0:
        return np.zeros(p.shape, bool)
    scores = SCORES[calibration.score](p)
    p_values = np.stack([classifier.predict_p(scores[:, [k]], smoothing=False)[:, 0]
                         for k, classifier in enumerate(calibration._classifiers)], axis=1)
    sets = p_values >= 1.0 - level - 1e-12
    empty = ~sets.any(axis=1)
    sets[np.flatnonzero(empty), np.argmax(p_values[empty], axis=1)] = True
    return sets


def undecided_band(calibration: ConformalCalibration, positive_index: int, threshold: float,
                   level: float) -> tuple[float, float] | None:
    """For a two-class model, the P(positive) interval where the set at ``level`` is not exactly the threshold's class.

    Why: in two classes the set is decided by P(positive) alone, so "the set holds both classes,
    or another class than the rule's" is an interval, the indeterminate band. Deriving the band
    from the set makes one concept of "can't decide" for the verdict, the tile map and the
    metrics. ``None`` for three or more classes (there the set itself says it); a zero-width band
    at the threshold when every set is the rule's class.
    """
    if len(calibration.labels) != 2:
        return None
    key = (positive_index, threshold, level)
    if key not in calibration._bands:
        calibration._bands[key] = _band(calibration, positive_index, threshold, level)
    return calibration._bands[key]


def _band(calibration: ConformalCalibration, positive_index: int, threshold: float,
          level: float) -> tuple[float, float]:
    grid = np.linspace(0.0, 1.0, 2001)
    probs = np.zeros((grid.size, 2))
    probs[:, positive_index], probs[:, 1 - positive_index] = grid, 1.0 - grid
    sets = prediction_sets(calibration, probs, level)
    rule = np.where(grid >= threshold, positive_index, 1 - positive_index)
    undecided = grid[(sets.sum(axis=1) != 1) | ~sets[np.arange(grid.size), rule]]
    if undecided.size:
        return float(undecided.min()), float(min(1.0, undecided.max() + grid[1]))
    return float(threshold), float(threshold)


def level_text(level: float) -> str:
    """A level as every page, table and report writes it: ``0.9`` -> ``"90 %"``."""
    return f"{100 * level:.0f} %"


def set_words(members: Sequence[str], all_labels: Sequence[str], level: float) -> str:
    """The set in words: one class, or "A or B: can't decide at 90 %" (a set is never empty)."""
    if len(members) == 1:
        return members[0]
    return f"{' or '.join(members or all_labels)}: can't decide at {level_text(level)}"
