"""Tests for test-set metrics and the group (patient) bootstrap."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    brier_score_loss,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from bcc_model.models.decision import OperatingPoint
from bcc_model.evaluation.metrics import HEADLINE_METRICS, compute_metrics, format_metrics_table

LABELS = ["benign", "malignant"]
TOP_LEVEL_KEYS = {
    "split", "n_images", "n_groups", "labels", "positive_label", "threshold", "indeterminate_band",
    "temperature", "headline", "per_class", "confusion_matrix", "roc_curves", "pr_curves", "calibration",
    "indeterminate", "per_group", "bootstrap",
}


def _binary(p_pos: np.ndarray) -> np.ndarray:
    return np.c_[1.0 - p_pos, p_pos]


def _random_binary(n: int = 600, n_groups: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noisy but informative scores, rounded to create ties, with mixed-class groups."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.clip(0.5 + 0.25 * (2 * y - 1) + rng.normal(0, 0.22, n), 0, 1).round(2)
    groups = np.array([f"p{g:02d}" for g in rng.integers(0, n_groups, n)])
    return _binary(p), y, groups


def _assert_plain(obj: object) -> None:
    """Only JSON-native Python types (numpy scalars subclassing float are refused too)."""
    if isinstance(obj, dict):
        assert all(type(k) is str for k in obj)
        for value in obj.values():
            _assert_plain(value)
    elif isinstance(obj, list):
        for value in obj:
            _assert_plain(value)
    else:
        assert obj is None or type(obj) in (str, int, float, bool), type(obj)


def test_perfect_predictions_score_one_with_tight_intervals() -> None:
    y = np.tile([0, 1], 50)
    groups = np.repeat([f"g{i}" for i in range(10)], 10)
    m = compute_metrics(_binary(y.astype(float)), y, groups, OperatingPoint(LABELS, 1, 0.5, (0.4, 0.6), 1.0), n_resamples=200)
    for name in ("accuracy", "balanced_accuracy", "roc_auc", "sensitivity", "specificity", "f1"):
        assert m["headline"][name] == {"value": 1.0, "ci95": [1.0, 1.0]}, name
    for name in ("ece", "brier"):
        assert m["headline"][name] == {"value": 0.0, "ci95": [0.0, 0.0]}, name
    assert m["confusion_matrix"]["matrix"] == [[50, 0], [0, 50]]
    assert m["indeterminate"] == {"fraction": 0.0, "accuracy_outside_band": 1.0, "n_outside_band": 100}


def test_hand_computed_binary_example() -> None:
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.3, 0.6, 0.2, 0.1, 0.1, 0.4, 0.05])
    groups = list("aabbccddee")
    m = compute_metrics(_binary(p), y, groups, OperatingPoint(LABELS, 1, 0.5, (0.35, 0.65), 1.2), n_resamples=50)
    # Predicted: 1 1 1 0 | 1 0 0 0 0 0  ->  TP 3, FN 1, FP 1, TN 5.
    assert m["confusion_matrix"] == {"labels": LABELS, "matrix": [[5, 1], [1, 3]]}
    h = m["headline"]
    assert h["accuracy"]["value"] == pytest.approx(0.8)
    assert h["sensitivity"]["value"] == pytest.approx(0.75)
    assert h["specificity"]["value"] == pytest.approx(5 / 6)
    assert h["balanced_accuracy"]["value"] == pytest.approx((0.75 + 5 / 6) / 2)
    assert h["f1"]["value"] == pytest.approx(0.75)
    assert h["roc_auc"]["value"] == pytest.approx(22 / 24)
    assert h["brier"]["value"] == pytest.approx(np.mean((p - y) ** 2))
    # ECE, 10 bins: |positives - sum of p| per bin, summed, over N.
    gaps = {0: 0 - 0.05, 1: 0 - 0.2, 2: 0 - 0.2, 3: 1 - 0.3, 4: 0 - 0.4, 6: 0 - 0.6, 7: 1 - 0.7, 8: 1 - 0.8, 9: 1 - 0.9}
    assert h["ece"]["value"] == pytest.approx(sum(abs(g) for g in gaps.values()) / 10)
    assert m["calibration"]["count"] == [1, 2, 1, 1, 1, 0, 1, 1, 1, 1]
    assert m["calibration"]["mean_predicted"][5] is None
    assert m["per_class"]["malignant"]["precision"]["value"] == pytest.approx(0.75)
    assert m["per_class"]["benign"]["recall"]["value"] == pytest.approx(5 / 6)
    assert m["per_class"]["benign"]["support"] == 6 and m["per_class"]["malignant"]["support"] == 4
    assert m["per_group"]["a"] == {"n": 2, "accuracy": 1.0}
    assert m["per_group"]["b"] == {"n": 2, "accuracy": 0.5}
    # In [0.35, 0.65): 0.6 and 0.4; of the other 8, only the positive at 0.3 is wrong.
    assert m["indeterminate"] == {"fraction": 0.2, "accuracy_outside_band": 7 / 8, "n_outside_band": 8}
    assert m["threshold"] == 0.5 and m["indeterminate_band"] == [0.35, 0.65] and m["temperature"] == 1.2


def test_point_estimates_match_sklearn_three_classes() -> None:
    rng = np.random.default_rng(7)
    n = 500
    y = rng.integers(0, 3, n)
    logits = rng.normal(0, 1, (n, 3)) + 1.5 * np.eye(3)[y]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    probs = probs.round(2)
    probs /= probs.sum(axis=1, keepdims=True)
    groups = rng.integers(0, 15, n).astype(str)
    labels = ["normal", "benign", "malignant"]
    m = compute_metrics(probs, y, groups, OperatingPoint(labels, 2, 0.4, (0.3, 0.5), 1.0), n_resamples=20)
    pred = np.where(probs[:, 2] >= 0.4, 2, probs[:, :2].argmax(axis=1))
    h = m["headline"]
    assert h["accuracy"]["value"] == pytest.approx(accuracy_score(y, pred))
    assert h["balanced_accuracy"]["value"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert h["roc_auc"]["value"] == pytest.approx(roc_auc_score(y == 2, probs[:, 2]))
    assert h["f1"]["value"] == pytest.approx(f1_score(y == 2, pred == 2))
    assert h["sensitivity"]["value"] == pytest.approx(recall_score(y == 2, pred == 2))
    assert h["specificity"]["value"] == pytest.approx(recall_score(y != 2, pred != 2))
    assert h["brier"]["value"] == pytest.approx(brier_score_loss(y == 2, probs[:, 2]))
    for k, label in enumerate(labels):
        entry = m["per_class"][label]
        assert entry["precision"]["value"] == pytest.approx(precision_score(y, pred, labels=[k], average=None)[0])
        assert entry["recall"]["value"] == pytest.approx(recall_score(y, pred, labels=[k], average=None)[0])
        assert entry["f1"]["value"] == pytest.approx(f1_score(y, pred, labels=[k], average=None)[0])
    # K > 2: one-vs-rest curves for every label.
    assert set(m["roc_curves"]) == set(labels) == set(m["pr_curves"])
    for k, label in enumerate(labels):
        assert m["roc_curves"][label]["auc"] == pytest.approx(roc_auc_score(y == k, probs[:, k]))


def test_binary_curves_only_for_positive_label_and_thinned() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 3000)
    p = np.clip(0.5 + 0.2 * (2 * y - 1) + rng.normal(0, 0.2, 3000), 0, 1)
    m = compute_metrics(_binary(p), y, rng.integers(0, 8, 3000).astype(str), OperatingPoint(LABELS, 1, 0.5, (0.5, 0.5), 1.0),
                        n_resamples=10)
    assert list(m["roc_curves"]) == ["malignant"] and list(m["pr_curves"]) == ["malignant"]
    roc, pr = m["roc_curves"]["malignant"], m["pr_curves"]["malignant"]
    assert 100 < len(roc["fpr"]) <= 200 and len(roc["fpr"]) == len(roc["tpr"])
    assert roc["fpr"][0] == 0.0 and roc["fpr"][-1] == 1.0 and roc["tpr"][-1] == 1.0
    assert np.all(np.diff(roc["fpr"]) >= 0)
    assert len(pr["precision"]) <= 200 and pr["recall"][0] == 1.0 and pr["recall"][-1] == 0.0
    assert roc["auc"] == pytest.approx(m["headline"]["roc_auc"]["value"])
    assert 0.5 < pr["average_precision"] <= 1.0


def test_bootstrap_resamples_whole_groups() -> None:
    # 10 patients x 100 images; 8 patients entirely right, 2 entirely wrong.
    y = np.ones(1000, dtype=int)
    right = np.repeat([1.0] * 8 + [0.0] * 2, 100)
    patients = np.repeat([f"p{i}" for i in range(10)], 100)
    by_patient = compute_metrics(_binary(right), y, patients, OperatingPoint(LABELS, 1, 0.5, (0.5, 0.5), 1.0))
    by_image = compute_metrics(_binary(right), y, np.arange(1000).astype(str), OperatingPoint(LABELS, 1, 0.5, (0.5, 0.5), 1.0))
    lo_p, hi_p = by_patient["headline"]["accuracy"]["ci95"]
    lo_i, hi_i = by_image["headline"]["accuracy"]["ci95"]
    # A patient-level resample can only hold whole patients: accuracy is a multiple of 0.1.
    assert lo_p * 10 == pytest.approx(round(lo_p * 10)) and hi_p * 10 == pytest.approx(round(hi_p * 10))
    assert hi_p - lo_p > 3 * (hi_i - lo_i)
    assert lo_p <= 0.6 and hi_p == 1.0
    assert by_patient["bootstrap"] == {"n_resamples": 1000, "unit": "group", "seed": 0}


def test_bootstrap_matches_explicit_group_resampling() -> None:
    """Reference: draw group indices, concatenate their images, recompute with sklearn."""
    probs, y, groups = _random_binary(n=300, n_groups=8, seed=5)
    m = compute_metrics(probs, y, groups, OperatingPoint(LABELS, 1, 0.5, (0.45, 0.55), 1.0), n_resamples=200, seed=11)
    names = np.unique(groups)
    members = [np.flatnonzero(groups == g) for g in names]
    draws = np.random.default_rng(11).integers(0, names.size, size=(200, names.size))
    acc, auc, sens = [], [], []
    for row in draws:
        idx = np.concatenate([members[g] for g in row])
        pred = (probs[idx, 1] >= 0.5).astype(int)
        acc.append(accuracy_score(y[idx], pred))
        auc.append(roc_auc_score(y[idx], probs[idx, 1]))
        sens.append(recall_score(y[idx], pred))
    for name, values in (("accuracy", acc), ("roc_auc", auc), ("sensitivity", sens)):
        np.testing.assert_allclose(m["headline"][name]["ci95"], np.percentile(values, [2.5, 97.5]), rtol=1e-12)


def test_intervals_contain_estimate_and_are_deterministic() -> None:
    probs, y, groups = _random_binary()
    args = (probs, y, groups, OperatingPoint(LABELS, 1, 0.5, (0.4, 0.6), 1.1))
    first = compute_metrics(*args, n_resamples=300, seed=3)
    assert first == compute_metrics(*args, n_resamples=300, seed=3)
    assert first["headline"] != compute_metrics(*args, n_resamples=300, seed=4)["headline"]
    for name in HEADLINE_METRICS:
        entry = first["headline"][name]
        assert entry["ci95"][0] <= entry["value"] <= entry["ci95"][1], name
        assert entry["ci95"][0] < entry["ci95"][1], name


def test_resamples_lacking_a_class_are_skipped() -> None:
    # All positives come from one patient: many resamples have none.
    y = np.r_[np.ones(20, dtype=int), np.zeros(60, dtype=int)]
    p = np.r_[np.full(15, 0.9), np.full(5, 0.2), np.full(50, 0.1), np.full(10, 0.7)]
    groups = np.repeat(["pos", "n1", "n2", "n3"], 20)
    m = compute_metrics(_binary(p), y, groups, OperatingPoint(LABELS, 1, 0.5, (0.5, 0.5), 1.0), n_resamples=300)
    assert m["headline"]["sensitivity"]["ci95"] == [0.75, 0.75]
    assert None not in m["headline"]["roc_auc"]["ci95"]
    assert m["headline"]["accuracy"]["ci95"][0] < m["headline"]["accuracy"]["ci95"][1]


@pytest.mark.parametrize("n_groups, n_resamples", [(1, 200), (5, 0)])
def test_no_interval_without_two_groups_or_resamples(n_groups: int, n_resamples: int) -> None:
    probs, y, _ = _random_binary(n=100)
    groups = [f"p{i % n_groups}" for i in range(100)]
    m = compute_metrics(probs, y, groups, OperatingPoint(LABELS, 1, 0.5, (0.4, 0.6), 1.0), n_resamples=n_resamples)
    assert all(m["headline"][name]["ci95"] == [None, None] for name in HEADLINE_METRICS)
    assert m["headline"]["accuracy"]["value"] is not None
    assert m["per_class"]["benign"]["recall"]["ci95"] == [None, None]


def test_undefined_metric_is_null_and_json_round_trips() -> None:
    probs, y, groups = _random_binary(n=120)
    y = np.zeros_like(y)  # no positives: sensitivity and AUC are undefined
    m = compute_metrics(probs, y, groups, OperatingPoint(LABELS, 1, 0.5, (0.4, 0.6), 1.0), n_resamples=50)
    assert m["headline"]["sensitivity"] == {"value": None, "ci95": [None, None]}
    assert m["headline"]["roc_auc"]["value"] is None
    assert m["roc_curves"]["malignant"]["auc"] is None
    assert set(m) == TOP_LEVEL_KEYS
    _assert_plain(m)
    assert json.loads(json.dumps(m, allow_nan=False)) == m


def test_schema_shape_and_plain_types() -> None:
    probs, y, groups = _random_binary()
    m = compute_metrics(probs, y, groups, OperatingPoint(LABELS, 1, 0.5, (0.4, 0.6), 1.3), split="validation", n_resamples=100)
    assert set(m) == TOP_LEVEL_KEYS
    assert list(m["headline"]) == list(HEADLINE_METRICS)
    assert set(m["per_class"]["benign"]) == {"precision", "recall", "f1", "support"}
    assert set(m["calibration"]) == {"label", "bin_edges", "mean_predicted", "fraction_positive", "count", "ece"}
    assert len(m["calibration"]["bin_edges"]) == 11 and len(m["calibration"]["count"]) == 10
    assert sum(m["calibration"]["count"]) == m["n_images"] == 600
    assert m["calibration"]["ece"] == m["headline"]["ece"]["value"]
    assert sum(g["n"] for g in m["per_group"].values()) == 600 and m["n_groups"] == len(m["per_group"]) == 12
    assert m["split"] == "validation" and m["positive_label"] == "malignant"
    _assert_plain(m)
    assert json.loads(json.dumps(m, allow_nan=False)) == m


def test_bootstrap_is_fast() -> None:
    probs, y, groups = _random_binary(n=2000, n_groups=30)
    start = time.perf_counter()
    compute_metrics(probs, y, groups, OperatingPoint(LABELS, 1, 0.5, (0.4, 0.6), 1.0), n_resamples=1000)
    assert time.perf_counter() - start < 5.0


def test_rejects_inconsistent_inputs() -> None:
    probs, y, groups = _random_binary(n=20)
    with pytest.raises(ValueError, match="labels"):
        compute_metrics(probs, y, groups, OperatingPoint(["a", "b", "c"], 1, 0.5, (0.4, 0.6), 1.0))
    with pytest.raises(ValueError, match="groups"):
        compute_metrics(probs, y, groups[:-1], OperatingPoint(LABELS, 1, 0.5, (0.4, 0.6), 1.0))
    with pytest.raises(ValueError, match="y must"):
        compute_metrics(probs, y + 1, groups, OperatingPoint(LABELS, 1, 0.5, (0.4, 0.6), 1.0))
    with pytest.raises(ValueError, match="positive_index"):
        compute_metrics(probs, y, groups, OperatingPoint(LABELS, 2, 0.5, (0.4, 0.6), 1.0))


def test_format_metrics_table_shows_figures() -> None:
    probs, y, groups = _random_binary()
    m = compute_metrics(probs, y, groups, OperatingPoint(LABELS, 1, 0.5, (0.4, 0.6), 1.3), n_resamples=100)
    text = format_metrics_table(m)
    acc = m["headline"]["accuracy"]
    assert f"{acc['value']:.3f} [{acc['ci95'][0]:.3f}, {acc['ci95'][1]:.3f}]" in text
    for name in HEADLINE_METRICS:
        assert name in text
    (tn, fp), (fn, tp) = m["confusion_matrix"]["matrix"]
    benign_row = next(line for line in text.splitlines() if line.startswith("benign"))
    assert benign_row.split() == ["benign", str(tn), str(fp)]
    malignant_row = next(line for line in text.splitlines() if line.startswith("malignant"))
    assert malignant_row.split() == ["malignant", str(fn), str(tp)]
    assert f"{100 * m['indeterminate']['fraction']:.1f}%" in text
    assert "threshold 0.500" in text and "[0.400, 0.600)" in text


def test_binary_tasks_score_summed_probabilities_with_group_intervals():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    y = np.repeat([0, 1, 2], 40)
    logits = rng.normal(0, 1, (120, 3)) + 1.5 * np.eye(3)[y]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    groups = [f"g{i % 12}" for i in range(120)]
    labels = ["normal", "benign", "malignant"]
    metrics = compute_metrics(probs, y, groups, OperatingPoint(labels, 2, 0.5, (0.4, 0.6), 1.0), n_resamples=200,
                              binary_tasks={"abnormal_vs_normal": ["benign", "malignant"]})
    task = metrics["binary_tasks"]["abnormal_vs_normal"]
    assert task["positive_labels"] == ["benign", "malignant"]
    expected = roc_auc_score(y > 0, probs[:, 1] + probs[:, 2])
    assert task["roc_auc"]["value"] == pytest.approx(expected)
    lo, hi = task["roc_auc"]["ci95"]
    assert lo < expected < hi
    plain = compute_metrics(probs, y, groups, OperatingPoint(labels, 2, 0.5, (0.4, 0.6), 1.0), n_resamples=200)
    assert "binary_tasks" not in plain and plain["headline"] == metrics["headline"]
    with pytest.raises(ValueError, match="subset"):
        compute_metrics(probs, y, groups, OperatingPoint(labels, 2, 0.5, (0.4, 0.6), 1.0), binary_tasks={"x": ["cyst"]})


def test_integer_case_weights_equal_repeating_the_images():
    """A weight of 3 is three copies of the image: every weighted figure and interval says so."""
    from bcc_model.evaluation.metrics import compute_metrics
    from bcc_model.models.decision import OperatingPoint

    rng = np.random.default_rng(5)
    n = 60
    y = rng.integers(0, 2, n)
    p = np.clip(0.35 * y + rng.uniform(0, 0.65, n), 0, 1)
    probs = np.stack([1 - p, p], axis=1)
    groups = [f"g{i % 12}" for i in range(n)]
    weights = np.where(y == 0, 3, 1)
    point = OperatingPoint(("benign", "malignant"), 1, 0.5, (0.45, 0.55), 1.0)
    weighted = compute_metrics(probs, y, groups, point, n_resamples=200, seed=1, weights=weights.astype(float),
                               weighting="negatives x3")
    repeat = np.repeat(np.arange(n), weights)
    copied = compute_metrics(probs[repeat], y[repeat], [groups[i] for i in repeat], point, n_resamples=200, seed=1)
    for name in ("balanced_accuracy", "roc_auc", "f1", "ece", "brier", "sensitivity", "specificity"):
        assert weighted["headline"][name]["value"] == pytest.approx(copied["headline"][name]["value"])
        assert weighted["headline"][name]["ci95"] == pytest.approx(copied["headline"][name]["ci95"])
    assert weighted["indeterminate"]["fraction"] == pytest.approx(copied["indeterminate"]["fraction"])
    assert weighted["confusion_matrix"]["matrix"] != copied["confusion_matrix"]["matrix"]  # images, not weight
    assert weighted["weighting"] == "negatives x3"
    unweighted = compute_metrics(probs, y, groups, point, n_resamples=200, seed=1)
    assert weighted["pooled"]["ece"] == unweighted["headline"]["ece"]
