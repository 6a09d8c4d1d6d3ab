"""Plotly figures for the app, built from bundle files and predictions (curves: ``curves.py``; tables: ``tables.py``).

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
from typing import Callable, Mapping

import cv2
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from bcc_model.explain.overlay import encode_png, ensure_rgb, shrink_to_fit
from bcc_model.reporting.formatting import probability
from bcc_model.reporting.plot_style import BAR_COLOUR, GUIDE_COLOUR, style
from bcc_model.reporting.tables import require_section

__all__ = [
    "probability_bar",
    "history_figures",
    "confusion_figure",
    "probability_map_figure",
]

# Longest side in px of the image and of the probability map embedded in a figure: enough for
# a screen, small enough that the figure's JSON stays around a megabyte.
_IMAGE_MAX_PX = 1024
_MAP_MAX_PX = 256

def _percent(fraction: float) -> str:
    """0.47 -> "47%", 0.475 -> "47.5%": no trailing zeros on thresholds."""
    return f"{100 * fraction:.3g}%"


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
            marker_color=BAR_COLOUR,
            text=[probability(value) for value in values],
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
                          line={"color": GUIDE_COLOUR, "width": 3, "dash": "dash"}, **rows)
    style(fig, title, "Probability (calibrated)", "Class")
    fig.update_traces(cliponaxis=False)  # "100.0%" at the right edge stays readable
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
            fig.add_vline(x=best_epoch, line={"dash": "dot", "color": GUIDE_COLOUR},
                          annotation_text="weights kept")
        style(fig, f"{title} per epoch", "Epoch", title)
        fig.update_xaxes(tickformat="d", dtick=max(1, int(np.ceil(len(epochs) / 10))))  # whole epochs, never 2.5
        if key == "learning_rate":
            fig.update_yaxes(type="log", exponentformat="power")  # 10⁻⁴, not plotly's SI "100µ"
        figures[key] = fig
    return figures


def confusion_figure(metrics: dict, display: Callable[[str], str] = str) -> go.Figure:
    """Confusion matrix as an annotated heatmap: rows true class, columns predicted class.

    Cells show the count and the row percentage (share of that true class); colour encodes the
    row percentage, so a rare class is as readable as a common one.

    Args:
        metrics: ``metrics.json`` contents.
        display: the modality's word for a label (``ModalitySpec.display``).

    Returns:
        One heatmap trace.

    Raises:
        ValueError: missing section or a matrix that is not square over the labels.
    """
    section = require_section(metrics, "confusion_matrix", "metrics")
    labels = [display(label) for label in section["labels"]]
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
        title += f", threshold {metrics['threshold']:.2f}"
    style(fig, title + ")", "Predicted class", "True class")
    fig.update_yaxes(autorange="reversed")
    return fig


def _raster_axis(original_px: int, shown_px: int) -> tuple[float, float]:
    """``(x0, dx)`` placing ``shown_px`` cells over ``original_px`` pixels.

    Coordinates are original pixel centres (0 = centre of the first pixel), so hover reads
    positions in the uploaded image whatever the display downscaling.
    """
    step = original_px / shown_px
    return step / 2 - 0.5, step


def probability_map_figure(image: np.ndarray, prob_map: np.ndarray, *, label: str, opacity: float = 1.0,
                           boxes: np.ndarray | None = None, positive: np.ndarray | None = None,
                           threshold: float | None = None, band: tuple[float, float] | None = None,
                           plot_width_px: int = 800, side_by_side: bool = False,
                           mpp: float | None = None) -> go.Figure:
    """An image with its tile probability map drawn on top (or beside it), sized to the image's shape.

    At the default full opacity the map's colours are exactly those of its colour bar (a blend
    with the stain would shift them); a lower ``opacity`` shows the tissue through it. With
    ``side_by_side`` the tissue alone is drawn left of the map, the two panels zooming and panning
    together, so an opaque map never hides what it describes. With ``boxes`` (the tissue tiles)
    every tile gets a clickable marker at its centre, carrying its index as ``customdata`` (the
    app shows the clicked tile's crop and heatmap); with ``positive`` and ``threshold`` too, the
    tiles at or above the threshold are outlined, so a threshold moved by the user shows at once
    which tiles it flags; with ``band`` too, the tiles inside it (undecided: their conformal set
    holds both classes) are outlined in amber instead. Clicking a tile keeps every outline. With
    ``mpp`` (µm per image pixel) a µm scale bar is drawn bottom left. The figure's height follows
    the image's aspect ratio for a plot ``plot_width_px`` wide, so no empty band sits beside it.

    For display the image is downscaled to at most ``_IMAGE_MAX_PX`` and the map (nearest
    neighbour, so tile edges and NaN stay sharp) to at most ``_MAP_MAX_PX`` px per side; both
    are placed in original-pixel coordinates. Unprocessed pixels (NaN) are transparent.

    Args:
        image: uint8 HxW grey or HxWx3 RGB, the original image.
        prob_map: float HxW from ``tiling.merge_to_map``, values in [0, 1] or NaN.
        label: the class whose probability the map holds (e.g. ``"IDC"``).

    Returns:
        The image and the map (heatmap with a colour bar), the tissue alone first when ``side_by_side``.

    Raises:
        ValueError: bad image, mismatched sizes or map values outside [0, 1].
    """
    from plotly.subplots import make_subplots

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
    panels = 2 if side_by_side else 1
    fig = make_subplots(rows=1, cols=panels, horizontal_spacing=0.03,
                        subplot_titles=("Tissue", f"P({label})") if side_by_side else None)
    tissue = dict(source=source, x0=image_x0, dx=image_dx, y0=image_y0, dy=image_dy, hoverinfo="skip")
    if side_by_side:
        fig.add_trace(go.Image(name="tissue", **tissue), row=1, col=1)
    fig.add_trace(go.Image(name="image", **tissue), row=1, col=panels)
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
            opacity=opacity,
            hoverongaps=False,
            # Below the map, not beside it: on a phone a side bar takes a third of the width from the map.
            colorbar={"title": {"text": f"P({label})", "side": "top"}, "orientation": "h", "y": -0.12,
                      "yanchor": "top", "thickness": 12, "len": 0.6},
            name=f"P({label})",
            hovertemplate=f"x %{{x:.0f}} px, y %{{y:.0f}} px<br>P({label}) %{{z:.2f}}<extra></extra>",
        ), row=1, col=panels,
    )
    if boxes is not None and len(boxes):
        fig.add_trace(_tile_markers(np.asarray(boxes), positive, threshold, label,
                                    plot_width_px / panels / max(width, 1), band), row=1, col=panels)
    style(fig, f"P({label}) per tissue tile", "x (px)", "y (px)")  # short: a phone shows it whole
    aspect = height / max(width, 1)
    fig.update_layout(height=int(np.clip(plot_width_px / panels * aspect + _MAP_MARGIN_PX, 320, 900)),
                      showlegend=False, margin={"l": 50, "r": 10, "t": 60, "b": 110})
    fig.update_xaxes(range=[-0.5, width - 0.5], constrain="domain")
    fig.update_yaxes(range=[height - 0.5, -0.5], scaleanchor="x", scaleratio=1, constrain="domain")
    if side_by_side:  # zoom or pan one panel and the other follows
        fig.update_xaxes(matches="x", row=1, col=2)
        fig.update_yaxes(matches="y", scaleanchor="x2", row=1, col=2)
    if mpp:
        _scale_bar(fig, width, height, mpp, panels)
    return fig


def _scale_bar(fig: go.Figure, width: int, height: int, mpp: float, panels: int) -> None:
    """A µm bar of a round length, about a fifth of the width, bottom left of every panel."""
    lengths = (10, 20, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000)
    length = max((u for u in lengths if u <= width * mpp / 5), default=lengths[0])
    bar_px = length / mpp
    x0, y = 0.04 * width, 0.95 * height
    for panel in range(1, panels + 1):
        axes = {"xref": "x" if panel == 1 else f"x{panel}", "yref": "y" if panel == 1 else f"y{panel}"}
        fig.add_shape(type="line", x0=x0, x1=x0 + bar_px, y0=y, y1=y, line={"color": "black", "width": 4}, **axes)
        fig.add_annotation(x=x0 + bar_px / 2, y=y, text=f"{length:g} µm", showarrow=False, yshift=12,
                           bgcolor="rgba(255,255,255,0.8)", font={"size": 11}, **axes)


_MAP_MARGIN_PX = 110


UNDECIDED_COLOUR = "#ffb000"
"""Amber outline of an undecided tile (its conformal set holds both classes); red marks a flagged one."""


def _tile_markers(boxes: np.ndarray, positive: np.ndarray | None, threshold: float | None, label: str,
                  screen_px_per_px: float, band: tuple[float, float] | None = None) -> go.Scatter:
    """One marker per tissue tile at its centre, about a tile wide on screen: clickable, outlined in
    red where P >= ``threshold``, in amber where P lies in ``band`` (undecided)."""
    centres_x = (boxes[:, 0] + boxes[:, 2] - 1) / 2.0
    centres_y = (boxes[:, 1] + boxes[:, 3] - 1) / 2.0
    flagged = (np.zeros(len(boxes), bool) if positive is None or threshold is None
               else np.asarray(positive) >= threshold)
    undecided = (np.zeros(len(boxes), bool) if positive is None or band is None
                 else (np.asarray(positive) >= band[0]) & (np.asarray(positive) < band[1]))
    side = float(np.median(boxes[:, 2] - boxes[:, 0]))
    hover = ("tile %{customdata}: click to see it" if positive is None
             else f"tile %{{customdata}}: P({label}) %{{text}}, click to see it")
    return go.Scatter(
        x=centres_x, y=centres_y, mode="markers", customdata=np.arange(len(boxes)),
        text=None if positive is None else [f"{p:.2f}" + (" · undecided" if u else " · flagged" if f else "")
                                            for p, u, f in zip(positive, undecided, flagged)],
        marker={"symbol": "square-open", "size": float(np.clip(side * screen_px_per_px, 3.0, 40.0)),
                "color": np.where(undecided, UNDECIDED_COLOUR, np.where(flagged, "#d62728", "rgba(0,0,0,0)")).tolist(),
                "line": {"width": 1.5}},
        hovertemplate=hover + "<extra></extra>", name="tiles",
        # A click selects one tile: every other outline must stay as it was (plotly dims them by default).
        selected={"marker": {"opacity": 1.0}}, unselected={"marker": {"opacity": 1.0}})
