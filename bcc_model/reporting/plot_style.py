"""One look for every plotly figure: template, colours and titled axes."""

from __future__ import annotations

import plotly.graph_objects as go

__all__ = ["TEMPLATE", "BAR_COLOUR", "GUIDE_COLOUR", "CHANCE_LINE", "style", "unit_square"]

TEMPLATE = "plotly_white"
BAR_COLOUR = "#2b5d8a"  # the app theme's primary colour (.streamlit/config.toml)
GUIDE_COLOUR = "#4a5563"  # thresholds, chance lines
CHANCE_LINE = {"dash": "dash", "color": GUIDE_COLOUR, "width": 1}


def style(fig: go.Figure, title: str, x_title: str, y_title: str) -> go.Figure:
    """Template, titles, and room for them: the title pushes the plot down and labels never clip."""
    fig.update_layout(title={"text": title, "automargin": True}, xaxis_title=x_title, yaxis_title=y_title,
                      template=TEMPLATE, margin={"t": 70, "r": 40})
    fig.update_xaxes(automargin=True)
    fig.update_yaxes(automargin=True)
    return fig


def unit_square(fig: go.Figure) -> go.Figure:
    """Fix both axes to [0, 1] with equal scale, as curves in ROC/PR space should be drawn."""
    fig.update_xaxes(range=[0, 1], constrain="domain")
    fig.update_yaxes(range=[0, 1.02], scaleanchor="x", scaleratio=1, constrain="domain")
    return fig
