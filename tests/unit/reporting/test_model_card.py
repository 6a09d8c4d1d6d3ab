"""Tests for MODEL_CARD.md rendering."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from bcc_model import RESEARCH_USE_NOTICE
from bcc_model.models.decision import OperatingPoint
from bcc_model.evaluation.metrics import compute_metrics
from bcc_model.reporting.formatting import NOT_RECORDED
from bcc_model.reporting.model_card import render_model_card

SECTIONS = [
    "## Model details",
    "## Intended use",
    "### Out-of-scope uses",
    "## Factors",
    "## Metrics",
    "## Evaluation data",
    "## Training data",
    "## Quantitative analyses",
    "## Architecture comparison",
    "## Ethical considerations",
    "## Caveats and recommendations",
]

MODEL_INFO = {
    "format_version": 1,
    "modality": "histopathology",
    "name": "seresnet-50px-idc",
    "labels": ["benign", "malignant"],
    "positive_label": "malignant",
    "input_shape": [50, 50, 3],
    "mpp": 4.0,
    "magnification": "2.5x",
    "preprocessing": ["to_rgb", "resize"],
    "augmentation": ["flip", "rot90", "hed_jitter", "brightness_contrast"],
    "architecture": {"name": "se_resnet", "params": {"widths": [32, 64, 128]}, "n_parameters": 123456,
                     "cam_layer": "last_conv"},
    "training": {"epochs_max": 30, "epochs_run": 21, "best_epoch": 14, "batch_size": 64, "lr": 0.001,
                 "seed": 42, "image_size": 50, "duration_s": 812.3, "command": "python -m bcc_model.train"},
    "data": {"source": "histopathology", "citation": "Janowczyk & Madabhushi 2016, J Pathol Inform 7:29",
             "manifest_file": "manifest.csv", "manifest_sha256": "ab" * 32,
             "splits": {"train": {"images": 8000, "groups": 17, "per_class": {"benign": 4000, "malignant": 4000}},
                        "validation": {"images": 1500, "groups": 4, "per_class": {"benign": 900, "malignant": 600}},
                        "test": {"images": 600, "groups": 6, "per_class": {"benign": 300, "malignant": 300}}},
             "groups": {"train": ["8864", "8865"], "validation": ["9023"], "test": [f"t{i}" for i in range(6)]}},
    "calibration": {"method": "temperature", "temperature": 1.37, "fitted_on": "validation"},
    "decision": {"threshold": 0.47, "indeterminate_band": [0.35, 0.6], "chosen_on": "validation",
                 "validation_accuracy_outside_band": 0.951, "validation_fraction_indeterminate": 0.123},
    "comparison": [
        {"architecture": "se_resnet", "n_parameters": 123456,
         "validation": {"balanced_accuracy": 0.912, "roc_auc": 0.961, "loss": 0.281},
         "test": {"balanced_accuracy": {"value": 0.893, "ci95": [0.861, 0.917]}}, "selected": True},
        {"architecture": "densenet", "n_parameters": 98765,
         "validation": {"balanced_accuracy": 0.9, "roc_auc": 0.95, "loss": 0.3},
         "test": {"balanced_accuracy": {"value": 0.88, "ci95": [0.85, 0.91]}}, "selected": False},
    ],
    "versions": {"python": "3.11.7", "tensorflow": "2.21.0", "keras": "3.15.1", "numpy": "2.4.6"},
    "model_sha256": "0123456789abcdef" * 4,
    "created": "2026-11-25T16:00:00+00:00",
}


@pytest.fixture(scope="module")
def metrics() -> dict:
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 300)
    p = np.clip(0.5 + 0.3 * (2 * y - 1) + rng.normal(0, 0.2, 600), 0, 1)
    groups = [f"t{i}" for i in rng.integers(0, 6, 600)]
    return compute_metrics(np.c_[1 - p, p], y, groups, OperatingPoint(["benign", "malignant"], 1, 0.47, (0.35, 0.6), 1.37),
                           n_resamples=200)


def test_notice_first_and_all_sections_in_order(metrics: dict) -> None:
    card = render_model_card(MODEL_INFO, metrics)
    assert RESEARCH_USE_NOTICE in "\n".join(card.splitlines()[:4])
    positions = [card.index(section) for section in SECTIONS]
    assert positions == sorted(positions)
    assert NOT_RECORDED not in card


def test_card_reports_figures_from_the_dicts(metrics: dict) -> None:
    card = render_model_card(MODEL_INFO, metrics)
    for name, entry in metrics["headline"].items():
        lo, hi = entry["ci95"]
        assert f"{entry['value']:.3f} | [{lo:.3f}, {hi:.3f}]" in card, name
    (tn, fp), (fn, tp) = metrics["confusion_matrix"]["matrix"]
    assert f"| benign | {tn} | {fp} |" in card and f"| malignant | {fn} | {tp} |" in card
    accuracies = [g["accuracy"] for g in metrics["per_group"].values()]
    assert f"ranges from {min(accuracies):.3f} to {max(accuracies):.3f}" in card
    assert f"{100 * metrics['indeterminate']['fraction']:.1f}%" in card
    assert "0123456789ab " in card and "123,456 parameters" in card
    assert "1.370" in card and "0.470" in card and "[0.350, 0.600)" in card and "12.3%" in card
    assert "| test | 600 | 6 | benign: 300, malignant: 300 |" in card
    assert MODEL_INFO["data"]["citation"] in card and MODEL_INFO["data"]["manifest_sha256"] in card
    assert "tensorflow 2.21.0" in card and "2026-11-25" in card
    assert "No patient is shared across splits" in card
    assert "Out-of-scope" in card and "Diagnosis" in card


def test_comparison_table_lists_both_architectures(metrics: dict) -> None:
    card = render_model_card(MODEL_INFO, metrics)
    section = card[card.index("## Architecture comparison"):card.index("## Ethical considerations")]
    assert "| se_resnet | 123,456 | 0.912 | 0.961 | 0.281 | 0.893 [0.861, 0.917] | yes |" in section
    assert "| densenet | 98,765 | 0.900 | 0.950 | 0.300 | 0.880 [0.850, 0.910] | no |" in section
    assert "Selected: se_resnet" in section and "validation" in section and "(42)" in section


def test_numbers_follow_the_input(metrics: dict) -> None:
    info = copy.deepcopy(MODEL_INFO)
    info["calibration"]["temperature"] = 2.5
    info["decision"]["threshold"] = 0.61
    card = render_model_card(info, metrics)
    assert "2.500" in card and "0.610" in card and "1.370" not in card


def test_shared_patient_is_flagged(metrics: dict) -> None:
    info = copy.deepcopy(MODEL_INFO)
    info["data"]["groups"]["test"].append("9023")
    card = render_model_card(info, metrics)
    assert "Warning: 1 patient(s) appear in more than one split (9023)" in card
    assert "No patient is shared" not in card


@pytest.mark.parametrize(
    "info, mets",
    [
        ({}, {}),
        (None, None),
        ({"comparison": None, "architecture": "se_resnet", "data": {"splits": {"test": None}}},
         {"headline": {"accuracy": {"value": None, "ci95": [None, None]}}, "per_group": {"a": {"n": 3}},
          "confusion_matrix": {"labels": ["a"]}, "indeterminate": None}),
    ],
)
def test_missing_values_render_not_recorded(info: dict, mets: dict) -> None:
    card = render_model_card(info, mets)
    assert RESEARCH_USE_NOTICE in card
    assert all(section in card for section in SECTIONS)
    assert NOT_RECORDED in card


def test_partial_metrics_keep_other_figures(metrics: dict) -> None:
    mets = copy.deepcopy(metrics)
    del mets["per_group"], mets["headline"]["brier"]
    info = copy.deepcopy(MODEL_INFO)
    del info["comparison"], info["versions"]
    card = render_model_card(info, mets)
    assert "Per-patient accuracy: not recorded." in card
    assert f"| Brier score | {NOT_RECORDED} | {NOT_RECORDED} |" in card
    assert f"Comparison: {NOT_RECORDED}." in card and f"**Libraries:** {NOT_RECORDED}" in card
    assert f"{metrics['headline']['accuracy']['value']:.3f}" in card


def test_validation_optimism_is_flagged_only_above_the_test_interval(metrics: dict) -> None:
    upper = metrics["headline"]["balanced_accuracy"]["ci95"][1]
    info = copy.deepcopy(MODEL_INFO)
    info["comparison"][0]["validation"]["balanced_accuracy"] = upper - 0.01
    assert "Validation optimism" not in render_model_card(info, metrics)
    info["comparison"][0]["validation"]["balanced_accuracy"] = min(upper + 0.05, 1.0)
    card = render_model_card(info, metrics)
    caveats = card[card.index("## Caveats and recommendations"):]
    assert "Validation optimism" in caveats and f"{min(upper + 0.05, 1.0):.3f}" in caveats
    info["comparison"][0]["selected"] = False
    assert "Validation optimism" not in render_model_card(info, metrics), "no selected model, no claim"


def test_caveats_name_where_the_operating_point_was_fitted(metrics: dict) -> None:
    """A bundle calibrated on out-of-fold predictions must not claim 'the validation patients only'."""
    info = copy.deepcopy(MODEL_INFO)
    info["comparison"][0]["validation"]["balanced_accuracy"] = 1.0  # forces the optimism caveat too
    caveats = render_model_card(info, metrics).split("## Caveats and recommendations")[1]
    assert "fitted on the 4 validation patients only" in caveats
    assert "validation balanced accuracy" in caveats and "The validation split chose" in caveats
    info["calibration"]["fitted_on"] = "out-of-fold predictions of 5-fold patient-grouped cross-validation (21 patients)"
    caveats = render_model_card(info, metrics).split("## Caveats and recommendations")[1]
    assert "fitted on out-of-fold predictions of 5-fold patient-grouped cross-validation (21 patients);" in caveats
    assert "validation patients only" not in caveats
    assert "out-of-fold balanced accuracy" in caveats and "Cross-validation chose" in caveats
