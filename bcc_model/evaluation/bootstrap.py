"""The cluster bootstrap: resample whole groups (patients), not images.

Images from one patient are correlated: they share stain, scanner, anatomy and disease. An
image-level bootstrap treats them as independent and gives intervals that are far too narrow
when a test split has few patients. Here the bootstrap resamples whole groups (patients) with
replacement (the cluster bootstrap; Field & Welsh 2007), so the intervals reflect how much
the figures would move with a different set of patients.

Resampling groups with replacement is the same as weighting each group by the number of
times it was drawn, and every metric below is a function of that weighted sample. So each
resample is a row of group counts, the per-group sufficient statistics (confusion counts,
calibration-bin sums, squared errors) are summed by one matrix product, and ROC AUC is a
weighted Mann-Whitney statistic over the pre-sorted scores. The point estimate is the same
code with every count equal to one, so point and interval can never disagree in definition.

References:
    Field & Welsh (2007). Bootstrapping clustered data. JRSS B 69(3):369-390.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["Sample", "prepare_sample", "weighted_metrics", "weighted_auc", "ratio", "bootstrap", "group_bootstrap_mean", "estimate_entry",
           "json_float"]

_CHUNK_ELEMENTS = 1 << 22
"""Resamples are processed in chunks of at most this many (resample x image) weights."""


@dataclass(frozen=True)
class Sample:
    """Per-image quantities that every resample reuses.

    Attributes:
        group_index: (N,) group of each image, in [0, G).
        group_stats: (G, K*K + 3*B + 1) per-group sums of the sufficient statistics:
            confusion counts (row-major, true x predicted), then per calibration bin the image
            count, the sum of p_positive and the number of positives, then the squared error.
        rank_order: (N,) image indices sorting p_positive ascending.
        tie_starts: start of each run of equal scores within ``rank_order``.
        is_positive_sorted: (N,) truth in ``rank_order``.
        n_classes: K.
        n_bins: B.
        positive_index: column of the positive class.
        case_weights: (N,) weight of each image in every sum (``datasets.weights.prevalence_weights``;
            all 1 for plain counts). The group bootstrap multiplies them by the draw counts.
    """

    group_index: np.ndarray
    group_stats: np.ndarray
    rank_order: np.ndarray
    tie_starts: np.ndarray
    is_positive_sorted: np.ndarray
    n_classes: int
    n_bins: int
    positive_index: int
    case_weights: np.ndarray


def _bin_index(p: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bin ``[k/B, (k+1)/B)`` of each probability; ``1.0`` falls in the last bin.

    ``p * B`` is rounded to 9 decimals first so that a value on an edge up to float error
    (``0.3 * 10 = 3.0000000000000004``, ``(15/22) * 22 = 14.999999999999998``) lands in the bin
    it starts, whatever ``B``.
    """
    return np.clip(np.floor(np.round(p * n_bins, 9)).astype(np.int64), 0, n_bins - 1)


def prepare_sample(probs: np.ndarray, y: np.ndarray, pred: np.ndarray, group_index: np.ndarray,
                   positive_index: int, n_bins: int, weights: np.ndarray | None = None) -> Sample:
    """Build the per-image features once and sum them by group (``group_index`` covers 0..G-1).

    ``weights`` (N,) makes every count a weighted count (each patient's real tissue mix, each
    patient the same total); ``None`` counts every image once.
    """
    n, n_classes = probs.shape
    case_weights = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if case_weights.shape != (n,) or not np.all(np.isfinite(case_weights)) or case_weights.min() < 0:
        raise ValueError(f"weights must be ({n},) finite and non-negative")
    n_groups = int(group_index.max()) + 1
    p_pos = probs[:, positive_index]
    is_pos = y == positive_index
    features = np.zeros((n, n_classes * n_classes + 3 * n_bins + 1))
    rows = np.arange(n)
    features[rows, y * n_classes + pred] = 1.0
    offset = n_classes * n_classes
    bins = _bin_index(p_pos, n_bins)
    features[rows, offset + bins] = 1.0
    features[rows, offset + n_bins + bins] = p_pos
    features[rows, offset + 2 * n_bins + bins] = is_pos
    features[:, -1] = (p_pos - is_pos) ** 2
    features *= case_weights[:, None]
    group_stats = np.zeros((n_groups, features.shape[1]))
    np.add.at(group_stats, group_index, features)

    order = np.argsort(p_pos, kind="stable")
    sorted_p = p_pos[order]
    tie_starts = np.flatnonzero(np.r_[True, sorted_p[1:] != sorted_p[:-1]])
    return Sample(group_index, group_stats, order, tie_starts, is_pos[order], n_classes, n_bins, positive_index,
                  case_weights)


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with NaN where ``den == 0`` (the metric is undefined there)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def weighted_auc(sample: Sample, weights: np.ndarray) -> np.ndarray:
    """ROC AUC for each row of image weights: P(score_pos > score_neg) + 0.5 P(tie).

    Args:
        sample: prepared sample.
        weights: (R, N) non-negative weight of each image in each resample.

    Returns:
        (R,) AUC; NaN where a resample has no positives or no negatives.
    """
    w = weights[:, sample.rank_order] * sample.case_weights[sample.rank_order]
    pos = np.add.reduceat(w * sample.is_positive_sorted, sample.tie_starts, axis=1)
    neg = np.add.reduceat(w * ~sample.is_positive_sorted, sample.tie_starts, axis=1)
    neg_below = np.cumsum(neg, axis=1) - neg
    concordant = (pos * (neg_below + 0.5 * neg)).sum(axis=1)
    return ratio(concordant, pos.sum(axis=1) * neg.sum(axis=1))


def weighted_metrics(sample: Sample, group_counts: np.ndarray) -> dict[str, np.ndarray]:
    """All resampled metrics for rows of group counts.

    Args:
        sample: prepared sample.
        group_counts: (R, G) how many times each group is drawn in each resample.

    Returns:
        Metric name -> (R,) values for the headline metrics, and (R, K) values for
        ``precision``, ``recall`` and ``class_f1``. NaN marks a resample where the metric is
        undefined (e.g. no positives for sensitivity); such resamples are skipped.
    """
    k, b, pi = sample.n_classes, sample.n_bins, sample.positive_index
    stats = group_counts @ sample.group_stats
    cm = stats[:, : k * k].reshape(-1, k, k)
    tp = np.diagonal(cm, axis1=1, axis2=2)
    support = cm.sum(axis=2)
    predicted = cm.sum(axis=1)
    n = support.sum(axis=1)
    recall = ratio(tp, support)
    present = support > 0
    negatives = n - support[:, pi]
    false_pos = predicted[:, pi] - tp[:, pi]
    bins = stats[:, k * k : k * k + 3 * b].reshape(-1, 3, b)
    class_f1 = np.where(present, ratio(2 * tp, support + predicted), np.nan)
    return {
        "accuracy": ratio(tp.sum(axis=1), n),
        # sklearn's balanced accuracy: mean recall over the classes present in y_true.
        "balanced_accuracy": ratio(np.where(present, recall, 0.0).sum(axis=1), present.sum(axis=1)),
        "roc_auc": weighted_auc(sample, group_counts[:, sample.group_index]),
        "sensitivity": recall[:, pi],
        "specificity": ratio(negatives - false_pos, negatives),
        "f1": class_f1[:, pi],
        "ece": ratio(np.abs(bins[:, 2] - bins[:, 1]).sum(axis=1), n),
        "brier": ratio(stats[:, -1], n),
        "precision": ratio(tp, predicted),
        "recall": recall,
        "class_f1": class_f1,
    }


def _group_count_chunks(n_groups: int, n_items: int, n_resamples: int, seed: int):
    """Yield (R, G) float64 arrays of how often each group is drawn, ``n_resamples`` rows in all."""
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_ELEMENTS // max(n_items, n_groups))
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        draws = rng.integers(0, n_groups, size=(size, n_groups))
        flat = (draws + n_groups * np.arange(size)[:, None]).ravel()
        yield np.bincount(flat, minlength=size * n_groups).reshape(size, n_groups).astype(np.float64)


def bootstrap(sample: Sample, n_resamples: int, seed: int) -> dict[str, np.ndarray]:
    """Resampled metric values, stacked over ``n_resamples`` group-level resamples."""
    n_groups = sample.group_stats.shape[0]
    parts = [weighted_metrics(sample, counts)
             for counts in _group_count_chunks(n_groups, sample.group_index.size, n_resamples, seed)]
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def group_bootstrap_mean(values: np.ndarray, groups: Sequence[str], *, n_resamples: int = 1000,
                         seed: int = 0) -> dict:
    """Mean of per-image values with a 95% interval from resampling whole groups.

    Each resample draws the groups with replacement and takes the mean over all images of the
    drawn groups (a ratio of sums, so large groups weigh more, as in the point estimate).

    Args:
        values: (N,) finite per-image values, e.g. 1.0/0.0 hits of the pointing game.
        groups: (N,) group (patient) of each image.
        n_resamples: bootstrap resamples (0 disables the interval).
        seed: seed of ``np.random.default_rng``.

    Returns:
        ``{"value", "ci95", "n"}``; ``value`` is ``None`` when there are no images and ``ci95`` is
        ``[null, null]`` with fewer than two groups.
    """
    arr = np.asarray(values, dtype=np.float64)
    group_names = np.asarray([str(g) for g in groups])
    if arr.ndim != 1 or group_names.shape != arr.shape or not np.all(np.isfinite(arr)):
        raise ValueError(f"values must be finite (N,) with one group each, got {arr.shape} and {group_names.shape}")
    if arr.size == 0:
        return {"value": None, "ci95": [None, None], "n": 0}
    unique, index = np.unique(group_names, return_inverse=True)
    sums = np.bincount(index, weights=arr, minlength=unique.size)
    counts = np.bincount(index, minlength=unique.size).astype(np.float64)
    resampled = None
    if unique.size >= 2 and n_resamples > 0:
        resampled = np.concatenate([ratio(draws @ sums, draws @ counts)
                                    for draws in _group_count_chunks(unique.size, arr.size, n_resamples, seed)])
    return {**estimate_entry(float(arr.mean()), resampled), "n": int(arr.size)}


def json_float(value: float) -> float | None:
    """Plain float for JSON, ``None`` for NaN."""
    value = float(value)
    return None if math.isnan(value) else value


def estimate_entry(point: float, resampled: np.ndarray | None) -> dict:
    """``{"value", "ci95"}`` with percentile bounds over the resamples where it is defined."""
    ci: list[float | None] = [None, None]
    if resampled is not None:
        valid = resampled[~np.isnan(resampled)]
        if valid.size:
            ci = [float(v) for v in np.percentile(valid, [2.5, 97.5])]
    return {"value": json_float(point), "ci95": ci}


