"""Per-patient (or per-breast) scores pooled from per-image scores, and their ROC AUC with a patient bootstrap.

Why: screening is read and judged per woman (or per breast), not per picture. An RSNA patient
with cancer has several views of which only some show it, so an image-level AUC mixes "which
view" with "which woman". The pooling rule (mean or max of the views' scores) is chosen on
out-of-fold predictions, never on the test patients; per breast where the side is known,
otherwise per patient.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from bcc_model.evaluation.bootstrap import estimate_entry
from bcc_model.models.view_pooling import VIEW_POOLINGS, pool_views

__all__ = ["pool_scores", "group_roc_auc", "choose_group_pooling"]


def pool_scores(p: np.ndarray, positive: np.ndarray, groups: Sequence[str], rule: str
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(group ids, pooled score, group is positive if any of its images is) in sorted group order."""
    ids, index = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    pooled = pool_views(p, index, ids.size, rule)
    truth = np.zeros(ids.size, dtype=int)
    np.maximum.at(truth, index, np.asarray(positive, dtype=int))
    return ids, pooled, truth


def _auc(truth: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(truth, score)) if 0 < truth.sum() < truth.size else float("nan")


def group_roc_auc(p: np.ndarray, positive: np.ndarray, groups: Sequence[str], rule: str, *,
                  n_resamples: int = 1000, seed: int = 0) -> dict:
    """``{"rule", "groups", "positive_groups", "roc_auc": {"value", "ci95"}}``: bootstrap over whole groups."""
    _, pooled, truth = pool_scores(p, positive, groups, rule)
    resampled = None
    if n_resamples and truth.size > 1:
        rng = np.random.default_rng(seed)
        picks = rng.integers(0, truth.size, size=(n_resamples, truth.size))
        resampled = np.array([_auc(truth[pick], pooled[pick]) for pick in picks])
    return {"rule": rule, "groups": int(truth.size), "positive_groups": int(truth.sum()),
            "roc_auc": estimate_entry(_auc(truth, pooled), resampled)}


def choose_group_pooling(p: np.ndarray, positive: np.ndarray, groups: Sequence[str]) -> dict:
    """The rule of the highest group-level ROC AUC on (out-of-fold) scores; ties go to ``mean`` (steadier)."""
    scores = {}
    for rule in VIEW_POOLINGS:
        _, pooled, truth = pool_scores(p, positive, groups, rule)
        scores[rule] = _auc(truth, pooled)
    defined = {rule: auc for rule, auc in scores.items() if not np.isnan(auc)}
    chosen = max(defined, key=lambda rule: (defined[rule], rule == "mean")) if defined else "mean"
    return {"rule": chosen, "roc_auc": {rule: (None if np.isnan(auc) else auc) for rule, auc in scores.items()}}
