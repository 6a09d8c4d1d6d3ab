"""ROC, precision-recall and reliability curves of the test split, from ``metrics.json``.

Curves are drawn from the thinned points training stored, with the AUC or average precision in
the legend; a missing section raises ``ValueError`` naming it instead of drawing an empty plot.
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from bcc_model.reporting.plot_style import BAR_COLOUR, CHANCE_LINE, style, unit_square
from bcc_model.reporting.tables import format_metric, number, require_section

__all__ = ["roc_figure", "pr_figure", "calibration_figure"]


def roc_figure(metrics: dict, display: Callable[[str], str] = str) -> go.Figure:
    """ROC curves, one per entry of ``metrics["roc_curves"]``, with AUC in the legend.

    The positive class's AUC also shows its bootstrap 95% CI from the headline metrics.

    Args:
        metrics: ``metrics.json`` contents.

    Returns:
        One trace per curve, then the diagonal chance line.

    Raises:
        ValueError: no ``roc_curves``.
    """
    curves = require_section(metrics, "roc_curves", "metrics")
    headline_auc = metrics.get("headline", {}).get("roc_auc")
    fig = go.Figure()
    for label, curve in curves.items():
        auc = headline_auc if label == metrics.get("positive_label") and headline_auc else curve.get("auc")
        fig.add_trace(
            go.Scatter(
                x=curve["fpr"],
                y=curve["tpr"],
                mode="lines",
                name=f"{display(label)}: AUC {format_metric(auc)}",
                hovertemplate=f"{display(label)}<br>false positive rate %{{x:.3f}}<br>"
                "true positive rate %{y:.3f}<extra></extra>",
            )
        )
    fig.add_trace(
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=CHANCE_LINE, name="chance (AUC 0.5)",
                   hovertemplate="chance<extra></extra>")
    )
    style(fig, f"ROC curve ({metrics.get('split', 'evaluation')} split)",
           "False positive rate (1 − specificity)", "True positive rate (sensitivity)")
    return unit_square(fig)


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


def pr_figure(metrics: dict, display: Callable[[str], str] = str) -> go.Figure:
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
    curves = require_section(metrics, "pr_curves", "metrics")
    fig = go.Figure()
    for label, curve in curves.items():
        fig.add_trace(
            go.Scatter(
                x=curve["recall"],
                y=curve["precision"],
                mode="lines",
                name=f"{display(label)}: AP {number(curve.get('average_precision'))}",
                hovertemplate=f"{display(label)}<br>recall %{{x:.3f}}<br>precision %{{y:.3f}}<extra></extra>",
            )
        )
        prevalence = _prevalence(metrics, label)
        if prevalence is not None:
            fig.add_trace(
                go.Scatter(
                    x=[0, 1],
                    y=[prevalence, prevalence],
                    mode="lines",
                    line=CHANCE_LINE,
                    name=f"chance for {display(label)} (prevalence {prevalence:.3f})",
                    hovertemplate=f"chance: precision = prevalence of {display(label)} "
                    f"({prevalence:.3f})<extra></extra>",
                )
            )
    style(fig, f"Precision-recall curve ({metrics.get('split', 'evaluation')} split)",
           "Recall (sensitivity)", "Precision (positive predictive value)")
    return unit_square(fig)


def calibration_figure(metrics: dict, display: Callable[[str], str] = str) -> go.Figure:
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
    section = require_section(metrics, "calibration", "metrics")
    label = display(section["label"])
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
            marker_color=BAR_COLOUR,
            name="model",
            hovertemplate="mean predicted %{x:.3f}<br>observed fraction %{y:.3f}<br>"
            "%{customdata} images<extra></extra>",
        ),
        secondary_y=False,
    )
    fig.add_trace(
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=CHANCE_LINE, name="perfect calibration",
                   hovertemplate="perfect calibration<extra></extra>"),
        secondary_y=False,
    )
    title = f"Calibration of P({label})"
    if ece is not None:
        title += f", ECE {format_metric(ece)}"
    style(fig, title, f"Mean predicted probability of {label}", f"Observed fraction {label}")
    fig.update_xaxes(range=[0, 1])
    fig.update_yaxes(range=[0, 1.02], secondary_y=False)
    fig.update_yaxes(title_text="Images per bin", showgrid=False, secondary_y=True)
    return fig
