"""Conformal prediction sets: the classes a bundle cannot rule out at a chosen level.

Why: an indeterminate band is a rule of thumb; a conformal set is a promise a reader can check.
With class-conditional (Mondrian) calibration, at level 90 % the set holds the true class for at
least 90 % of new cases *of each class*, provided they are exchangeable with the calibration
cases (Vovk et al. 2005; Angelopoulos & Bates 2021). Patches of one patient are not exchangeable
with another's, so the calibration keeps one score per patient and class
(``evaluation.conformal.fit_conformal``): the promise is about a patch of a new patient.

The p-values come from ``crepes`` (Boström 2022, BSD-3-Clause): one ``ConformalClassifier`` per
class over that class's calibration scores; class ``k`` joins the set when its p-value is at least
``1 - level``. Unsmoothed p-values keep a set the same on every run. This module applies a stored
calibration; fitting it is ``evaluation.conformal``'s job, so prediction never imports evaluation.

References:
    Vovk, Gammerman & Shafer (2005). Algorithmic Learning in a Random World. Springer.
    Romano, Sesia & Candès (2020). Classification with valid and adaptive coverage. NeurIPS (APS).
    Angelopoulos & Bates (2021). A Gentle Introduction to Conformal Prediction. arXiv:2107.07511.
    Boström (2022). crepes: a Python package for generating conformal regressors and predictive
        systems. COPA, PMLR 179.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

__all__ = ["LEVELS", "SCORES", "ConformalCalibration", "prediction_sets", "set_words"]

LEVELS = (0.8, 0.9, 0.95)
"""The levels a user may choose; 0.9 is the default."""


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


SCORES: Mapping[str, Callable[[np.ndarray], np.ndarray]] = {"lac": lac_scores, "aps": aps_scores}
"""Nonconformity scores by name: (N, K) calibrated probabilities -> (N, K) scores (higher: stranger)."""


@dataclass(frozen=True)
class ConformalCalibration:
    """A bundle's stored conformal calibration (``model.json`` ``conformal``).

    Attributes:
        score: name in :data:`SCORES`.
        labels: the classes, in the model's output order.
        scores: per class, the calibration scores of cases of that class (one per patient).
        fitted_on: where the scores came from, in words.
    """

    score: str
    labels: tuple[str, ...]
    scores: Mapping[str, tuple[float, ...]]
    fitted_on: str

    @classmethod
    def from_json(cls, data: Mapping, labels: Sequence[str]) -> "ConformalCalibration":
        """Read ``model.json``'s ``conformal`` block; ``ValueError`` when it does not fit ``labels``."""
        score, scores = data.get("score"), data.get("scores")
        if score not in SCORES or not isinstance(scores, Mapping) or set(scores) != set(labels):
            raise ValueError(f"conformal: need a score in {sorted(SCORES)} and scores for every class {list(labels)}")
        values = {label: tuple(float(v) for v in scores[label]) for label in labels}
        if any(not v or not np.all(np.isfinite(v)) for v in values.values()):
            raise ValueError("conformal: every class needs finite calibration scores")
        return cls(score=score, labels=tuple(labels), scores=values, fitted_on=str(data.get("fitted_on", "")))

    def to_json(self) -> dict:
        return {"score": self.score, "fitted_on": self.fitted_on,
                "n_by_class": {label: len(self.scores[label]) for label in self.labels},
                "scores": {label: [round(v, 6) for v in self.scores[label]] for label in self.labels}}


def prediction_sets(calibration: ConformalCalibration, probs: np.ndarray, level: float) -> np.ndarray:
    """bool (N, K): class ``k`` is in case ``n``'s set at ``level`` (class-conditional p-value >= 1 - level).

    Args:
        calibration: the bundle's stored calibration.
        probs: (N, K) calibrated probabilities, columns in ``calibration.labels`` order.
        level: the promised coverage per class, in (0, 1).
    """
    from crepes import ConformalClassifier

    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != len(calibration.labels):
        raise ValueError(f"probs must be (N, {len(calibration.labels)}), got {p.shape}")
    if len(p) == 0:
        return np.zeros(p.shape, bool)
    scores = SCORES[calibration.score](p)
    sets = np.zeros(p.shape, bool)
    for k, label in enumerate(calibration.labels):
        classifier = ConformalClassifier().fit(np.asarray(calibration.scores[label]))
        p_values = classifier.predict_p(scores[:, [k]], smoothing=False)[:, 0]
        sets[:, k] = p_values >= 1.0 - level
    return sets


def set_words(members: Sequence[str], all_labels: Sequence[str], level: float) -> str:
    """The set in words: one class, "A or B: can't decide at 90 %", or "none of the classes fits at 90 %"."""
    share = f"{100 * level:.0f} %"
    if len(members) == 1:
        return members[0]
    if not members:
        return f"none of {', '.join(all_labels)} fits at {share}"
    return f"{' or '.join(members)}: can't decide at {share}"
