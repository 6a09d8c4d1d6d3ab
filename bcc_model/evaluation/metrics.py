"""Test-set metrics with confidence intervals that respect patients.

The intervals come from the patient-level bootstrap of ``bootstrap.py``: whole groups
(patients) are resampled, so they reflect how much the figures would move with other patients.

References:
    Naeini, Cooper & Hauskrecht (2015). Obtaining Well Calibrated Probabilities Using
        Bayesian Binning. AAAI. (expected calibration error)
    Guo et al. (2017). On Calibration of Modern Neural Networks. ICML.
    Brier (1950). Verification of forecasts expressed in terms of probability.
        Monthly Weather Review 78(1):1-3.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from bcc_model.evaluation.bootstrap import (Sample, bootstrap, estimate_entry, json_float, prepare_sample, ratio,
                                            weighted_auc, weighted_metrics)
from bcc_model.models.conformal import level_text
from bcc_model.models.decision import OperatingPoint
from bcc_model.evaluation.calibration import band_summary

__all__ = ["HEADLINE_METRICS", "compute_metrics", "format_metrics_table"]

HEADLINE_METRICS = (
    "accuracy", "balanced_accuracy", "roc_auc", "sensitivity", "specificity", "f1", "ece", "brier",
)
"""Keys of ``metrics["headline"]``, in display order."""

_MAX_CURVE_POINTS = 200
"""Curves are thinned to about this many points so metrics.json stays small."""

def _downsample(n: int) -> np.ndarray:
    """At most ~``_MAX_CURVE_POINTS`` evenly spaced indices into ``n`` points, ends kept."""
    if n <= _MAX_CURVE_POINTS:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, _MAX_CURVE_POINTS)).astype(int))


def _curves(probs: np.ndarray, y: np.ndarray, labels: Sequence[str], positive_index: int) -> tuple[dict, dict]:
    """One-vs-rest ROC and precision-recall curves (positive label only when K == 2)."""
    indices = [positive_index] if len(labels) == 2 else range(len(labels))
    roc, pr = {}, {}
    for k in indices:
        truth, score = y == k, probs[:, k]
        if truth.all() or not truth.any():
            roc[labels[k]] = {"fpr": [], "tpr": [], "auc": None}
            pr[labels[k]] = {"precision": [], "recall": [], "average_precision": None}
            continue
        fpr, tpr, _ = roc_curve(truth, score)
        keep = _downsample(fpr.size)
        roc[labels[k]] = {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist(),
                          "auc": float(roc_auc_score(truth, score))}
        precision, recall, _ = precision_recall_curve(truth, score)
        keep = _downsample(precision.size)
        pr[labels[k]] = {"precision": precision[keep].tolist(), "recall": recall[keep].tolist(),
                         "average_precision": float(average_precision_score(truth, score))}
    return roc, pr


def _calibration_block(sample: Sample, label: str, ece: float | None) -> dict:
    """Reliability-diagram bins for the positive label (weighted counts when the sample has case weights)."""
    k2, b = sample.n_classes ** 2, sample.n_bins
    count, conf, pos = sample.group_stats.sum(axis=0)[k2 : k2 + 3 * b].reshape(3, b)
    return {
        "label": label,
        "bin_edges": np.linspace(0.0, 1.0, b + 1).tolist(),
        "mean_predicted": [json_float(v) for v in ratio(conf, count)],
        "fraction_positive": [json_float(v) for v in ratio(pos, count)],
        "count": [int(c) if float(c).is_integer() else round(float(c), 2) for c in count],
        "ece": ece,
    }


def _binary_task(probs: np.ndarray, y: np.ndarray, group_index: np.ndarray, labels: Sequence[str],
                 positives: Sequence[str], n_resamples: int, seed: int) -> dict:
    """ROC AUC of ``positives`` versus the other labels, scored by their summed probability.

    The same group bootstrap as the headline figures; e.g. abnormal-vs-normal uses
    ``p(benign) + p(malignant) = 1 - p(normal)``.
    """
    unknown = [label for label in positives if label not in labels]
    if unknown or not positives:
        raise ValueError(f"binary task labels {list(positives)} must be a non-empty subset of {list(labels)}")
    columns = [list(labels).index(label) for label in positives]
    score = np.clip(probs[:, columns].sum(axis=1), 0.0, 1.0)
    is_positive = np.isin(y, columns).astype(int)
    sample = prepare_sample(np.stack([1.0 - score, score], axis=1), is_positive, is_positive, group_index, 1, 1)
    point = weighted_auc(sample, np.ones((1, y.size)))[0]
    n_groups = int(group_index.max()) + 1
    boot = bootstrap(sample, n_resamples, seed)["roc_auc"] if n_groups >= 2 and n_resamples > 0 else None
    return {"positive_labels": list(positives), "roc_auc": estimate_entry(point, boot)}


def _check_inputs(probs: np.ndarray, y: np.ndarray, groups: Sequence[str], labels: Sequence[str],
                  positive_index: int, n_resamples: int, n_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate shapes and ranges; return float probs, int y and str groups."""
    arr = np.asarray(probs, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] < 2:
        raise ValueError(f"probs must have shape (N, K) with N >= 1 and K >= 2, got {arr.shape}")
    n, k = arr.shape
    if len(labels) != k:
        raise ValueError(f"labels has {len(labels)} names but probs has {k} columns")
    if not 0 <= positive_index < k:
        raise ValueError(f"positive_index must be in [0, {k}), got {positive_index}")
    truth = np.asarray(y)
    if truth.shape != (n,) or not np.issubdtype(truth.dtype, np.integer) or truth.min() < 0 or truth.max() >= k:
        raise ValueError(f"y must be ({n},) integer class indices in [0, {k})")
    group_names = np.asarray([str(g) for g in groups])
    if group_names.shape != (n,):
        raise ValueError(f"groups must have one entry per image ({n}), got {group_names.shape[0]}")
    if n_resamples < 0 or n_bins < 1:
        raise ValueError(f"need n_resamples >= 0 and n_bins >= 1, got {n_resamples} and {n_bins}")
    return arr, truth, group_names


def compute_metrics(
    probs: np.ndarray,
    y: np.ndarray,
    groups: Sequence[str],
    point: OperatingPoint,
    *,
    split: str = "test",
    n_resamples: int = 1000,
    seed: int = 0,
    n_bins: int = 10,
    binary_tasks: Mapping[str, Sequence[str]] | None = None,
    weights: np.ndarray | None = None,
    weighting: str | None = None,
) -> dict:
    """Evaluate calibrated predictions; the result is metrics.json (docs/SCHEMAS.md).

    Predictions follow :func:`bcc_model.evaluation.calibration.decide`; indeterminate cases keep their
    label and count in every metric, and the ``indeterminate`` block reports them apart.
    Sensitivity, specificity, F1, ROC AUC, ECE and Brier score treat the positive label
    against all the others. ECE uses ``n_bins`` equal-width bins of p_positive
    (Naeini et al. 2015; Guo et al. 2017).

    Each headline and per-class figure carries a 95% interval: the 2.5th and 97.5th
    percentiles over ``n_resamples`` bootstrap resamples of whole groups. A resample in
    which a metric is undefined (no positives for sensitivity, no negatives for specificity,
    neither for ROC AUC, no predictions of a class for its precision) is skipped for that
    metric only. With fewer than two groups there is nothing to resample and every ``ci95``
    is ``[null, null]``; so it is when a metric is undefined in every resample.

    Args:
        probs: (N, K) calibrated probabilities in [0, 1], columns in ``labels`` order.
        y: (N,) integer true class indices.
        groups: (N,) group (patient) identifier of each image.
        point: the K class names, the positive class's column, the decision threshold and
            indeterminate band chosen on validation data, and the temperature already applied
            to ``probs`` (recorded only).
        split: name of the evaluated split.
        n_resamples: number of bootstrap resamples (0 disables the intervals).
        seed: seed of ``np.random.default_rng`` for the resampling.
        n_bins: number of calibration bins.
        binary_tasks: optional task name -> labels counted as positive, each reported as a
            ``binary_tasks`` entry with the ROC AUC of their summed probability against the
            other labels (same bootstrap), e.g. ``{"abnormal_vs_normal": ["benign", "malignant"]}``.
        weights: (N,) case weights (``datasets.weights.prevalence_weights``): every headline, per-class,
            calibration and per-group figure is then weighted, and ``pooled`` gives the headline
            with every image counted once (comparable with patch-level literature figures). The
            confusion matrix stays in images.
        weighting: what ``weights`` mean, in words (recorded as ``weighting``).

    Returns:
        The metrics.json dictionary: plain Python types, NaN written as ``None``.

    Raises:
        ValueError: if shapes, labels or settings are inconsistent.
    """
    labels, positive_index, threshold, band, temperature = (point.labels, point.positive_index, point.threshold,
                                                            point.band, point.temperature)
    arr, truth, group_names = _check_inputs(probs, y, groups, labels, positive_index, n_resamples, n_bins)
    labels = [str(label) for label in labels]
    pred, undecided = point.decide(arr)
    unique_groups, group_index = np.unique(group_names, return_inverse=True)
    n_groups = unique_groups.size
    sample = prepare_sample(arr, truth, pred, group_index, positive_index, n_bins, weights)
    estimate = _estimator(sample, n_groups, n_resamples, seed)
    k2 = len(labels) ** 2
    cm = np.bincount(truth * len(labels) + pred, minlength=k2).reshape(len(labels), len(labels))
    group_cm = sample.group_stats[:, :k2].reshape(n_groups, len(labels), len(labels))
    group_n = np.bincount(group_index, minlength=n_groups)
    group_acc = np.trace(group_cm, axis1=1, axis2=2) / group_cm.sum(axis=(1, 2))
    roc, pr = _curves(arr, truth, labels, positive_index)
    headline = {name: estimate(name) for name in HEADLINE_METRICS}
    extra = {} if not binary_tasks else {"binary_tasks": {
        name: _binary_task(arr, truth, group_index, labels, positives, n_resamples, seed)
        for name, positives in binary_tasks.items()}}
    if weights is not None:
        pooled = _estimator(prepare_sample(arr, truth, pred, group_index, positive_index, n_bins), n_groups,
                            n_resamples, seed)
        extra |= {"weighting": weighting or "case weights", "pooled": {name: pooled(name) for name in HEADLINE_METRICS}}
    return {
        "split": split,
        "n_images": int(truth.size),
        "n_groups": int(n_groups),
        "labels": labels,
        "positive_label": labels[positive_index],
        "threshold": float(threshold),
        "indeterminate_band": [float(band[0]), float(band[1])],
        "temperature": float(temperature),
        "headline": headline,
        "per_class": {
            label: {
                "precision": estimate("precision", k),
                "recall": estimate("recall", k),
                "f1": estimate("class_f1", k),
                "support": int(cm[k].sum()),
            }
            for k, label in enumerate(labels)
        },
        "confusion_matrix": {"labels": labels, "matrix": cm.tolist()},
        "roc_curves": roc,
        "pr_curves": pr,
        "calibration": _calibration_block(sample, labels[positive_index], headline["ece"]["value"]),
        "indeterminate": {**band_summary(arr, truth, positive_index, threshold, band, weights,
                                         None if point.conformal is None else undecided),
                          **({} if point.conformal is None else {"rule": f"conformal set at {level_text(point.level)} "
                                                                          "is not exactly the predicted class"})},
        "per_group": {
            str(name): {"n": int(count), "accuracy": float(acc)}
            for name, count, acc in zip(unique_groups, group_n, group_acc)
        },
        "bootstrap": {"n_resamples": int(n_resamples), "unit": "group", "seed": int(seed)},
        **extra,
    }


def _estimator(sample, n_groups: int, n_resamples: int, seed: int):
    """``estimate(name, column=None)`` -> ``{"value", "ci95"}`` of one metric of ``sample``, group bootstrap."""
    point = {name: values[0] for name, values in weighted_metrics(sample, np.ones((1, n_groups))).items()}
    boot = bootstrap(sample, n_resamples, seed) if n_groups >= 2 and n_resamples > 0 else None

    def estimate(name: str, column: int | None = None) -> dict:
        resampled = None if boot is None else (boot[name] if column is None else boot[name][:, column])
        return estimate_entry(point[name] if column is None else point[name][column], resampled)

    return estimate


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def format_metrics_table(metrics: dict) -> str:
    """Plain-text summary of a metrics.json dictionary for the command line.

    Args:
        metrics: the output of :func:`compute_metrics` (or a loaded metrics.json).

    Returns:
        Lines of headline figures as ``value [lo, hi]``, the confusion matrix (rows = true
        class, columns = predicted) and the indeterminate share.
    """
    boot = metrics.get("bootstrap", {})
    lo, hi = metrics.get("indeterminate_band") or (None, None)
    lines = [
        f"Split {metrics.get('split')}: {metrics.get('n_images')} images, {metrics.get('n_groups')} groups; "
        f"threshold {_fmt(metrics.get('threshold'))}, indeterminate band [{_fmt(lo)}, {_fmt(hi)}), "
        f"temperature {_fmt(metrics.get('temperature'))}",
        f"95% CI: {boot.get('n_resamples')} bootstrap resamples by {boot.get('unit')} (seed {boot.get('seed')})",
        "",
        f"{'metric':<20}value [95% CI]",
    ]
    for name, entry in metrics.get("headline", {}).items():
        lo, hi = entry.get("ci95", [None, None])
        lines.append(f"{name:<20}{_fmt(entry.get('value'))} [{_fmt(lo)}, {_fmt(hi)}]")

    confusion = metrics.get("confusion_matrix", {})
    names = [str(label) for label in confusion.get("labels", [])]
    width = max([len(name) for name in names] + [8]) + 2
    lines += ["", "Confusion matrix (rows = true, columns = predicted)",
              " " * width + "".join(f"{name:>{width}}" for name in names)]
    for name, row in zip(names, confusion.get("matrix", [])):
        lines.append(f"{name:<{width}}" + "".join(f"{int(v):>{width}}" for v in row))

    for name, task in (metrics.get("binary_tasks") or {}).items():
        lo, hi = task.get("roc_auc", {}).get("ci95", [None, None])
        lines += ["", f"{name} ({' + '.join(task.get('positive_labels', []))} vs rest): ROC AUC "
                      f"{_fmt(task.get('roc_auc', {}).get('value'))} [{_fmt(lo)}, {_fmt(hi)}]"]
    mapping = metrics.get("label_mapping")
    if mapping:
        lines += ["", "Scored as " + ", ".join(f"'{k}' = '{v}'" for k, v in mapping.items())
                  + " (the folder names no other class)"]
    baseline = metrics.get("histogram_baseline")
    if baseline:
        auc = baseline.get("roc_auc") or {}
        lo, hi = auc.get("ci95", [None, None])
        lines += ["", f"Histogram-only baseline ROC AUC {_fmt(auc.get('value'))} [{_fmt(lo)}, {_fmt(hi)}]: "
                      f"{baseline.get('method')}. A model that does not clearly beat it may be reading the scanner."]
    for localisation in (metrics.get("localisation"), metrics.get("lesion_map_localisation")):
        if not localisation:
            continue
        lines += ["", f"Localisation ({localisation.get('method')}, {localisation.get('target', 'true class')}; "
                      f"{localisation.get('n_excluded')} image(s) without lesion geometry excluded):"]
        for name in ("pointing_game", "energy_inside"):
            if name in localisation:
                entry = localisation[name]
                lo, hi = entry.get("ci95", [None, None])
                lines.append(f"  {name:<18}{_fmt(entry.get('value'))} [{_fmt(lo)}, {_fmt(hi)}] (n = {entry.get('n')})")

    if metrics.get("weighting"):
        pooled = metrics.get("pooled") or {}
        lines += ["", f"Weighted: {metrics['weighting']}. Every image counted once (pooled): "
                      + ", ".join(f"{name} {_fmt((pooled.get(name) or {}).get('value'))}"
                                  for name in ("balanced_accuracy", "roc_auc", "f1", "ece"))]
    indeterminate = metrics.get("indeterminate")
    if indeterminate:
        fraction = indeterminate.get("fraction")
        share = "n/a" if fraction is None else f"{100 * fraction:.1f}%"
        lines += ["", f"Indeterminate: {share} of images; accuracy outside band "
                      f"{_fmt(indeterminate.get('accuracy_outside_band'))} (n = {indeterminate.get('n_outside_band')})"]
    return "\n".join(lines)
