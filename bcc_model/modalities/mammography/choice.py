"""What cross-validation found, and what the chosen recipe's out-of-fold predictions decide.

``PoolingCV`` records the comparison; from its chosen candidate's out-of-fold predictions come the
operating point (temperature, threshold, band), the conformal sets and how a woman's views pool.

Why apart from ``training.py``: these are fitted once, after cross-validation has chosen, on the
predictions of patients each fold model never saw; they never train a network. The set targets
and per-source weights live here because both the fitting (``training.py``) and these choices
weigh images the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bcc_model.registry import ModalitySpec

if TYPE_CHECKING:
    from bcc_model.modalities.mammography.features import Source

__all__ = ["PoolingCV", "set_targets", "source_weights", "operating_point", "patient_pooling"]


@dataclass(frozen=True)
class PoolingCV:
    """What patient-grouped cross-validation of one trunk's poolings and epochs found.

    Attributes:
        n_splits: patient folds per data set.
        candidates: ``"<arch> <pooling>@<epochs>"`` -> its record (architecture, pooling, epochs,
            out-of-fold ROC AUC per data set and their mean, held-out curves by epoch).
        chosen: the key of the best mean ROC AUC (fewer epochs on ties).
        fold_of: per data set, each image's fold (-1: a test patient).
        oof: per data set, the chosen candidate's out-of-fold raw probabilities.
        n_patients: data set -> non-test patients.
    """

    n_splits: int
    candidates: dict[str, dict]
    chosen: str
    fold_of: list[np.ndarray]
    oof: list[np.ndarray]
    n_patients: dict[str, int]

    RULE = "mean over data sets of out-of-fold malignant-vs-rest ROC AUC"

    @property
    def best(self) -> dict:
        """The chosen candidate's record."""
        return self.candidates[self.chosen]

    def record(self, candidates: dict[str, dict]) -> dict:
        """model.json ``pooling_cross_validation``, listing ``candidates`` (every trunk's, on the same folds)."""
        return {"n_splits": self.n_splits, "rule": self.RULE, "candidates": candidates, "chosen": self.chosen,
                "n_patients": self.n_patients}


def set_targets(labels: pd.Series, spec: ModalitySpec) -> np.ndarray:
    """(N, K) set indicators: one-hot for a class, every class but the positive for a negative label."""
    out = np.zeros((len(labels), len(spec.labels)), np.float32)
    for i, label in enumerate(labels):
        if label in spec.labels:
            out[i, spec.labels.index(label)] = 1
        else:
            out[i] = 1
            out[i, spec.positive_index] = 0
    return out


def source_weights(labels: pd.Series) -> np.ndarray:
    """Each class of one data set the same total weight; the set's weights sum to 1."""
    counts = labels.value_counts()
    return labels.map(lambda label: 1.0 / (len(counts) * counts[label])).to_numpy(np.float32)


def operating_point(sources: list[Source], cv: PoolingCV, spec: ModalitySpec) -> dict:
    """Temperature, threshold and band fitted on the chosen recipe's out-of-fold predictions (all sets)."""
    from bcc_model.models.decision import apply_temperature, decide
    from bcc_model.evaluation.calibration import choose_band, choose_threshold, fit_temperature

    raw = np.concatenate([p[f >= 0] for p, f in zip(cv.oof, cv.fold_of)])
    targets = np.concatenate([set_targets(s.table["label"][f >= 0], spec) for s, f in zip(sources, cv.fold_of)])
    weights = np.concatenate([source_weights(s.table["label"][f >= 0]) for s, f in zip(sources, cv.fold_of)])
    temperature = fit_temperature(raw, targets=targets, weights=weights)
    probs = apply_temperature(raw, temperature)
    positive = targets[:, spec.positive_index] == 1
    p = probs[:, spec.positive_index]
    threshold = choose_threshold(p, positive.astype(int))
    band = choose_band(p, positive.astype(int), threshold)
    predicted, indeterminate = decide(probs, spec.positive_index, threshold, band)
    correct = targets[np.arange(len(targets)), predicted] == 1
    fitted_on = (f"out-of-fold predictions of {cv.n_splits}-fold patient-grouped cross-validation "
                 f"({', '.join(f'{n} {k} patients' for k, n in cv.n_patients.items())})")
    return {"fitted_on": fitted_on, "conformal": _oof_conformal(sources, cv, probs, targets, spec, fitted_on), "temperature": float(temperature), "threshold": float(threshold),
            "band": [float(band[0]), float(band[1])], "roc_auc": cv.best["mean_roc_auc"],
            "balanced_accuracy": float(np.mean([correct[positive].mean(), correct[~positive].mean()])),
            "loss": float(np.average(-np.log(np.clip((probs * targets).sum(axis=1), 1e-7, 1)), weights=weights)),
            "accuracy_outside_band": float(correct[~indeterminate].mean()) if (~indeterminate).any() else None,
            "fraction_indeterminate": float(indeterminate.mean())}


def patient_pooling(sources: list[Source], cv: PoolingCV, spec: ModalitySpec) -> dict:
    """Per screening data set, the rule that pools a patient's views (mean or max), chosen on out-of-fold scores.

    Only screening sets (a label outside the model's classes, e.g. RSNA's ``negative``) are read per
    woman; MIAS images are single views scored per image.
    """
    from bcc_model.evaluation.grouped import choose_group_pooling

    out = {}
    for source, f, p in zip(sources, cv.fold_of, cv.oof):
        if not set(source.table["label"]) - set(spec.labels):
            continue
        rows = f >= 0
        positive = (source.table["label"][rows] == spec.positive_label).to_numpy(int)
        out[source.name] = choose_group_pooling(p[rows, spec.positive_index], positive,
                                                source.table["group"][rows].astype(str).tolist())
    return out


def _oof_conformal(sources: list[Source], cv: PoolingCV, probs: np.ndarray, targets: np.ndarray, spec: ModalitySpec,
                   fitted_on: str):
    """Conformal sets of the out-of-fold predictions of the images with one class (a screening "negative" has two).

    Why out-of-fold: the final head trains on every non-test patient, so no patient is held out
    from it; the fold heads (same recipe, other networks) are the nearest held-out scores there are.
    ``None`` when a class has no such image.
    """
    from bcc_model.evaluation.conformal import fit_conformal

    groups = np.concatenate([(s.name + ":" + s.table["group"].astype(str))[f >= 0].to_numpy()
                             for s, f in zip(sources, cv.fold_of)])
    single = targets.sum(axis=1) == 1
    try:
        return fit_conformal(probs[single], targets[single].argmax(axis=1), groups[single], spec.labels,
                             fitted_on=fitted_on)
    except ValueError:
        return None
