"""Tests for bcc_model.figures on bundle files shaped like docs/SCHEMAS.md."""

from __future__ import annotations

import copy
import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from bcc_model.reporting.curves import calibration_figure, pr_figure, roc_figure
from bcc_model.reporting.figures import confusion_figure, history_figures, probability_bar, probability_map_figure
from bcc_model.reporting.tables import comparison_table, headline_table, per_class_table, split_table, task_scores_table

CI_PATTERN = re.compile(r"^\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]$")


def _curves(labels: np.ndarray, scores: np.ndarray) -> tuple[dict, dict]:
    """ROC and PR curve points of ``scores`` for ``labels`` (1 = positive), by threshold sweep."""
    order = np.argsort(-scores)
    hits = labels[order]
    tp = np.concatenate([[0], np.cumsum(hits)])
    fp = np.concatenate([[0], np.cumsum(1 - hits)])
    tpr, fpr = tp / hits.sum(), fp / (1 - hits).sum()
    precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 1.0)
    auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    ap = float(np.sum(np.diff(tpr) * precision[1:]))
    return (
        {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "auc": auc},
        {"precision": precision.tolist(), "recall": tpr.tolist(), "average_precision": ap},
    )


@pytest.fixture
def metrics() -> dict:
    """A metrics.json for 400 test images from synthetic but well-formed scores."""
    rng = np.random.default_rng(0)
    truth = (rng.random(400) < 0.4).astype(np.int64)
    scores = np.clip(0.35 * truth + rng.normal(0.35, 0.2, 400), 0, 1)
    roc, pr = _curves(truth, scores)
    predicted = (scores >= 0.47).astype(np.int64)
    matrix = [[int(np.sum((truth == t) & (predicted == p))) for p in (0, 1)] for t in (0, 1)]
    edges = np.linspace(0, 1, 11)
    bins = np.clip(np.digitize(scores, edges[1:-1]), 0, 9)
    counts = np.bincount(bins, minlength=10)
    mean_predicted = [float(scores[bins == b].mean()) if counts[b] else None for b in range(10)]
    fraction = [float(truth[bins == b].mean()) if counts[b] else None for b in range(10)]

    def entry(value: float, half: float = 0.03) -> dict:
        return {"value": value, "ci95": [value - half, value + half]}

    return {
        "split": "test",
        "n_images": 400,
        "n_groups": 5,
        "labels": ["benign", "malignant"],
        "positive_label": "malignant",
        "threshold": 0.47,
        "indeterminate_band": [0.35, 0.6],
        "temperature": 1.3,
        "headline": {
            "accuracy": entry(0.9),
            "balanced_accuracy": entry(0.89),
            "roc_auc": entry(round(roc["auc"], 3)),
            "sensitivity": entry(0.88),
            "specificity": entry(0.91),
            "f1": entry(0.85),
            "ece": entry(0.03, 0.01),
            "brier": entry(0.08, 0.02),
        },
        "per_class": {
            label: {
                "precision": entry(0.9),
                "recall": entry(0.88),
                "f1": entry(0.89),
                "support": int(sum(matrix[i])),
            }
            for i, label in enumerate(["benign", "malignant"])
        },
        "confusion_matrix": {"labels": ["benign", "malignant"], "matrix": matrix},
        "roc_curves": {"malignant": roc},
        "pr_curves": {"malignant": pr},
        "calibration": {
            "label": "malignant",
            "bin_edges": edges.tolist(),
            "mean_predicted": mean_predicted,
            "fraction_positive": fraction,
            "count": counts.tolist(),
            "ece": 0.03,
        },
        "indeterminate": {"fraction": 0.11, "accuracy_outside_band": 0.95, "n_outside_band": 356},
        "per_group": {"9124": {"n": 80, "accuracy": 0.9}},
        "bootstrap": {"n_resamples": 1000, "unit": "group", "seed": 0},
    }


@pytest.fixture
def model_info() -> dict:
    return {
        "name": "seresnet-50px-idc",
        "modality": "histopathology",
        "labels": ["benign", "malignant"],
        "positive_label": "malignant",
        "architecture": {"name": "se_resnet", "params": {}, "n_parameters": 123456},
        "data": {
            "splits": {
                "train": {"images": 8000, "groups": 17, "per_class": {"benign": 4000, "malignant": 4000}},
                "validation": {"images": 1500, "groups": 4, "per_class": {}},
                "test": {"images": 1700, "groups": 5, "per_class": {"benign": 900, "malignant": 800}},
            }
        },
        "comparison": [
            {
                "architecture": "densenet",
                "n_parameters": 98765,
                "validation": {"balanced_accuracy": 0.9, "roc_auc": 0.95, "loss": 0.3},
                "test": {"balanced_accuracy": {"value": 0.88, "ci95": [0.85, 0.91]}},
                "selected": False,
            }
        ],
    }


def _has_title_axes_hover(fig: go.Figure) -> None:
    assert fig.layout.title.text
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text
    assert all(trace.hovertemplate or trace.hoverinfo == "skip" for trace in fig.data)


def test_probability_bar_draws_threshold_and_band_on_positive_class() -> None:
    fig = probability_bar(
        {"benign": 0.38, "malignant": 0.62}, threshold=0.47, positive_label="malignant", band=(0.35, 0.6)
    )
    _has_title_axes_hover(fig)
    assert len(fig.data) == 1 and fig.data[0].orientation == "h"
    assert list(fig.data[0].text) == ["38.0%", "62.0%"]
    assert tuple(fig.layout.xaxis.range) == (0, 1)
    line = next(s for s in fig.layout.shapes if s.type == "line")
    rect = next(s for s in fig.layout.shapes if s.type == "rect")
    assert line.x0 == line.x1 == 0.47
    assert (rect.x0, rect.x1) == (0.35, 0.6)
    assert line.y0 < 1 < line.y1 and line.y0 > 0  # on the "malignant" row (index 1) only
    assert rect.layer == "below", "the band must not grey out the bar"
    assert "47%" in fig.data[0].customdata[1] and not fig.data[0].customdata[0]


def test_probability_bar_without_rule_and_validation() -> None:
    fig = probability_bar({"benign": 0.9, "malignant": 0.1})
    assert not fig.layout.shapes
    with pytest.raises(ValueError, match="positive_label"):
        probability_bar({"benign": 0.9, "malignant": 0.1}, threshold=0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        probability_bar({"benign": 1.2, "malignant": 0.1})


def test_history_figures() -> None:
    history = pd.DataFrame(
        {
            "epoch": [1, 2, 3],
            "loss": [0.7, 0.5, 0.4],
            "accuracy": [0.6, 0.75, 0.8],
            "auc": [0.65, 0.8, 0.86],
            "val_loss": [0.65, 0.55, 0.5],
            "val_accuracy": [0.62, 0.72, 0.78],
            "val_auc": [0.7, 0.79, 0.83],
            "learning_rate": [1e-3, 1e-3, 5e-4],
        }
    )
    figures = history_figures(history, best_epoch=3)
    assert list(figures) == ["loss", "accuracy", "auc", "learning_rate"]
    for key in ("loss", "accuracy", "auc"):
        _has_title_axes_hover(figures[key])
        assert [t.name for t in figures[key].data] == ["train", "validation"]
    assert len(figures["learning_rate"].data) == 1
    assert figures["learning_rate"].layout.yaxis.type == "log"
    assert figures["loss"].layout.shapes[0].x0 == 3  # best epoch marker


def test_history_figures_skips_missing_columns() -> None:
    figures = history_figures(pd.DataFrame({"loss": [0.7, 0.5], "val_accuracy": [0.6, 0.7]}))
    assert list(figures) == ["loss", "accuracy"]
    assert list(figures["loss"].data[0].x) == [1, 2]


def test_confusion_figure(metrics: dict) -> None:
    fig = confusion_figure(metrics)
    _has_title_axes_hover(fig)
    assert len(fig.data) == 1
    matrix = metrics["confusion_matrix"]["matrix"]
    share = matrix[0][0] / sum(matrix[0])
    assert fig.data[0].text[0][0] == f"{matrix[0][0]}<br>{share:.1%}"
    assert fig.layout.xaxis.title.text == "Predicted class"
    assert fig.layout.yaxis.title.text == "True class"
    bad = copy.deepcopy(metrics)
    bad["confusion_matrix"]["matrix"] = [[1, 2, 3]]
    with pytest.raises(ValueError, match="shape"):
        confusion_figure(bad)


def test_roc_figure(metrics: dict) -> None:
    fig = roc_figure(metrics)
    _has_title_axes_hover(fig)
    assert len(fig.data) == len(metrics["roc_curves"]) + 1  # + chance diagonal
    assert "AUC" in fig.data[0].name and "[" in fig.data[0].name  # positive class shows its CI
    assert list(fig.data[-1].x) == [0, 1]


def test_pr_figure(metrics: dict) -> None:
    fig = pr_figure(metrics)
    _has_title_axes_hover(fig)
    assert len(fig.data) == 2  # curve + prevalence baseline
    assert "AP" in fig.data[0].name
    matrix = np.array(metrics["confusion_matrix"]["matrix"])
    assert fig.data[1].y[0] == pytest.approx(matrix[1].sum() / matrix.sum())
    no_counts = {k: v for k, v in metrics.items() if k not in ("confusion_matrix", "per_class")}
    assert len(pr_figure(no_counts).data) == 1


def test_calibration_figure(metrics: dict) -> None:
    fig = calibration_figure(metrics)
    _has_title_axes_hover(fig)
    assert len(fig.data) == 3
    assert "ECE 0.030 [0.020, 0.040]" in fig.layout.title.text
    bars, model, diagonal = fig.data
    assert bars.type == "bar" and bars.yaxis == "y2"
    assert len(model.x) == sum(c > 0 for c in metrics["calibration"]["count"])
    bad = copy.deepcopy(metrics)
    bad["calibration"]["count"] = bad["calibration"]["count"][:-1]
    with pytest.raises(ValueError, match="bin_edges"):
        calibration_figure(bad)


def test_missing_section_raises(metrics: dict) -> None:
    del metrics["roc_curves"]
    with pytest.raises(ValueError, match="roc_curves"):
        roc_figure(metrics)


def test_headline_table(metrics: dict) -> None:
    table = headline_table(metrics)
    assert list(table.columns) == ["value", "95% CI"]
    assert len(table) == len(metrics["headline"])
    assert table.loc["Accuracy", "95% CI"] == "0.900 [0.870, 0.930]"
    assert table.loc["Accuracy", "value"] == pytest.approx(0.9)
    assert "ROC AUC (malignant vs rest)" in table.index
    assert table["95% CI"].map(lambda s: bool(CI_PATTERN.match(s))).all()


def test_per_class_table(metrics: dict) -> None:
    table = per_class_table(metrics)
    assert list(table.index) == ["benign", "malignant"]
    assert list(table.columns) == ["precision (95% CI)", "recall (95% CI)", "F1 (95% CI)", "support"]
    assert table.loc["benign", "recall (95% CI)"] == "0.880 [0.850, 0.910]"
    assert table["support"].sum() == 400


def test_split_table(model_info: dict) -> None:
    table = split_table(model_info)
    assert list(table.index) == ["train", "validation", "test"]
    assert list(table.columns) == ["images", "patients (groups)", "benign", "malignant"]
    assert table.loc["train", "patients (groups)"] == 17
    assert table.loc["test", "malignant"] == 800
    assert pd.isna(table.loc["validation", "benign"])


def test_comparison_table(model_info: dict) -> None:
    table = comparison_table(model_info)
    assert list(table.index) == ["densenet", "se_resnet"]  # the bundle's own model is added
    assert table["selected"].tolist() == [False, True]
    assert table.loc["densenet", "test Balanced accuracy"] == "0.880 [0.850, 0.910]"
    assert table.loc["densenet", "validation ROC AUC (malignant vs rest)"] == "0.950"
    assert table.loc["se_resnet", "parameters"] == 123456


def test_probability_map_figure() -> None:
    image = np.random.default_rng(0).integers(0, 256, (2000, 1500, 3), dtype=np.uint8)
    prob_map = np.full((2000, 1500), np.nan, np.float32)
    prob_map[:1000, :750] = 0.9
    fig = probability_map_figure(image, prob_map, label="malignant")
    _has_title_axes_hover(fig)
    shown, heat = fig.data
    assert shown.type == "image" and shown.source.startswith("data:image/png;base64,")
    assert heat.type == "heatmap" and heat.colorbar.title.text == "P(malignant)"
    z = np.asarray(heat.z, dtype=float)
    assert max(z.shape) <= 256
    assert np.isnan(z).mean() == pytest.approx(0.75, abs=0.01)  # NaN stays NaN (transparent)
    # Both layers span the original 1500 px width.
    assert heat.x0 + (z.shape[1] - 0.5) * heat.dx == pytest.approx(1500 - 0.5)
    with pytest.raises(ValueError, match="shape"):
        probability_map_figure(image, prob_map[:-1], label="malignant")


def test_probability_map_colours_match_the_bar_and_tiles_are_clickable_and_flagged_live() -> None:
    image = np.full((400, 1200, 3), 200, np.uint8)
    prob_map = np.full((400, 1200), np.nan, np.float32)
    boxes = np.array([[0, 0, 100, 100], [100, 0, 200, 100], [200, 0, 300, 100]])
    positive = np.array([0.2, 0.55, 0.9])
    for (x0, y0, x1, y1), p in zip(boxes, positive):
        prob_map[y0:y1, x0:x1] = p
    strict = probability_map_figure(image, prob_map, label="malignant", boxes=boxes, positive=positive, threshold=0.6)
    _, heat, tiles = strict.data
    assert heat.opacity == 1.0, "at full opacity the map's colours are the colour bar's"
    assert list(tiles.customdata) == [0, 1, 2] and tiles.mode == "markers"
    assert [c != "rgba(0,0,0,0)" for c in tiles.marker.color] == [False, False, True]
    lenient = probability_map_figure(image, prob_map, label="malignant", boxes=boxes, positive=positive, threshold=0.5)
    assert [c != "rgba(0,0,0,0)" for c in lenient.data[2].marker.color] == [False, True, True]
    tall = probability_map_figure(np.full((1200, 400, 3), 200, np.uint8), np.full((1200, 400), np.nan, np.float32),
                                  label="malignant")
    assert strict.layout.height < tall.layout.height, "the height follows the image's shape: no empty band"
    assert probability_map_figure(image, prob_map, label="malignant", opacity=0.4).data[1].opacity == 0.4
    assert tiles.unselected.marker.opacity == 1.0, "clicking one tile keeps every other outline"
    assert "undecided" not in "".join(tiles.text) and tiles.text[2].endswith("flagged")


def test_the_map_can_stand_beside_its_tissue_zooming_together_with_a_micrometre_bar() -> None:
    image = np.full((400, 1200, 3), 200, np.uint8)
    prob_map = np.full((400, 1200), 0.3, np.float32)
    boxes = np.array([[0, 0, 100, 100]])
    fig = probability_map_figure(image, prob_map, label="IDC", boxes=boxes, positive=np.array([0.3]), threshold=0.5,
                                 band=(0.2, 0.4), side_by_side=True, mpp=2.0)
    tissue, shown, heat, tiles = fig.data
    assert (tissue.type, shown.type, heat.type) == ("image", "image", "heatmap")
    assert tissue.xaxis == "x" and heat.xaxis == tiles.xaxis == "x2"
    assert fig.layout.xaxis2.matches == "x" and fig.layout.yaxis2.matches == "y", "zoom one panel, the other follows"
    bars = [a.text for a in fig.layout.annotations if a.text.endswith("µm")]
    assert bars == ["250 µm", "250 µm"] and tiles.text[0].endswith("undecided")


def test_undefined_values_show_as_na(metrics: dict) -> None:
    # metrics.json stores undefined numbers as null, e.g. a CI from fewer than two groups.
    metrics["headline"]["roc_auc"] = {"value": None, "ci95": [None, None]}
    metrics["headline"]["accuracy"]["ci95"] = [None, None]
    metrics["roc_curves"]["malignant"] = {"fpr": [], "tpr": [], "auc": None}
    table = headline_table(metrics)
    assert table.loc["ROC AUC (malignant vs rest)", "95% CI"] == "n/a [n/a, n/a]"
    assert np.isnan(table.loc["ROC AUC (malignant vs rest)", "value"])
    assert table.loc["Accuracy", "95% CI"] == "0.900 [n/a, n/a]"
    assert "AUC n/a" in roc_figure(metrics).data[0].name


def test_task_scores_table_lists_localisation_and_extra_tasks_with_ci_and_n() -> None:
    metrics = {
        "n_images": 133,
        "localisation": {
            "pointing_game": {"value": 0.3, "ci95": [0.2, 0.4], "n": 110},
            "energy_inside": {"value": 0.134, "ci95": [0.104, 0.167], "n": 110},
            "method": "Grad-CAM", "target": "true class",
        },
        "binary_tasks": {"abnormal_vs_normal": {"positive_labels": ["benign", "malignant"],
                                                "roc_auc": {"value": 0.903, "ci95": [0.783, None]}}},
    }
    table = task_scores_table(metrics)
    assert list(table.index) == [
        "Pointing game (Grad-CAM, true class)",
        "Energy inside lesion (Grad-CAM, true class)",
        "ROC AUC: abnormal vs normal (benign, malignant positive)",
    ]
    assert list(table["95% CI"]) == ["0.300 [0.200, 0.400]", "0.134 [0.104, 0.167]", "0.903 [0.783, n/a]"]
    assert list(table["n"]) == [110, 110, 133]
    assert table["value"].tolist() == pytest.approx([0.3, 0.134, 0.903])


def test_task_scores_table_is_empty_without_those_sections() -> None:
    assert task_scores_table({"headline": {}}).empty
    circles_only = task_scores_table({"localisation": {"pointing_game": {"value": 0.0, "ci95": [0.0, 0.0], "n": 17},
                                                         "method": "Grad-CAM"}})
    assert list(circles_only.index) == ["Pointing game (Grad-CAM, true class)"]  # no outlines: no energy score


def test_tables_and_the_confusion_matrix_speak_the_modalitys_words(metrics: dict) -> None:
    """H&E: "IDC" and "no IDC" where the bundle's labels say "malignant" and "benign"."""
    words = {"benign": "no IDC", "malignant": "IDC"}.get
    show = lambda label: words(label) or label  # noqa: E731
    assert any("IDC" in name and "malignant" not in name for name in headline_table(metrics, show).index)
    assert list(confusion_figure(metrics, show).data[0].x) == [show(label) for label in metrics["confusion_matrix"]["labels"]]
    from bcc_model.reporting.curves import calibration_figure, pr_figure, roc_figure

    for figure in (roc_figure(metrics, show), pr_figure(metrics, show), calibration_figure(metrics, show)):
        text = figure.layout.title.text + " ".join(trace.name or "" for trace in figure.data)
        assert "IDC" in text and "malignant" not in text, text
