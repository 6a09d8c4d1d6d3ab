"""Slide context for tile maps: each tile's verdict borrows from its neighbours'.

A 50 px patch sees a few cells; a pathologist reading a slide sees the glands around them. IDC
grows in contiguous regions, so a tile whose neighbours all look like carcinoma is more likely
carcinoma than its own patch alone says, and an isolated "IDC" tile in benign stroma less
likely. Region mode and whole-slide mode therefore mix every tile's log-probabilities with the
mean of its tissue neighbours' (glass and missing tiles do not count):

    z' = (1 - weight) * z_tile + weight * mean(z_neighbours within radius tiles)

and take the softmax. ``weight`` 0 is the patch model alone. The weight and radius are not
guessed: training chooses them by leave-one-slide-out over the complete slides of its test
patients (``evaluation.slides``) and records the choice as ``region_context`` in the bundle's
``model.json``; a bundle without it runs without context. Single-patch uploads never use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import cv2
import numpy as np

__all__ = ["RegionContext", "NO_CONTEXT", "CONTEXT_CANDIDATES", "bundle_context", "contextual_probabilities"]

_EPS = 1e-6


@dataclass(frozen=True)
class RegionContext:
    """How much of a tile's log-probabilities comes from its neighbours (``weight``) within ``radius`` tiles."""

    weight: float = 0.0
    radius: int = 1

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight < 1.0 or self.radius < 1:
            raise ValueError(f"region context needs 0 <= weight < 1 and radius >= 1, got {self.weight}, {self.radius}")

    @property
    def active(self) -> bool:
        return self.weight > 0.0

    def describe(self) -> str:
        """Words for captions and cards."""
        if not self.active:
            return "each tile on its own patch (no slide context)"
        return (f"each tile's log-odds mixed {self.weight:.0%} with the mean of its tissue neighbours within "
                f"{self.radius} tile{'s' if self.radius > 1 else ''}")

    def to_json(self) -> dict:
        return {"weight": self.weight, "radius": self.radius}


NO_CONTEXT = RegionContext()

CONTEXT_CANDIDATES: tuple[RegionContext, ...] = (NO_CONTEXT,) + tuple(
    RegionContext(weight, radius) for radius in (1, 2, 3) for weight in (0.2, 0.4, 0.6, 0.8))
"""What training's leave-one-slide-out compares (the patch model alone first)."""


def bundle_context(extras: Mapping) -> RegionContext:
    """The ``region_context`` a bundle's ``model.json`` records (``BundleSpec.extras``); none without it."""
    block = extras.get("region_context")
    if not block:
        return NO_CONTEXT
    return RegionContext(weight=float(block["weight"]), radius=int(block["radius"]))


def contextual_probabilities(probabilities: np.ndarray, boxes: np.ndarray, context: RegionContext,
                             step: float | None = None) -> np.ndarray:
    """Per-tile probabilities with slide context (the input itself when ``context`` is inactive).

    Args:
        probabilities: float (N, K) calibrated probabilities of the tissue tiles.
        boxes: (N, 4) ``x0, y0, x1, y1`` of each tile, on a regular grid.
        context: weight and radius (in tile sides).
        step: grid spacing in box units; defaults to the tile side (non-overlapping tiles). With
            overlapping tiles the radius still means tile sides, so it spans more grid steps.

    Returns:
        float32 (N, K), rows summing to 1.
    """
    probabilities = np.asarray(probabilities, np.float32)
    if not context.active or len(probabilities) < 2:
        return probabilities
    boxes = np.asarray(boxes, np.float64)
    side = float(np.median(boxes[:, 2] - boxes[:, 0]))
    step = side if step is None else float(step)
    columns = np.rint((boxes[:, 0] - boxes[:, 0].min()) / step).astype(np.int64)
    rows = np.rint((boxes[:, 1] - boxes[:, 1].min()) / step).astype(np.int64)
    reach = max(1, round(context.radius * side / step))
    kernel = np.ones((2 * reach + 1, 2 * reach + 1), np.float32)
    kernel[reach, reach] = 0.0
    present = np.zeros((rows.max() + 1, columns.max() + 1), np.float32)
    present[rows, columns] = 1.0
    count = cv2.filter2D(present, -1, kernel, borderType=cv2.BORDER_CONSTANT)[rows, columns]
    logs = np.log(np.clip(probabilities, _EPS, 1.0))
    mixed = np.empty_like(logs)
    for k in range(logs.shape[1]):
        grid = np.zeros_like(present)
        grid[rows, columns] = logs[:, k]
        total = cv2.filter2D(grid, -1, kernel, borderType=cv2.BORDER_CONSTANT)[rows, columns]
        neighbours = np.where(count > 0.5, total / np.maximum(count, 1.0), logs[:, k])
        mixed[:, k] = (1.0 - context.weight) * logs[:, k] + context.weight * neighbours
    mixed -= mixed.max(axis=1, keepdims=True)
    out = np.exp(mixed)
    return (out / out.sum(axis=1, keepdims=True)).astype(np.float32)
