"""A probability map that stands alone as a file: title, colour bar, legend, model and notice around it.

Why: a map PNG is forwarded, pasted into slides and printed without the page it came from; bare
colours then say nothing about what they measure, which model drew them or that it is for research
only. Drawn with OpenCV (no plotting engine or font on the server), text through
``explain.overlay.put_text`` so the unit reads "µm".
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from bcc_model.explain.overlay import COLORMAPS, DEFAULT_COLORMAP, encode_png, ensure_rgb, put_text, shrink_to_fit

__all__ = ["framed_map", "framed_map_png"]

_MAX_SIDE_PX = 1600
_PAD = 16
_BAR_W = 22
_LINE_PX = 20


def _colour_bar(height: int, colormap: str, label: str) -> np.ndarray:
    """A vertical colour bar (1 at the top) with ticks 0, 0.25 ... 1 and its label, on white; type grows with the picture."""
    scale = 0.45 * max(1.0, height / 600)
    thick = 1 + int(scale > 0.8)
    bar_w = int(_BAR_W * scale / 0.45)
    levels = np.linspace(255, 0, height).astype(np.uint8)[:, None].repeat(bar_w, axis=1)
    bar = cv2.cvtColor(cv2.applyColorMap(levels, COLORMAPS[colormap]), cv2.COLOR_BGR2RGB)
    label_w = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)[0][0]
    panel = np.full((height + 2 * _PAD + int(20 * scale / 0.45), max(bar_w + int(70 * scale / 0.45), label_w + 8), 3),
                    255, np.uint8)
    top = _PAD + int(20 * scale / 0.45)
    panel[top:top + height, 8:8 + bar_w] = bar
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = top + int(round((1 - tick) * (height - 1)))
        cv2.line(panel, (8 + bar_w, y), (12 + bar_w, y), (0, 0, 0), thick)
        put_text(panel, f"{tick:.2f}", (16 + bar_w, y + int(5 * scale / 0.45)), scale, thickness=thick)
    put_text(panel, label, (4, top - 8), scale, thickness=thick)
    return panel


def _text_block(width: int, lines: Sequence[str], scale: float = 0.45) -> np.ndarray:
    """White rows of text, one line each, cut to the width; larger type on a wider picture (it is shown shrunk)."""
    scale *= max(1.0, width / 1000)
    line_px = int(round(_LINE_PX * scale / 0.45))
    block = np.full((len(lines) * line_px + _PAD // 2, width, 3), 255, np.uint8)
    max_chars = max(10, int(width / (19 * scale)))
    for i, line in enumerate(lines):
        text = line if len(line) <= max_chars else line[:max_chars - 3] + "..."
        put_text(block, text, (_PAD, (i + 1) * line_px - int(5 * scale / 0.45)), scale, thickness=1 + int(scale > 0.8))
    return block


def framed_map(picture: np.ndarray, *, title: str, bar_label: str, legend: Sequence[str], footer: Sequence[str],
               colormap: str = DEFAULT_COLORMAP) -> np.ndarray:
    """``picture`` (a map already drawn over its image) with a title above, its colour bar to the right,
    and the legend and footer (model, version, research-use notice) below; uint8 RGB."""
    rgb = shrink_to_fit(ensure_rgb(picture), _MAX_SIDE_PX)
    height = rgb.shape[0]
    bar = _colour_bar(height, colormap, bar_label)
    extra = bar.shape[0] - height - 2 * _PAD  # the bar's label sits above the picture's top
    body = np.concatenate([np.full((bar.shape[0], _PAD, 3), 255, np.uint8),
                           np.pad(rgb, ((_PAD + extra, _PAD), (0, 0), (0, 0)), constant_values=255), bar], axis=1)
    width = body.shape[1]
    header = _text_block(width, [title], scale=0.6)
    return np.concatenate([header, body, _text_block(width, [*legend, *footer])], axis=0)


def framed_map_png(picture: np.ndarray, **kwargs) -> bytes:
    """:func:`framed_map` as PNG bytes (the region page's "Download map")."""
    return encode_png(framed_map(picture, **kwargs))
