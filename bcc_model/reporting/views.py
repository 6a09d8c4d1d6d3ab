"""The pictures a result is shown with: heatmap and lesion-map panels, composed with their captions.

Why here and not in a page: the app, the HTML report and the batch heatmaps must draw the same
thing with the same words (which frame the heatmap is on, what the green line means, what the
marks are). A page only chooses the options (class, colour map, style, opacity) and lays the
panels out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from bcc_model.analysis.image import Analysis
from bcc_model.explain.cams import LESION_MAP_CAPTION
from bcc_model.explain.marks import draw_marks, marks_caption
from bcc_model.explain.overlay import DEFAULT_COLORMAP, enlarge, outline_region, overlay_heatmap

__all__ = ["Panel", "READABLE_PX", "readable", "heatmap_panel", "lesion_panel", "hung_view"]

READABLE_PX = 260
"""Side a small patch is enlarged to for reading (a 50 px patch is unreadable at native size)."""
_REGION_NOTE = "green line: the breast region the model reads (everything outside it is blanked)"


@dataclass(frozen=True)
class Panel:
    """One picture and the caption that says what it shows."""

    image: np.ndarray
    caption: str


def readable(image: np.ndarray, mpp: float | None = None) -> np.ndarray:
    """Small patches enlarged pixel by pixel (no blur), with a µm scale bar when the scale is known."""
    return enlarge(image, READABLE_PX, mpp) if min(image.shape[:2]) < READABLE_PX // 2 else image


def heatmap_panel(analysis: Analysis, heatmap: np.ndarray, label: str, *, mpp: float | None = None,
                  opacity: float = 0.45, colormap: str = DEFAULT_COLORMAP, style: str = "blend") -> Panel:
    """The Grad-CAM of ``label`` on the model view, with the organ outline where preprocessing cropped to it.

    Args:
        analysis: the image's ``analyse`` result (its model view and breast mask).
        heatmap: float map in [0, 1] over the model view (any size; resized by the overlay).
        label: the class explained, named in the caption.
        mpp: µm per pixel of the model view, for the scale bar of an enlarged patch; ``None``
            for whole-image models (no fixed scale).
        opacity, colormap, style: as ``explain.overlay.overlay_heatmap``.
    """
    image = overlay_heatmap(readable(analysis.view, mpp), heatmap, opacity=opacity, colormap=colormap, style=style)
    caption = f"Grad-CAM for “{label}”, {analysis.view_caption}"
    if analysis.breast_mask is not None:
        image = outline_region(image, analysis.breast_mask)
        caption += f"; {_REGION_NOTE}"
    return Panel(image, caption)


def lesion_panel(analysis: Analysis, *, opacity: float = 0.45, colormap: str = DEFAULT_COLORMAP,
                 style: str = "blend") -> Panel | None:
    """The bundle's lesion map on the model view with its numbered CAD marks; ``None`` without a lesion head."""
    if analysis.lesion_map is None:
        return None
    image = draw_marks(overlay_heatmap(analysis.view, analysis.lesion_map, opacity=opacity, colormap=colormap,
                                       style=style), list(analysis.marks))
    return Panel(image, f"{LESION_MAP_CAPTION} {marks_caption(analysis.marks)}")


def hung_view(analysis: Analysis, side: str) -> np.ndarray:
    """The model view with its CAD marks, as hung in a four-view exam: a right breast mirrored.

    Preprocessing puts every breast's chest wall on the left; radiologists hang the right breast on
    the left of the screen with its chest wall facing the left breast's, so the right one is
    mirrored (its marks with it; their numbers are written after mirroring, so they stay readable).
    """
    view, marks = analysis.view, list(analysis.marks)
    if side == "R":
        view = np.ascontiguousarray(view[:, ::-1])
        marks = [replace(mark, x=view.shape[1] - 1 - mark.x) for mark in marks]
    return draw_marks(view, marks)
