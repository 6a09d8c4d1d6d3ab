"""Why the cytology model said what it said: integrated gradients over the 30 raw features.

References:
    Sundararajan, Taly & Yan (2017). Axiomatic Attribution for Deep Networks. ICML.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bcc_model.modalities.cytology.cases import FEATURE_NAMES, cases_matrix

if TYPE_CHECKING:
    from bcc_model.models.bundle import Bundle

__all__ = ["attributions", "case_attributions"]

_IG_STEPS = 64
_IG_MAX_STEPS = 1024
_IG_TOLERANCE = 1e-3
_IG_ROWS_PER_CALL = 16_384
_PROB_FLOOR = 1e-12  # as in calibration.py: log(0) would give infinite logits


def _target_probability(model, x, target_index: int, temperature: float):
    """Calibrated probability of class ``target_index`` as a differentiable TF tensor (N,)."""
    import tensorflow as tf

    probs = model(x, training=False)
    logits = tf.math.log(tf.clip_by_value(probs, _PROB_FLOOR, 1.0)) / temperature
    return tf.nn.softmax(logits, axis=-1)[:, target_index]


def _integrate(model, x: np.ndarray, baseline: np.ndarray, target_index: int, temperature: float,
               steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Integrated gradients of a chunk by the trapezoidal rule; returns (attributions, gap)."""
    import tensorflow as tf

    alphas = np.linspace(0.0, 1.0, steps + 1, dtype=np.float32)
    weights = np.full(steps + 1, 1.0 / steps)
    weights[[0, -1]] /= 2.0
    path = baseline[None, None, :] + alphas[:, None, None] * (x - baseline)[None, :, :]  # (S+1, N, F)
    flat = tf.constant(path.reshape(-1, x.shape[1]))
    with tf.GradientTape() as tape:
        tape.watch(flat)
        p = _target_probability(model, flat, target_index, temperature)
    grads = tape.gradient(p, flat).numpy().astype(np.float64).reshape(path.shape)
    attribution = (x - baseline).astype(np.float64) * np.tensordot(weights, grads, axes=1)
    p = p.numpy().astype(np.float64).reshape(steps + 1, -1)
    gap = np.abs(attribution.sum(axis=1) - (p[-1] - p[0]))
    return attribution, gap


def attributions(model, x: np.ndarray, baseline: np.ndarray, *, target_index: int, temperature: float = 1.0,
                 steps: int = _IG_STEPS, tolerance: float = _IG_TOLERANCE) -> np.ndarray:
    """Per-feature integrated gradients of a class probability with respect to the raw features.

    Integrated gradients (Sundararajan et al. 2017, eq. 1) average the gradient along the
    straight path from ``baseline`` to ``x`` and multiply by ``x - baseline``. They satisfy
    *completeness*: the attributions of a case sum to ``f(x) - f(baseline)``, so each value is
    the share of the change in probability owed to that feature. The integral is a trapezoidal
    sum; as the paper advises, completeness is checked and the number of steps doubled (up to
    1024) until every case's sum is within ``tolerance`` of the actual change.

    The baseline should be a plausible "uninformative" case; for WDBC the mean training case
    (``feature_ranges[name]["mean"]``) is used, because a zero vector (nuclei of area 0 px²)
    lies far outside the data. Values are then read as "how much this feature moves P(class)
    away from that of the average training case".

    Args:
        model: Keras model mapping float32 (N, F) raw features to (N, K) softmax probabilities.
        x: (N, F) or (F,) raw feature values.
        baseline: (F,) raw feature values of the reference case.
        target_index: column of the explained class (resolve it from the label name).
        temperature: the bundle's calibration temperature, so the attributed probability is the
            calibrated one the user sees (1 = raw softmax).
        steps: initial number of trapezoid intervals.
        tolerance: largest accepted completeness gap, in probability units.

    Returns:
        float64 (N, F) attributions in probability units (positive = towards the class).

    Raises:
        ValueError: shapes of ``x`` and ``baseline`` disagree.
    """
    cases = np.atleast_2d(np.asarray(x, dtype=np.float32))
    reference = np.asarray(baseline, dtype=np.float32)
    if cases.ndim != 2 or reference.shape != (cases.shape[1],):
        raise ValueError(f"x must be (N, F) and baseline (F,), got {cases.shape} and {reference.shape}")
    result = np.zeros(cases.shape, dtype=np.float64)
    n_steps = steps
    start = 0
    while start < len(cases):
        chunk = max(1, _IG_ROWS_PER_CALL // (n_steps + 1))
        part = cases[start:start + chunk]
        attribution, gap = _integrate(model, part, reference, target_index, temperature, n_steps)
        if gap.max() > tolerance and n_steps < _IG_MAX_STEPS:
            n_steps *= 2
            continue
        result[start:start + len(part)] = attribution
        start += len(part)
    return result


def case_attributions(bundle: Bundle, cases: pd.DataFrame) -> np.ndarray:
    """Integrated gradients of the calibrated positive-class probability for each case.

    Args:
        bundle: a loaded tabular bundle (its model.json holds ``feature_ranges``).
        cases: frame with the 30 feature columns.

    Returns:
        float64 (N, 30) attributions, columns in :data:`FEATURE_NAMES` order, baseline = the
        mean training case (see :func:`attributions`).
    """
    ranges = bundle.info["feature_ranges"]
    baseline = np.array([ranges[name]["mean"] for name in FEATURE_NAMES], dtype=np.float32)
    return attributions(bundle.model, cases_matrix(cases), baseline, target_index=bundle.spec.positive_index,
                        temperature=bundle.temperature)
