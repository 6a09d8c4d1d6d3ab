"""Case weights: under-sampled tissue counts as much as it was, and (in the loss) every patient once.

In the H&E data 19 patients kept only 27.1 % of their IDC-negative patches: a temperature, a
threshold or a balanced accuracy computed on the pooled patches inherits that mix and makes IDC
look more common than it is in those patients' tissue. ``prevalence`` (``1 / fraction`` for the
under-sampled rows, ``datasets.folders.discover``'s ``prevalence_weight``) restores it. The loss
also gives every patient the same total (one patient has 2 patches, another 700).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["case_weights", "prevalence_weights"]


def case_weights(groups: Sequence[str], prevalence: Sequence[float] | None = None) -> np.ndarray:
    """float64 (N,) weights of mean 1: each patient the same total, patches within it by ``prevalence``.

    Args:
        groups: (N,) patient of each case.
        prevalence: (N,) relative weight of each case within its patient (``1 / sampled fraction``);
            ``None``: all 1 (patient weighting only).
    """
    groups = np.asarray(groups)
    if groups.size == 0:
        return np.zeros(0)
    relative = np.ones(groups.size) if prevalence is None else np.asarray(prevalence, dtype=np.float64)
    if relative.shape != groups.shape or not np.all(np.isfinite(relative)) or relative.min() <= 0:
        raise ValueError("prevalence must be (N,) positive finite weights, one per case")
    _, inverse = np.unique(groups, return_inverse=True)
    weights = relative / np.bincount(inverse, weights=relative)[inverse]
    return weights / weights.mean()


def prevalence_weights(prevalence: Sequence[float] | None) -> np.ndarray | None:
    """float64 (N,) ``prevalence`` scaled to mean 1, or ``None`` when there is none.

    What calibration, the operating point and every reported metric weigh cases by: each patch
    as often as its kind occurs in the tissue it came from, pooled over patients as the
    published patch-level figures are. (Patients of unequal size count unequally here, as in
    those figures; the per-patient spread is reported beside them.)
    """
    if prevalence is None:
        return None
    weights = np.asarray(prevalence, dtype=np.float64)
    if weights.ndim != 1 or weights.size == 0 or not np.all(np.isfinite(weights)) or weights.min() <= 0:
        raise ValueError("prevalence must be (N,) positive finite weights, one per case")
    return weights / weights.mean()
