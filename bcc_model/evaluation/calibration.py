"""Fitting post-hoc calibration and the decision rule on validation data.

A network's softmax is usually over-confident, and the class with the highest probability is
not always the best operating point. This module turns validated probabilities into a
decision: one temperature that rescales the logits (Guo et al. 2017), one threshold on the
positive class chosen by Youden's J, and an "indeterminate" band around that threshold where
the model's own accuracy is too low to trust. All of these are fitted on validation patients
only, then frozen and applied unchanged to the test split and to new images.

Pure numpy/scipy. Applying the fitted rule is ``models/decision.py``'s job, so prediction never
imports evaluation.

References:
    Guo, Pleiss, Sun & Weinberger (2017). On Calibration of Modern Neural Networks. ICML.
    Youden (1950). Index for rating diagnostic tests. Cancer 3(1):32-35.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

from bcc_model.models.decision import check_probs, decide, scaled_log_probs

__all__ = ["fit_temperature", "choose_threshold", "choose_band", "band_summary"]

TEMPERATURE_BOUNDS = (0.05, 20.0)
"""Search range for the temperature; outside it the model is broken, not miscalibrated."""

_BAND_GRID = np.round(np.arange(51) * 0.01, 2)
"""Candidate half-widths of the indeterminate band: 0, 0.01, ..., 0.5."""


def _check_labels(y: np.ndarray, n: int, k: int) -> np.ndarray:
    """Return ``y`` as an int (N,) array of class indices in [0, K), or raise ValueError."""
    arr = np.asarray(y)
    if arr.shape != (n,):
        raise ValueError(f"y must have shape ({n},), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"y must hold integer class indices, got dtype {arr.dtype}")
    if arr.min() < 0 or arr.max() >= k:
        raise ValueError(f"y must lie in [0, {k}), got range [{arr.min()}, {arr.max()}]")
    return arr


def _check_binary(p_positive: np.ndarray, is_positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate a positive-class score vector and its boolean truth; both classes required."""
    p = np.asarray(p_positive, dtype=np.float64)
    t = np.asarray(is_positive)
    if p.ndim != 1 or t.shape != p.shape:
        raise ValueError(f"p_positive and is_positive must be 1-D of equal length, got {p.shape} and {t.shape}")
    if not np.all(np.isfinite(p)) or p.size == 0 or p.min() < 0.0 or p.max() > 1.0:
        raise ValueError("p_positive must be non-empty, finite and within [0, 1]")
    if not np.all((t == 0) | (t == 1)):
        raise ValueError("is_positive must be boolean (or 0/1)")
    t = t.astype(bool)
    n_pos = int(t.sum())
    if n_pos == 0 or n_pos == t.size:
        raise ValueError(
            "need both positive and negative validation cases to choose an operating point; "
            f"got {n_pos} positive and {t.size - n_pos} negative"
        )
    return p, t


def fit_temperature(probs: np.ndarray, y: np.ndarray | None = None, *, targets: np.ndarray | None = None,
                    weights: np.ndarray | None = None) -> float:
    """Fit the single temperature that minimises validation negative log-likelihood.

    Temperature scaling divides the logits by a scalar ``T`` before the softmax: ``T > 1``
    softens an over-confident model, ``T < 1`` sharpens an under-confident one. It keeps the
    ranking of classes (so accuracy and AUC do not change) and has one parameter, so it
    cannot over-fit a small validation set (Guo et al. 2017, section 4.2). The log of the
    softmax output recovers the logits up to a per-row constant, which the softmax ignores.

    Args:
        probs: (N, K) softmax outputs of the network on validation images, in [0, 1].
        y: (N,) integer true class indices in [0, K).
        targets: instead of ``y``, (N, K) 0/1 sets of the classes each label allows (a
            screening "negative" allows every class but the positive one); the likelihood of a
            row is then that of its set.
        weights: (N,) case weights of the likelihood (default: equal).

    Returns:
        The temperature, within ``TEMPERATURE_BOUNDS`` (searched on log T, so 0.5 and 2
        are equally easy to reach); 1 (the network's own probabilities) when every validation
        case is already classified correctly: the likelihood then keeps rising as T falls, so
        the "optimum" would be the lower bound, sharpening every future prediction towards 0
        or 1 on the evidence of no errors at all.

    Raises:
        ValueError: if the shapes or values are invalid.

    References:
        Guo et al. (2017). On Calibration of Modern Neural Networks. ICML.
    """
    arr = check_probs(probs)
    if targets is None:
        targets = np.eye(arr.shape[1], dtype=bool)[_check_labels(y, arr.shape[0], arr.shape[1])]
    allowed = np.asarray(targets) > 0
    if allowed.shape != arr.shape or not allowed.any(axis=1).all():
        raise ValueError(f"targets must be (N, K) = {arr.shape} with at least one allowed class per row")
    weights = np.ones(arr.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    if allowed[np.arange(arr.shape[0]), arr.argmax(axis=1)].all():
        return 1.0

    def nll(log_t: float) -> float:
        scaled = np.exp(scaled_log_probs(arr, float(np.exp(log_t))))
        return float(-np.average(np.log(np.clip((scaled * allowed).sum(axis=1), 1e-300, None)), weights=weights))

    lo, hi = np.log(TEMPERATURE_BOUNDS)
    result = minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-5})
    return float(np.exp(result.x))


def _check_weights(weights: np.ndarray | None, n: int) -> np.ndarray:
    """(N,) positive finite case weights; all 1 when ``weights`` is ``None``."""
    if weights is None:
        return np.ones(n)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,) or not np.all(np.isfinite(w)) or w.min() <= 0:
        raise ValueError(f"weights must be ({n},) positive finite case weights")
    return w


def choose_threshold(p_positive: np.ndarray, is_positive: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Choose the positive-class threshold that maximises Youden's J on validation data.

    ``J = sensitivity + specificity - 1`` weighs missed cancers and false alarms equally,
    whatever the class balance of the validation set (Youden 1950); it is the threshold of
    the best balanced accuracy. With ``weights`` (N,) (``datasets.weights.prevalence_weights``)
    sensitivity and specificity are weighted: each patient's tissue counts in its real mix.
    This is the rule fixed in advance for every bundle. Every threshold between
    two neighbouring validation scores gives the same J, so the midpoint of the best gap is
    returned: the largest margin on both sides, rather than a threshold sitting exactly on
    one validation image.

    Args:
        p_positive: (N,) calibrated probability of the positive class, in [0, 1].
        is_positive: (N,) bool, True where the true class is the positive one.

    Returns:
        Threshold ``t``; predict positive when ``p_positive >= t``.

    Raises:
        ValueError: if shapes differ, values are out of range, or either class is absent.
    """
    p, t = _check_binary(p_positive, is_positive)
    w = _check_weights(weights, p.size)
    order = np.argsort(-p, kind="stable")
    p_sorted, t_sorted, w_sorted = p[order], t[order], w[order]
    # Candidate thresholds are the distinct scores, descending; at each, everything scoring
    # at least that much is called positive. ``last`` indexes the end of each tie run.
    last = np.flatnonzero(np.r_[p_sorted[1:] != p_sorted[:-1], True])
    tpr = np.cumsum(w_sorted * t_sorted)[last] / w[t].sum()
    fpr = np.cumsum(w_sorted * ~t_sorted)[last] / w[~t].sum()
    best = int(np.argmax(tpr - fpr))
    scores = p_sorted[last]
    if best + 1 < scores.size:
        return float((scores[best] + scores[best + 1]) / 2.0)
    return float(scores[best])


def choose_band(
    p_positive: np.ndarray,
    is_positive: np.ndarray,
    threshold: float,
    *,
    target_accuracy: float = 0.95,
    max_fraction: float = 0.25,
    weights: np.ndarray | None = None,
) -> tuple[float, float]:
    """Choose the indeterminate band ``[threshold - d, threshold + d)`` on validation data.

    Cases close to the threshold are the ones the model gets wrong most often. Flagging them
    as indeterminate (still reporting the label) lets a reader see when the output deserves
    less weight. The band is the narrowest symmetric one (``d`` on a 0.01 grid up to 0.5)
    whose outside cases reach ``target_accuracy``, but it may never hold more than
    ``max_fraction`` of the cases: a band that flags most images would make the model
    useless. If no width meets the target within that limit, the widest allowed is used.

    Accuracy here is positive-versus-rest: ``p_positive >= threshold`` against
    ``is_positive``.

    Args:
        p_positive: (N,) calibrated probability of the positive class, in [0, 1].
        is_positive: (N,) bool truth.
        threshold: the decision threshold from :func:`choose_threshold`, in [0, 1].
        target_accuracy: wanted accuracy of the cases outside the band, in (0, 1].
        max_fraction: largest allowed fraction of cases inside the band, in [0, 1].
        weights: (N,) case weights of the accuracy and the fraction (default: equal).

    Returns:
        ``(lo, hi)`` clipped to [0, 1]; a case is indeterminate when ``lo <= p < hi``.
        ``d = 0`` gives ``(t, t)``, an empty band.

    Raises:
        ValueError: if inputs are invalid or either class is absent.
    """
    p, t = _check_binary(p_positive, is_positive)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    if not 0.0 < target_accuracy <= 1.0:
        raise ValueError(f"target_accuracy must be in (0, 1], got {target_accuracy}")
    if not 0.0 <= max_fraction <= 1.0:
        raise ValueError(f"max_fraction must be in [0, 1], got {max_fraction}")

    w = _check_weights(weights, p.size)
    correct = (p >= threshold) == t
    # (D, N) membership of each case in each candidate band.
    inside = (p[None, :] >= threshold - _BAND_GRID[:, None]) & (p[None, :] < threshold + _BAND_GRID[:, None])
    fraction = inside @ w / w.sum()
    n_outside = (~inside) @ w
    n_correct_outside = (correct[None, :] & ~inside) @ w
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(n_outside > 0, n_correct_outside / np.maximum(n_outside, 1), np.nan)

    allowed = fraction <= max_fraction  # always True for d = 0
    meets = allowed & (accuracy >= target_accuracy)
    half_width = _BAND_GRID[np.flatnonzero(meets)[0]] if meets.any() else _BAND_GRID[np.flatnonzero(allowed)[-1]]
    return float(max(0.0, threshold - half_width)), float(min(1.0, threshold + half_width))


def band_summary(
    probs: np.ndarray, y: np.ndarray, positive_index: int, threshold: float, band: tuple[float, float],
    weights: np.ndarray | None = None, indeterminate: np.ndarray | None = None,
) -> dict:
    """Summarise how the indeterminate band behaves on a labelled set.

    Args:
        probs: (N, K) calibrated probabilities.
        y: (N,) integer true class indices.
        positive_index: column of the positive class.
        threshold: decision threshold.
        band: ``(lo, hi)`` indeterminate band.
        weights: (N,) case weights of the share and the accuracy (default: equal).
        indeterminate: (N,) flags that replace the band's (``OperatingPoint.decide`` with conformal sets).

    Returns:
        ``{"fraction": float, "accuracy_outside_band": float | None, "n_outside_band": int}``:
        the (weighted) share of cases flagged, the K-class accuracy of the rest (``None`` when
        every case is flagged) and how many images the rest are. Plain Python types, ready for JSON.

    Raises:
        ValueError: if inputs are invalid.
    """
    pred, in_band = decide(probs, positive_index, threshold, band)
    indeterminate = in_band if indeterminate is None else np.asarray(indeterminate, bool)
    labels = _check_labels(y, pred.size, np.asarray(probs).shape[1])
    w = _check_weights(weights, pred.size)
    outside = ~indeterminate
    n_outside = int(outside.sum())
    accuracy = float(np.average(pred[outside] == labels[outside], weights=w[outside])) if n_outside else None
    return {
        "fraction": float(np.average(indeterminate, weights=w)),
        "accuracy_outside_band": accuracy,
        "n_outside_band": n_outside,
    }
