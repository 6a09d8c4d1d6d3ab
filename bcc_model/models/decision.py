"""The decision rule a bundle applies at prediction time: temperature, threshold and band.

Why here, beside the models: the app, the command line and batch analysis apply the rule to
every prediction, while ``evaluation/calibration.py`` only *fits* it on validation patients. Keeping
the applying half with the models lets prediction run without importing evaluation.

References:
    Guo, Pleiss, Sun & Weinberger (2017). On Calibration of Modern Neural Networks. ICML.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import log_softmax

__all__ = ["OperatingPoint", "apply_temperature", "decide", "check_probs", "scaled_log_probs"]

_PROB_FLOOR = 1e-12
"""Probabilities are clipped to this before ``log`` so exact zeros give finite logits."""

def check_probs(probs: np.ndarray) -> np.ndarray:
    """Return ``probs`` as a float (N, K) array with K >= 2, or raise ValueError."""
    arr = np.asarray(probs)
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise ValueError(f"probs must have shape (N, K) with K >= 2, got {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError("probs is empty")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)) or arr.min() < 0.0 or arr.max() > 1.0:
        raise ValueError("probs must be finite and within [0, 1]")
    return arr


def scaled_log_probs(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``log_softmax(log(p) / T)`` row-wise, in float64."""
    logits = np.log(np.clip(probs.astype(np.float64), _PROB_FLOOR, 1.0))
    return log_softmax(logits / temperature, axis=1)


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Rescale softmax outputs by a fitted temperature: ``softmax(log(p) / T)``.

    Args:
        probs: (N, K) softmax outputs in [0, 1]; zeros are clipped to 1e-12 before the log.
        temperature: the value from :func:`fit_temperature`; must be > 0. ``T = 1`` returns
            the (renormalised) input.

    Returns:
        (N, K) calibrated probabilities whose rows sum to 1, in the input's float dtype
        (float64 for non-float input). The input is not modified.

    Raises:
        ValueError: if ``temperature`` is not a positive finite number or ``probs`` is invalid.
    """
    if not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
    arr = check_probs(probs)
    return np.exp(scaled_log_probs(arr, float(temperature))).astype(arr.dtype)


def decide(
    probs: np.ndarray, positive_index: int, threshold: float, band: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Apply the decision rule to calibrated probabilities.

    Predict the positive class when its probability is at least ``threshold``; otherwise the
    most probable of the other classes (for K = 2, simply the other class). A case is
    indeterminate when ``band[0] <= p_positive < band[1]``; its label is still returned.

    Args:
        probs: (N, K) calibrated probabilities, K >= 2.
        positive_index: column of the positive class.
        threshold: decision threshold in [0, 1].
        band: ``(lo, hi)`` with ``0 <= lo <= hi <= 1``.

    Returns:
        ``(pred_index, indeterminate)``: (N,) int64 predicted class indices and (N,) bool flags.

    Raises:
        ValueError: if ``positive_index``, ``threshold`` or ``band`` is invalid.
    """
    arr = check_probs(probs)
    k = arr.shape[1]
    if not 0 <= positive_index < k:
        raise ValueError(f"positive_index must be in [0, {k}), got {positive_index}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    lo, hi = band
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"band must satisfy 0 <= lo <= hi <= 1, got {band}")

    p_pos = arr[:, positive_index]
    others = arr.astype(np.float64)  # a copy: the caller's array is left alone
    others[:, positive_index] = -np.inf
    pred = np.where(p_pos >= threshold, positive_index, np.argmax(others, axis=1)).astype(np.int64)
    indeterminate = (p_pos >= lo) & (p_pos < hi)
    return pred, indeterminate


@dataclass(frozen=True)
class OperatingPoint:
    """How a bundle turns outputs into a verdict: labels, positive class, temperature, threshold, band, sets.

    One object instead of loose parameters, so metrics, evaluation and training apply the same
    decision rule as the app (:meth:`decide`). With a conformal calibration (``conformal``, a
    ``models.conformal.ConformalCalibration``) a case is indeterminate unless its set at ``level``
    is exactly the rule's class; for two classes that is the band itself when the band was derived
    from the set at that level (``Bundle.band_at``).
    """

    labels: tuple[str, ...]
    positive_index: int
    threshold: float
    band: tuple[float, float]
    temperature: float = 1.0
    conformal: Any = None
    level: float = 0.9

    @classmethod
    def of(cls, bundle, level: float | None = None) -> "OperatingPoint":
        """The operating point of a loaded bundle (``models.bundle.Bundle``) at a set level (default: the card's)."""
        from bcc_model.models.conformal import DEFAULT_LEVEL

        level = DEFAULT_LEVEL if level is None else level
        return cls(tuple(bundle.labels), bundle.meta.positive_index, bundle.threshold, bundle.band_at(level),
                   bundle.temperature, bundle.conformal, level)

    def sets(self, probs: np.ndarray) -> np.ndarray | None:
        """bool (N, K) conformal sets at :attr:`level`, or ``None`` without a calibration."""
        from bcc_model.models.conformal import prediction_sets

        return None if self.conformal is None else prediction_sets(self.conformal, probs, self.level)

    def decide(self, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(pred_index, indeterminate)`` as :func:`decide`, the set's word overriding the band when there is one."""
        pred, indeterminate = decide(probs, self.positive_index, self.threshold, self.band)
        sets = self.sets(probs)
        if sets is not None:
            indeterminate = ~((sets.sum(axis=1) == 1) & sets[np.arange(len(pred)), pred])
        return pred, indeterminate
