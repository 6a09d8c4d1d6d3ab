"""Plotly figures and display tables for the app, built from bundle files and predictions.

Each builder reads one part of ``model.json``, ``metrics.json`` or ``history.csv`` (schemas in
``docs/SCHEMAS.md``) and returns a ``go.Figure`` or a ``pd.DataFrame`` that a page only has to
render. Every figure has a title, axis titles and hover text. Metric tables report the value
with its 95% bootstrap confidence interval, because a single number from one test split
overstates what is known.

A malformed or missing section raises ``ValueError`` naming it, instead of drawing an empty or
misleading plot.
"""

from __future__ import annotations

import base64
from typing import Mapping

import cv2
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from bcc_model.explain.overlay import encode_png, ensure_rgb, shrink_to_fit

__all__ = [
    "task_scores_table",
    "probability_bar",
    "history_figures",
    "confusion_figure",
    "roc_figure",
    "pr_figure",
    "calibration_figure",
    "headline_table",
    "per_class_table",
    "split_table",
    "comparison_table",
    "probability_map_figure",
]

_TEMPLATE = "plotly_white"
_BAR_COLOUR = "#2b5d8a"  # the app theme's primary colour (.streamlit/config.toml)
_GUIDE_COLOUR = "#4a5563"  # thresholds, chance lines
_CHANCE_LINE = {"dash": "dash", "color": _GUIDE_COLOUR, "width": 1}
# Longest side in px of the image and of the probability map embedded in a figure: enough for
# a screen, small enough that the figure's JSON stays around a megabyte.
_IMAGE_MAX_PX = 1024
_MAP_MAX_PX = 256

_METRIC_NAMES = {
    "accuracy": "Accuracy",
    "balanced_accuracy": "Balanced accuracy",
    "roc_auc": "ROC AUC ({pos} vs rest)",
    "sensitivity": "Sensitivity (recall of {pos})",
    "specificity": "Specificity (recall of not {pos})",
    "f1": "F1 ({pos})",
    "ece": "Expected calibration error (lower is better)",
    "brier": "Brier score (lower is better)",
    "loss": "Loss",
}


def _metric_name(key: str, positive_label: str) -> str:
    """Human-readable metric name; unknown keys fall back to the key in words."""
    template = _METRIC_NAMES.get(key, key.replace("_", " ").capitalize())
    return template.format(pos=positive_label)


def _section(data: Mapping, key: str, source: str) -> object:
    """Return ``data[key]``, refusing a missing or empty section with a clear message."""
    value = data.get(key)
    if value is None or (hasattr(value, "__len__") and len(value) == 0):
        raise ValueError(f"{source} has no {key!r} section (see docs/SCHEMAS.md)")
    return value


def _number(value: object) -> str:
    """Three decimals, or "n/a" for a value metrics.json stores as null (undefined)."""
    if value is None or not np.isfinite(float(value)):
        return "n/a"
    return f"{float(value):.3f}"


def _format_metric(entry: object) -> str:
    """Format a metric as ``"0.912 [0.881, 0.940]"``.

    ``entry`` is ``{"value": v, "ci95": [lo, hi]}`` (any of them may be null, shown "n/a", e.g.
    a CI with fewer than two groups to resample) or a bare number (shown without brackets).
    """
    if not isinstance(entry, Mapping):
        return _number(entry)
    text = _number(entry.get("value"))
    ci = entry.get("ci95")
    return text if ci is None else f"{text} [{_number(ci[0])}, {_number(ci[1])}]"


def _metric_value(entry: object) -> float:
    """The point value of a metric entry as a float, NaN when undefined."""
    value = entry.get("value") if isinstance(entry, Mapping) else entry
    return float("nan") if value is None else float(value)


def _percent(fraction: float) -> str:
    """0.47 -> "47%", 0.475 -> "47.5%": no trailing zeros on thresholds."""
    return f"{100 * fraction:.3g}%"


def _style(fig: go.Figure, title: str, x_title: str, y_title: str) -> go.Figure:
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, template=_TEMPLATE)
    return fig


def _unit_square(fig: go.Figure) -> go.Figure:
    """Fix both axes to [0, 1] with equal scale, as curves in ROC/PR space should be drawn."""
    fig.update_xaxes(range=[0, 1], constrain="domain")
    fig.update_yaxes(range=[0, 1.02], scaleanchor="x", scaleratio=1, constrain="domain")
    return fig


def probability_bar(
    probabilities: Mapping[str, float],
    *,
    threshold: float | None = None,
    positive_label: str | None = None,
    band: tuple[float, float] | None = None,
) -> go.Figure:
    """Horizontal bars of class probabilities, with the decision rule drawn on the positive bar.

    Args:
        probabilities: label -> probability in [0, 1], in model-output order (drawn top down).
        threshold: decision threshold on P(``positive_label``), drawn as a line on its bar.
        positive_label: the class the threshold and band apply to; required with either.
        band: ``(low, high)`` indeterminate band on P(``positive_label``), shaded on its bar.

    Returns:
        One bar trace; threshold and band are layout shapes.

    Raises:
        ValueError: empty input, a probability, threshold or band outside [0, 1], or a
            threshold/band without a ``positive_label`` that is among the labels.
    """
    if not probabilities:
        raise ValueError("probabilities is empty")
    labels = list(probabilities)
    values = [float(probabilities[label]) for label in labels]
    for label, value in zip(labels, values):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"probability of {label!r} must be in [0, 1], got {value}")
    decorated = threshold is not None or band is not None
    if decorated and positive_label not in probabilities:
        raise ValueError(
            f"threshold/band need a positive_label among {labels}, got {positive_label!r}"
        )
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    if band is not None and not 0.0 <= band[0] <= band[1] <= 1.0:
        raise ValueError(f"band must satisfy 0 <= low <= high <= 1, got {band}")

    rule = []
    if threshold is not None:
        rule.append(f"decision threshold {_percent(threshold)}")
    if band is not None:
        rule.append(f"indeterminate {_percent(band[0])}–{_percent(band[1])}")
    notes = ["<br>" + ", ".join(rule) if label == positive_label and rule else "" for label in labels]
    fig = go.Figure(
        go.Bar(
            x=values,
            y=labels,
            orientation="h",
            marker_color=_BAR_COLOUR,
            text=[f"{value:.1%}" for value in values],
            textposition="auto",
            customdata=notes,
            hovertemplate="%{y}: %{x:.1%}%{customdata}<extra></extra>",
        )
    )
    title = "Class probabilities"
    if decorated:
        row = labels.index(positive_label)
        rows = {"yref": "y", "y0": row - 0.45, "y1": row + 0.45}
        if band is not None:
            fig.add_shape(type="rect", x0=band[0], x1=band[1], fillcolor="rgba(150, 150, 150, 0.3)",
                          line_width=0, layer="below", **rows)
        if threshold is not None:
            fig.add_shape(type="line", x0=threshold, x1=threshold,
                          line={"color": _GUIDE_COLOUR, "width": 3, "dash": "dash"}, **rows)
    _style(fig, title, "Probability (calibrated)", "Class")
    fig.update_xaxes(range=[0, 1], tickformat=".0%")
    fig.update_yaxes(categoryorder="array", categoryarray=labels, autorange="reversed")
    return fig


def history_figures(history: pd.DataFrame, *, best_epoch: int | None = None) -> dict[str, go.Figure]:
    """Training curves per epoch: train vs validation for loss, accuracy and AUC; learning rate.

    Args:
        history: ``history.csv`` as a DataFrame (columns in docs/SCHEMAS.md). Missing columns
            are skipped; without ``epoch`` the row number (1-based) is used.
        best_epoch: epoch whose weights were kept (``model.json`` training.best_epoch), marked
            with a dotted line when given.

    Returns:
        Figures keyed ``"loss"``, ``"accuracy"``, ``"auc"``, ``"learning_rate"``, in that
        order; a key whose columns are all missing is left out.
    """
    epochs = history["epoch"] if "epoch" in history else pd.Series(range(1, len(history) + 1))
    panels = {
        "loss": ("Loss", (("loss", "train"), ("val_loss", "validation"))),
        "accuracy": ("Accuracy", (("accuracy", "train"), ("val_accuracy", "validation"))),
        "auc": ("ROC AUC", (("auc", "train"), ("val_auc", "validation"))),
        "learning_rate": ("Learning rate", (("learning_rate", "learning rate"),)),
    }
    figures = {}
    for key, (title, series) in panels.items():
        present = [(column, name) for column, name in series if column in history]
        if not present:
            continue
        fig = go.Figure()
        for column, name in present:
            fig.add_trace(
                go.Scatter(
                    x=epochs,
                    y=history[column],
                    mode="lines+markers",
                    name=name,
                    hovertemplate=f"epoch %{{x}}<br>{name}: %{{y:.4g}}<extra></extra>",
                )
            )
        if best_epoch is not None:
            fig.add_vline(x=best_epoch, line={"dash": "dot", "color": _GUIDE_COLOUR},
                          annotation_text="weights kept")
        _style(fig, f"{title} per epoch", "Epoch", title)
        if key == "learning_rate":
            fig.update_yaxes(type="log")
        figures[key] = fig
    return figures


def confusion_figure(metrics: dict) -> go.Figure:
    """Confusion matrix as an annotated heatmap: rows true class, columns predicted class.

    Cells show the count and the row percentage (share of that true class); colour encodes the
    row percentage, so a rare class is as readable as a common one.

    Args:
        metrics: ``metrics.json`` contents.

    Returns:
        One heatmap trace.

    Raises:
        ValueError: missing section or a matrix that is not square over the labels.
    """
    section = _section(metrics, "confusion_matrix", "metrics")
    labels = list(section["labels"])
    counts = np.asarray(section["matrix"], dtype=np.int64)
    if counts.shape != (len(labels), len(labels)):
        raise ValueError(f"confusion matrix shape {counts.shape} does not match labels {labels}")
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.where(totals > 0, counts / np.maximum(totals, 1), np.nan)
    text = [
        [f"{n}<br>{share:.1%}" if np.isfinite(share) else f"{n}<br>–" for n, share in zip(row, srow)]
        for row, srow in zip(counts.tolist(), shares.tolist())
    ]
    fig = go.Figure(
        go.Heatmap(
            z=shares,
            x=labels,
            y=labels,
            text=text,
            texttemplate="%{text}",
            customdata=counts,
            zmin=0,
            zmax=1,
            colorscale="Blues",
            colorbar={"title": "share of<br>true class", "tickformat": ".0%"},
            hovertemplate="true %{y}, predicted %{x}<br>%{customdata} images "
            "(%{z:.1%} of true %{y})<extra></extra>",
        )
    )
    title = f"Confusion matrix ({metrics.get('split', 'evaluation')} split, {int(counts.sum())} images"
    if "threshold" in metrics:
        title += f", threshold {metrics['threshold']:g}"
    _style(fig, title + ")", "Predicted class", "True class")
    fig.update_yaxes(autorange="reversed")
    return fig


def roc_figure(metrics: dict) -> go.Figure:
    """ROC curves, one per entry of ``metrics["roc_curves"]``, with AUC in the legend.

    The positive class's AUC also shows its bootstrap 95% CI from the headline metrics.

    Args:
        metrics: ``metrics.json`` contents.

    Returns:
        One trace per curve, then the diagonal chance line.

    Raises:
        ValueError: no ``roc_curves``.
    """
    curves = _section(metrics, "roc_curves", "metrics")
    headline_auc = metrics.get("headline", {}).get("roc_auc")
    fig = go.Figure()
    for label, curve in curves.items():
        auc = headline_auc if label == metrics.get("positive_label") and headline_auc else curve.get("auc")
        fig.add_trace(
            go.Scatter(
                x=curve["fpr"],
                y=curve["tpr"],
                mode="lines",
                name=f"{label}: AUC {_format_metric(auc)}",
                hovertemplate=f"{label}<br>false positive rate %{{x:.3f}}<br>"
                "true positive rate %{y:.3f}<extra></extra>",
            )
        )
    fig.add_trace(
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=_CHANCE_LINE, name="chance (AUC 0.5)",
                   hovertemplate="chance<extra></extra>")
    )
    _style(fig, f"ROC curve ({metrics.get('split', 'evaluation')} split)",
           "False positive rate (1 − specificity)", "True positive rate (sensitivity)")
    return _unit_square(fig)


def _prevalence(metrics: Mapping, label: str) -> float | None:
    """Share of ``label`` among the evaluated images, from the confusion matrix or supports."""
    matrix = metrics.get("confusion_matrix")
    if matrix and label in matrix.get("labels", []):
        counts = np.asarray(matrix["matrix"], dtype=np.float64)
        total = counts.sum()
        return float(counts[matrix["labels"].index(label)].sum() / total) if total else None
    supports = {k: v.get("support") for k, v in metrics.get("per_class", {}).items()}
    if label in supports and all(s is not None for s in supports.values()):
        total = sum(supports.values())
        return supports[label] / total if total else None
    return None


def pr_figure(metrics: dict) -> go.Figure:
    """Precision-recall curves from ``metrics["pr_curves"]``, average precision in the legend.

    A classifier that guesses has precision equal to the class prevalence at every recall, so
    that level is drawn as a dashed baseline when the class counts are known.

    Args:
        metrics: ``metrics.json`` contents.

    Returns:
        One trace per curve, each followed by its prevalence baseline when computable.

    Raises:
        ValueError: no ``pr_curves``.
    """
    curves = _section(metrics, "pr_curves", "metrics")
    fig = go.Figure()
    for label, curve in curves.items():
        fig.add_trace(
            go.Scatter(
                x=curve["recall"],
                y=curve["precision"],
                mode="lines",
                name=f"{label}: AP {_number(curve.get('average_precision'))}",
                hovertemplate=f"{label}<br>recall %{{x:.3f}}<br>precision %{{y:.3f}}<extra></extra>",
            )
        )
        prevalence = _prevalence(metrics, label)
        if prevalence is not None:
            fig.add_trace(
                go.Scatter(
                    x=[0, 1],
                    y=[prevalence, prevalence],
                    mode="lines",
                    line=_CHANCE_LINE,
                    name=f"chance for {label} (prevalence {prevalence:.3f})",
                    hovertemplate=f"chance: precision = prevalence of {label} "
                    f"({prevalence:.3f})<extra></extra>",
                )
            )
    _style(fig, f"Precision-recall curve ({metrics.get('split', 'evaluation')} split)",
           "Recall (sensitivity)", "Precision (positive predictive value)")
    return _unit_square(fig)


def calibration_figure(metrics: dict) -> go.Figure:
    """Reliability diagram: observed frequency vs mean predicted probability per bin.

    Points on the diagonal are perfectly calibrated; bars (right axis) show how many images
    each bin holds, so sparse, noisy bins are visible as such. Empty bins are not plotted.

    Args:
        metrics: ``metrics.json`` contents; uses ``calibration`` and, for the ECE's CI,
            ``headline.ece``.

    Returns:
        Three traces: bin counts (bar, secondary y axis), the model, the diagonal.

    Raises:
        ValueError: missing section or bin arrays of inconsistent lengths.
    """
    section = _section(metrics, "calibration", "metrics")
    label = section["label"]
    edges = np.asarray(section["bin_edges"], dtype=np.float64)
    predicted = np.asarray(section["mean_predicted"], dtype=np.float64)  # null -> NaN
    observed = np.asarray(section["fraction_positive"], dtype=np.float64)
    counts = np.asarray(section["count"], dtype=np.int64)
    n_bins = counts.size
    if predicted.size != n_bins or observed.size != n_bins or edges.size != n_bins + 1:
        raise ValueError(
            f"calibration needs n+1 bin_edges and n values per bin, got {edges.size} edges, "
            f"{predicted.size} mean_predicted, {observed.size} fraction_positive, {n_bins} count"
        )
    filled = counts > 0
    ece = metrics.get("headline", {}).get("ece", section.get("ece"))

    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(
        go.Bar(
            x=(edges[:-1] + edges[1:]) / 2,
            y=counts,
            width=np.diff(edges),
            customdata=np.stack([edges[:-1], edges[1:]], axis=1),
            marker_color="rgba(43, 93, 138, 0.25)",
            name="images per bin",
            hovertemplate="bin %{customdata[0]:.2f}–%{customdata[1]:.2f}: %{y} images<extra></extra>",
        ),
        secondary_y=True,
    )
    fig.add_trace(
        go.Scatter(
            x=predicted[filled],
            y=observed[filled],
            customdata=counts[filled],
            mode="lines+markers",
            marker_color=_BAR_COLOUR,
            name="model",
            hovertemplate="mean predicted %{x:.3f}<br>observed fraction %{y:.3f}<br>"
            "%{customdata} images<extra></extra>",
        ),
        secondary_y=False,
    )
    fig.add_trace(
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=_CHANCE_LINE, name="perfect calibration",
                   hovertemplate="perfect calibration<extra></extra>"),
        secondary_y=False,
    )
    title = f"Calibration of P({label})"
    if ece is not None:
        title += f", ECE {_format_metric(ece)}"
    _style(fig, title, f"Mean predicted probability of {label}", f"Observed fraction {label}")
    fig.update_xaxes(range=[0, 1])
    fig.update_yaxes(range=[0, 1.02], secondary_y=False)
    fig.update_yaxes(title_text="Images per bin", showgrid=False, secondary_y=True)
    return fig


def headline_table(metrics: dict) -> pd.DataFrame:
    """Headline test metrics with their 95% bootstrap CIs.

    Args:
        metrics: ``metrics.json`` contents.

    Returns:
        Index ``metric`` (human-readable names, in file order); columns ``value`` (float, NaN
        when undefined) and ``95% CI`` (str, e.g. ``"0.912 [0.881, 0.940]"``; "n/a" for a null
        value or bound).

    Raises:
        ValueError: no ``headline`` section.
    """
    headline = _section(metrics, "headline", "metrics")
    positive = metrics.get("positive_label", "positive class")
    table = pd.DataFrame(
        {
            "value": [_metric_value(entry) for entry in headline.values()],
            "95% CI": [_format_metric(entry) for entry in headline.values()],
        },
        index=pd.Index([_metric_name(key, positive) for key in headline], name="metric"),
    )
    return table


def task_scores_table(metrics: Mapping) -> pd.DataFrame:
    """Localisation scores and extra one-vs-rest tasks (e.g. abnormal vs normal), with 95% CIs and n.

    These sit outside ``headline`` because they answer other questions: does the heatmap point at
    the annotated lesion (pointing game, Zhang et al. 2018; energy inside the lesion), and can the
    model tell any lesion from none, whatever its class. A page shows the table only when it has rows.

    Args:
        metrics: ``metrics.json`` contents; reads the optional ``localisation``,
            ``lesion_map_localisation`` and ``binary_tasks`` sections.

    Returns:
        Index ``score`` (e.g. "Pointing game (Grad-CAM, true class)", "ROC AUC: abnormal vs
        normal"); columns ``value`` (float, NaN when undefined), ``95% CI`` (str) and ``n``
        (Int64 test images scored). Empty (no rows) when neither section exists.

    Examples:
        >>> task_scores_table({}).empty
        True
    """
    names, entries, counts = [], [], []
    for block_name in ("localisation", "lesion_map_localisation"):
        localisation = metrics.get(block_name)
        if not isinstance(localisation, Mapping):
            continue
        how = f"{localisation.get('method', 'heatmap')}, {localisation.get('target', 'true class')}"
        for key, name in (("pointing_game", "Pointing game"), ("energy_inside", "Energy inside lesion")):
            entry = localisation.get(key)
            if isinstance(entry, Mapping):
                names.append(f"{name} ({how})")
                entries.append(entry)
                counts.append(entry.get("n"))
    tasks = metrics.get("binary_tasks")
    if isinstance(tasks, Mapping):
        for task, block in tasks.items():
            positives = ", ".join(block.get("positive_labels", ()))
            names.append(f"ROC AUC: {task.replace('_', ' ')}" + (f" ({positives} positive)" if positives else ""))
            entries.append(block.get("roc_auc"))
            counts.append(metrics.get("n_images"))
    return pd.DataFrame(
        {
            "value": [_metric_value(entry) for entry in entries],
            "95% CI": [_format_metric(entry) for entry in entries],
            "n": pd.array(counts, dtype="Int64"),
        },
        index=pd.Index(names, name="score"),
    )


def per_class_table(metrics: dict) -> pd.DataFrame:
    """Per-class precision, recall and F1 with 95% CIs, and the class's image count.

    Args:
        metrics: ``metrics.json`` contents.

    Returns:
        Index ``class`` (in ``labels`` order when given); columns ``precision (95% CI)``,
        ``recall (95% CI)``, ``F1 (95% CI)`` (str) and ``support`` (int images).

    Raises:
        ValueError: no ``per_class`` section.
    """
    per_class = _section(metrics, "per_class", "metrics")
    classes = [label for label in metrics.get("labels", per_class) if label in per_class]
    rows = {
        "precision (95% CI)": [_format_metric(per_class[c]["precision"]) for c in classes],
        "recall (95% CI)": [_format_metric(per_class[c]["recall"]) for c in classes],
        "F1 (95% CI)": [_format_metric(per_class[c]["f1"]) for c in classes],
        "support": pd.array([per_class[c].get("support") for c in classes], dtype="Int64"),
    }
    return pd.DataFrame(rows, index=pd.Index(classes, name="class"))


def split_table(model_info: dict) -> pd.DataFrame:
    """Images, patients and per-class counts of each data split.

    Args:
        model_info: ``model.json`` contents; uses ``data.splits`` and ``labels``.

    Returns:
        Index ``split``; columns ``images``, ``patients (groups)`` and one per label (image
        counts; missing counts are ``<NA>``), all nullable ``Int64``.

    Raises:
        ValueError: no ``data.splits`` section.
    """
    splits = _section(_section(model_info, "data", "model.json"), "splits", "model.json data")
    labels = model_info.get("labels") or sorted(
        {label for split in splits.values() for label in split.get("per_class", {})}
    )
    columns: dict[str, list] = {"images": [], "patients (groups)": []} | {label: [] for label in labels}
    for split in splits.values():
        columns["images"].append(split.get("images"))
        columns["patients (groups)"].append(split.get("groups"))
        for label in labels:
            columns[label].append(split.get("per_class", {}).get(label))
    return pd.DataFrame(
        {name: pd.array(values, dtype="Int64") for name, values in columns.items()},
        index=pd.Index(list(splits), name="split"),
    )


def comparison_table(model_info: dict) -> pd.DataFrame:
    """Architectures tried for this bundle, side by side, with the selected one marked.

    Rows come from ``model.json`` ``comparison``; when no entry is marked ``selected``, the
    bundle's own architecture is added as the selected row (its metrics then show as "–").

    Args:
        model_info: ``model.json`` contents.

    Returns:
        Index ``architecture``; columns ``parameters`` (Int64), one str column per
        split/metric found (e.g. ``"validation ROC AUC (malignant vs rest)"``, ``"test
        Balanced accuracy"``, formatted like ``"0.880 [0.850, 0.910]"``), and ``selected``
        (bool).
    """
    rows = list(model_info.get("comparison", []))
    if not any(row.get("selected") for row in rows):
        architecture = model_info.get("architecture", {})
        rows.append({"architecture": architecture.get("name", model_info.get("name", "this model")),
                     "n_parameters": architecture.get("n_parameters"), "selected": True})
    positive = model_info.get("positive_label", "positive class")
    metric_columns: dict[tuple[str, str], str] = {}
    for row in rows:
        for split in ("validation", "test"):
            for key in row.get(split, {}):
                metric_columns.setdefault((split, key), f"{split} {_metric_name(key, positive)}")
    table = {"parameters": pd.array([row.get("n_parameters") for row in rows], dtype="Int64")}
    for (split, key), column in metric_columns.items():
        table[column] = [
            _format_metric(row[split][key]) if key in row.get(split, {}) else "–" for row in rows
        ]
    table["selected"] = [bool(row.get("selected")) for row in rows]
    return pd.DataFrame(table, index=pd.Index([row.get("architecture") for row in rows],
                                               name="architecture"))


def _raster_axis(original_px: int, shown_px: int) -> tuple[float, float]:
    """``(x0, dx)`` placing ``shown_px`` cells over ``original_px`` pixels.

    Coordinates are original pixel centres (0 = centre of the first pixel), so hover reads
    positions in the uploaded image whatever the display downscaling.
    """
    step = original_px / shown_px
    return step / 2 - 0.5, step


def probability_map_figure(image: np.ndarray, prob_map: np.ndarray, *, label: str) -> go.Figure:
    """An image with its tile probability map drawn semi-transparently on top.

    For display the image is downscaled to at most ``_IMAGE_MAX_PX`` and the map (nearest
    neighbour, so tile edges and NaN stay sharp) to at most ``_MAP_MAX_PX`` px per side; both
    are placed in original-pixel coordinates. Unprocessed pixels (NaN) are transparent.

    Args:
        image: uint8 HxW grey or HxWx3 RGB, the original image.
        prob_map: float HxW from ``tiling.merge_to_map``, values in [0, 1] or NaN.
        label: the class whose probability the map holds (e.g. ``"malignant"``).

    Returns:
        Two traces: the image and the map (heatmap with a colour bar).

    Raises:
        ValueError: bad image, mismatched sizes or map values outside [0, 1].
    """
    rgb = ensure_rgb(image)
    height, width = rgb.shape[:2]
    if prob_map.shape != (height, width):
        raise ValueError(f"prob_map shape {prob_map.shape} does not match image {(height, width)}")
    processed = prob_map[~np.isnan(prob_map)]
    if processed.size and (processed.min() < 0 or processed.max() > 1):
        raise ValueError(
            f"prob_map values must be in [0, 1] or NaN, got range [{processed.min():.4g}, "
            f"{processed.max():.4g}]"
        )

    shown = shrink_to_fit(rgb, _IMAGE_MAX_PX)
    source = "data:image/png;base64," + base64.b64encode(encode_png(shown)).decode("ascii")
    scale = min(1.0, _MAP_MAX_PX / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    cells = cv2.resize(prob_map.astype(np.float32), size, interpolation=cv2.INTER_NEAREST_EXACT)

    image_x0, image_dx = _raster_axis(width, shown.shape[1])
    image_y0, image_dy = _raster_axis(height, shown.shape[0])
    map_x0, map_dx = _raster_axis(width, size[0])
    map_y0, map_dy = _raster_axis(height, size[1])
    fig = go.Figure()
    fig.add_trace(go.Image(source=source, x0=image_x0, dx=image_dx, y0=image_y0, dy=image_dy,
                           name="image", hoverinfo="skip"))
    fig.add_trace(
        go.Heatmap(
            z=cells,
            x0=map_x0,
            dx=map_dx,
            y0=map_y0,
            dy=map_dy,
            zmin=0,
            zmax=1,
            colorscale="Cividis",  # matches overlay.DEFAULT_COLORMAP
            opacity=0.45,
            hoverongaps=False,
            colorbar={"title": f"P({label})"},
            name=f"P({label})",
            hovertemplate=f"x %{{x:.0f}} px, y %{{y:.0f}} px<br>P({label}) %{{z:.2f}}<extra></extra>",
        )
    )
    _style(fig, f"Probability map: P({label}) per tissue tile (uncoloured = not analysed)",
           "x (px)", "y (px)")
    return fig
