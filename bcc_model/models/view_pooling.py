"""How the scores of several views of one breast (or one woman) combine into one: the rules and their arithmetic.

Kept apart from evaluation (which chooses the rule on out-of-fold scores, ``evaluation/grouped.py``)
and from analysis (which applies it to a batch, ``analysis/breasts.py``), so both use one definition.
"""

from __future__ import annotations

import numpy as np

__all__ = ["VIEW_POOLINGS", "pool_views"]

VIEW_POOLINGS = ("mean", "max")
"""``mean``: every view counts alike; ``max``: the most suspicious view decides."""


def pool_views(p: np.ndarray, index: np.ndarray, n_groups: int, rule: str) -> np.ndarray:
    """(n_groups,) pooled scores of ``p`` whose group is ``index`` (0 .. n_groups - 1), by ``rule``."""
    if rule not in VIEW_POOLINGS:
        raise ValueError(f"unknown pooling {rule!r}; valid: {', '.join(VIEW_POOLINGS)}")
    p = np.asarray(p, dtype=float)
    if rule == "mean":
        return np.bincount(index, weights=p, minlength=n_groups) / np.bincount(index, minlength=n_groups)
    pooled = np.full(n_groups, -np.inf)
    np.maximum.at(pooled, index, p)
    return pooled
