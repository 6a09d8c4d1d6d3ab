"""Plotly figures for tabular (feature-based) predictions.

Kept apart from ``figures.py`` (bundle files and image results) because these explain one
case's feature vector, not a bundle or an image.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

__all__ = ["attribution_figure"]

_TEMPLATE = "plotly_white"  # as in figures.py
_TOWARDS = "#b2182b"  # red: pushes the probability of the explained class up
_AWAY = "#2166ac"  # blue: pushes it down (a red/blue diverging pair readable with common colour blindness)
_BAR_PX = 20


def attribution_figure(names: Sequence[str], values: Sequence[float], *, label: str = "the positive class",
                       feature_values: Sequence[float] | None = None) -> go.Figure:
    """Horizontal bars of per-feature attributions, largest magnitude on top.

    Args:
        names: the F feature names.
        values: F attributions in probability units (e.g. integrated gradients of P(``label``)
            from ``tabular.attributions``): positive values push P(``label``) up.
        label: the explained class, for titles and hover text.
        feature_values: the case's F raw feature values, shown on hover when given.

    Returns:
        One bar trace coloured by sign; the x axis is in percentage points of probability.

    Raises:
        ValueError: lengths differ, or a value is not finite.
    """
    attribution = np.asarray(values, dtype=np.float64)
    if attribution.shape != (len(names),):
        raise ValueError(f"need one attribution per feature: {len(names)} names, shape {attribution.shape}")
    if not np.all(np.isfinite(attribution)):
        raise ValueError("attributions must be finite")
    if feature_values is not None and len(feature_values) != len(names):
        raise ValueError(f"need one feature value per name: {len(names)} names, {len(feature_values)} values")
    order = np.argsort(-np.abs(attribution), kind="stable")
    shown = [str(names[i]) for i in order]
    hover = [f"value {feature_values[i]:g}<br>" if feature_values is not None else "" for i in order]
    fig = go.Figure(
        go.Bar(
            x=100 * attribution[order],
            y=shown,
            orientation="h",
            marker_color=[_TOWARDS if attribution[i] > 0 else _AWAY for i in order],
            customdata=hover,
            hovertemplate=f"%{{y}}<br>%{{customdata}}%{{x:+.2f}} percentage points of P({label})<extra></extra>",
        )
    )
    fig.update_layout(
        # Short, left-aligned to the figure (not the plot area, which the long feature names push right),
        # so a narrow column never clips it.
        title={"text": f"Contributions to P({label})", "subtitle": {"text": f"red: towards {label}, blue: away"},
               "x": 0.01, "xref": "container", "xanchor": "left", "automargin": True},
        xaxis_title=f"Contribution to P({label}), percentage points,<br>relative to the average training case",
        yaxis_title="Feature",
        template=_TEMPLATE,
        height=140 + _BAR_PX * len(shown),
        margin={"t": 80, "r": 40},
    )
    fig.update_traces(cliponaxis=False)
    fig.update_xaxes(automargin=True)
    fig.update_yaxes(categoryorder="array", categoryarray=shown, autorange="reversed")
    return fig
