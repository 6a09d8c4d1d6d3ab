"""CAD-style marks: the local maxima of a lesion map, with their scores.

Why marks and not only a heatmap: a reader checks a handful of numbered places far faster than
a colour field, and marks are what CAD is measured by (FROC, ``evaluation/froc.py``), so the app
shows exactly what was scored. A mark is a peak of the map that no higher value within
``min_distance`` px beats, inside the breast when a breast mask is given.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["Mark", "MARK_FLOOR", "MAX_MARKS", "lesion_marks", "draw_marks", "marks_caption"]

MARK_FLOOR = 0.5
"""Lesion probability below which the app draws no mark (FROC scores every peak)."""
MAX_MARKS = 5


@dataclass(frozen=True)
class Mark:
    """One peak of the lesion map: centre in model-input pixels and the map's value there."""

    x: int
    y: int
    score: float


def lesion_marks(lesion_map: np.ndarray, *, region: np.ndarray | None = None, floor: float = MARK_FLOOR,
                 max_marks: int = MAX_MARKS, min_distance: int = 32) -> list[Mark]:
    """Peaks of ``lesion_map`` (H, W probabilities), highest first.

    Args:
        lesion_map: float (H, W) in [0, 1], at model-input size.
        region: bool (H, W); peaks outside it (background, removed pectoral muscle) are dropped.
        floor: peaks below it are dropped.
        max_marks: at most this many marks.
        min_distance: a peak must be the maximum of its (2d+1)-px square, so one lesion gives one mark.
    """
    values = np.asarray(lesion_map, dtype=np.float32)
    if values.ndim != 2:
        raise ValueError(f"lesion_map must be (H, W), got shape {values.shape}")
    size = 2 * int(min_distance) + 1
    peaks = (values >= cv2.dilate(values, np.ones((size, size), np.uint8))) & (values >= floor)
    if region is not None:
        peaks &= np.asarray(region, bool)
    ys, xs = np.nonzero(peaks)
    order = np.argsort(-values[ys, xs], kind="stable")
    marks: list[Mark] = []
    for i in order:
        # a plateau gives several equal maxima: keep the first of each neighbourhood
        if all(max(abs(int(xs[i]) - m.x), abs(int(ys[i]) - m.y)) > min_distance for m in marks):
            marks.append(Mark(int(xs[i]), int(ys[i]), float(values[ys[i], xs[i]])))
        if len(marks) == max_marks:
            break
    return marks


def draw_marks(image: np.ndarray, marks: list[Mark], *, radius: int = 20, colour: tuple[int, int, int] = (255, 255, 0)) -> np.ndarray:
    """RGB copy of ``image`` with each mark as a numbered circle and its score beside it."""
    from bcc_model.explain.overlay import ensure_rgb

    out = ensure_rgb(image).copy()
    scale = max(out.shape[:2]) / 512
    thick, font = max(1, round(2 * scale)), 0.45 * scale
    for number, mark in enumerate(marks, start=1):
        cv2.circle(out, (mark.x, mark.y), round(radius * scale), colour, thick, cv2.LINE_AA)
        cv2.putText(out, f"{number}: {mark.score:.2f}", (mark.x + round(radius * scale) + 2, mark.y),
                    cv2.FONT_HERSHEY_SIMPLEX, font, colour, thick, cv2.LINE_AA)
    return out


def marks_caption(marks: "tuple[Mark, ...] | list[Mark]") -> str:
    """One sentence naming the numbered marks and their scores, for the caption under the map."""
    if not marks:
        return f"No mark: no peak of the map inside the breast reaches {MARK_FLOOR:.2f}."
    listed = ", ".join(f"{n}: {m.score:.2f}" for n, m in enumerate(marks, start=1))
    return (f"Yellow circles: {len(marks)} mark(s) at the map's peaks of at least {MARK_FLOOR:.2f} "
            f"(lesion probability {listed}).")
