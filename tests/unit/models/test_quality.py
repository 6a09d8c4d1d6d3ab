"""The performance caution fires on weak bundles and stays quiet on good ones."""

from __future__ import annotations

import json

from bcc_model.models.quality import performance_caution

from tests.conftest import ROOT


def _metrics(value, low, high, tasks=None):
    return {"positive_label": "malignant", "headline": {"roc_auc": {"value": value, "ci95": [low, high]}},
            "binary_tasks": tasks or {}}


def test_good_model_gets_no_caution():
    assert performance_caution(_metrics(0.93, 0.88, 0.97)) is None


def test_low_auc_or_ci_reaching_chance_is_named():
    assert "0.66" in performance_caution(_metrics(0.66, 0.55, 0.80))
    assert "malignant vs rest" in performance_caution(_metrics(0.80, 0.45, 0.95))
    task = {"abnormal_vs_normal": {"roc_auc": {"value": 0.56, "ci95": [0.43, 0.69]}}}
    message = performance_caution(_metrics(0.93, 0.88, 0.97, task))
    assert "abnormal vs normal ROC AUC 0.56 [0.43, 0.69]" in message


def test_missing_figures_do_not_crash():
    assert performance_caution({}) is None
    assert performance_caution({"headline": {"roc_auc": {"value": None, "ci95": [None, None]}}}) is None


def test_shipped_bundles_are_judged_by_their_own_metrics():
    for modality, cautioned in (("histopathology", False), ("mammography", True), ("ultrasound", False)):
        metrics = json.loads((ROOT / "weights" / modality / "metrics.json").read_text())
        assert (performance_caution(metrics) is not None) is cautioned, modality
