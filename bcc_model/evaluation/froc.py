"""FROC: how many lesions the marks find against how many false marks they cost per image.

The CAD standard (Chakraborty 1989; Bunch et al. 1978): every mark above a threshold either hits
an annotated lesion (the first hit of each lesion counts, further hits are neither) or is a false
mark; sweeping the threshold gives lesion sensitivity against false marks per image, read at
0.5, 1 and 2 false marks. Images of normal breasts count for false marks only. Lesions are the
connected regions of the annotated lesion mask in model pixels (overlapping circles merge).
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from bcc_model.explain.marks import Mark

__all__ = ["FALSE_MARK_RATES", "froc"]

FALSE_MARK_RATES = (0.5, 1.0, 2.0)


def _events(marks: Sequence[Mark], mask: np.ndarray) -> tuple[list[tuple[float, int]], int]:
    """``(score, lesion id or -1 for a false mark)`` of each mark, and the image's number of lesions."""
    n, components = cv2.connectedComponents(np.asarray(mask, np.uint8))
    return [(m.score, int(components[m.y, m.x]) - 1 if components[m.y, m.x] else -1) for m in marks], n - 1


def _sensitivities(events: list[list[tuple[float, int]]], lesions: list[int], rates: Sequence[float]) -> list[float | None]:
    total = sum(lesions)
    if not total or not events:
        return [None] * len(rates)
    flat = sorted(((s, image, lesion) for image, ev in enumerate(events) for s, lesion in ev), key=lambda e: -e[0])
    found, false, best = set(), 0, {rate: 0.0 for rate in rates}
    for score, image, lesion in flat:
        if lesion < 0:
            false += 1
        else:
            found.add((image, lesion))
        for rate in rates:
            if false / len(events) <= rate:
                best[rate] = max(best[rate], len(found) / total)
    return [best[rate] for rate in rates]


def froc(marks: Sequence[Sequence[Mark]], masks: Sequence[np.ndarray], groups: Sequence[str], *,
         rates: Sequence[float] = FALSE_MARK_RATES, n_resamples: int = 1000, seed: int = 0) -> dict:
    """Lesion sensitivity at each false-mark rate, with 95 % CIs from resampling patients.

    Args:
        marks: per image, every mark to score (all peaks, not only those the app draws).
        masks: per image, the bool lesion mask in model pixels (all False for a normal breast).
        groups: per image, its patient, the unit of the bootstrap.
    """
    per_image = [_events(m, mask) for m, mask in zip(marks, masks)]
    events, lesions = [e for e, _ in per_image], [n for _, n in per_image]
    point = _sensitivities(events, lesions, rates)
    rng = np.random.default_rng(seed)
    by_group: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        by_group.setdefault(g, []).append(i)
    names = list(by_group)
    resampled = []
    for _ in range(n_resamples):
        rows = [i for g in rng.choice(len(names), len(names)) for i in by_group[names[g]]]
        resampled.append(_sensitivities([events[i] for i in rows], [lesions[i] for i in rows], rates))
    block = {"images": len(events), "lesions": int(sum(lesions)), "patients": len(names), "sensitivity": {}}
    for j, rate in enumerate(rates):
        values = np.array([r[j] for r in resampled if r[j] is not None], dtype=float)
        ci = [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))] if len(values) else [None, None]
        block["sensitivity"][f"{rate:g}"] = {"value": point[j], "ci95": ci}
    return block
