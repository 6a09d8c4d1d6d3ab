"""Slide context: a tile's verdict borrows from its tissue neighbours, and slides choose how much."""

from __future__ import annotations

import numpy as np
import pytest

from bcc_model.analysis.context import NO_CONTEXT, RegionContext, contextual_probabilities
from bcc_model.evaluation.slides import choose_context

SIDE = 50


def _grid(rows: int, cols: int, side: int = SIDE, step: int | None = None) -> np.ndarray:
    step = side if step is None else step
    return np.array([[c * step, r * step, c * step + side, r * step + side] for r in range(rows) for c in range(cols)],
                    np.int64)


def _two_class(p: np.ndarray) -> np.ndarray:
    return np.stack([1 - p, p], axis=1).astype(np.float32)


def test_no_context_is_the_identity_and_rows_stay_probabilities():
    p = _two_class(np.linspace(0.05, 0.95, 25))
    boxes = _grid(5, 5)
    np.testing.assert_array_equal(contextual_probabilities(p, boxes, NO_CONTEXT), p)
    out = contextual_probabilities(p, boxes, RegionContext(0.6, 1))
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-6)
    assert out.dtype == np.float32 and out.shape == p.shape


def test_an_isolated_call_is_pulled_towards_its_neighbours():
    """One 'IDC' tile in benign stroma loses confidence; its benign neighbours barely move."""
    positive = np.full(25, 0.05)
    positive[12] = 0.95  # the centre of a 5 x 5 grid
    out = contextual_probabilities(_two_class(positive), _grid(5, 5), RegionContext(0.6, 1))[:, 1]
    assert out[12] < 0.5  # its own patch said 0.95
    assert np.all(out[np.arange(25) != 12] < 0.2)
    # a tile's result does not depend on the order tiles are listed in
    order = np.random.default_rng(0).permutation(25)
    shuffled = contextual_probabilities(_two_class(positive[order]), _grid(5, 5)[order], RegionContext(0.6, 1))
    np.testing.assert_allclose(shuffled[:, 1], out[order], atol=1e-6)


def test_glass_does_not_count_and_a_lone_tile_keeps_its_own_verdict():
    boxes = np.array([[0, 0, 50, 50], [50, 0, 100, 50], [400, 400, 450, 450]])  # the third has no tissue neighbour
    p = _two_class(np.array([0.1, 0.9, 0.8]))
    out = contextual_probabilities(p, boxes, RegionContext(0.8, 1))
    np.testing.assert_allclose(out[2], p[2], atol=1e-6)
    assert out[0, 1] > 0.1 and out[1, 1] < 0.9


def test_the_radius_means_tile_sides_when_tiles_overlap():
    """At half-tile stride, radius 1 reaches two grid steps: a tile two steps away is a neighbour."""
    boxes = _grid(1, 3, step=SIDE // 2)
    p = _two_class(np.array([0.1, 0.5, 0.9]))
    out = contextual_probabilities(p, boxes, RegionContext(0.5, 1), step=SIDE // 2)
    far = contextual_probabilities(p[[0, 2]], boxes[[0, 2]], RegionContext(0.5, 1), step=SIDE // 2)
    assert far[0, 1] > 0.1 and far[1, 1] < 0.9  # two steps apart, still neighbours
    assert out[1, 1] == pytest.approx(0.5, abs=1e-6)  # symmetric neighbours cancel


def _slide(truth_grid: np.ndarray, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = truth_grid.ravel()
    logits = np.where(truth == 1, 1.0, -1.0) + rng.normal(0, noise, truth.size)
    return truth, _two_class(1 / (1 + np.exp(-logits))), _grid(*truth_grid.shape)


def test_slides_with_contiguous_tumour_choose_context_and_scattered_labels_do_not():
    contiguous = np.zeros((12, 12), int)
    contiguous[3:9, 2:8] = 1
    noisy = [_slide(contiguous, 1.5, seed) for seed in range(3)]
    assert choose_context(noisy, positive_index=1).active
    scattered = np.random.default_rng(7).integers(0, 2, (12, 12))  # a neighbour's label says nothing of a tile's
    assert choose_context([_slide(scattered, 1.0, seed) for seed in range(3)], positive_index=1) == NO_CONTEXT
    assert choose_context([], positive_index=1) == NO_CONTEXT


def test_a_context_outside_its_range_is_refused():
    with pytest.raises(ValueError, match="weight"):
        RegionContext(1.0, 1)
    with pytest.raises(ValueError, match="radius"):
        RegionContext(0.5, 0)
