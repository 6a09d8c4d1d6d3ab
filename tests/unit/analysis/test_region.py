"""Tests for bcc_model.region on a region assembled from real sample patches.

Uses the committed histopathology bundle (``weights/histopathology``, or ``BCC_WEIGHTS_DIR``);
falls back to the tiny bundle trained in ``conftest.py`` when none is installed.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from bcc_model.models.bundle import BundleError, load_bundle
from bcc_model.explain.cams import Explainer
from bcc_model.analysis.predictions import predict_images
from bcc_model.analysis.context import NO_CONTEXT, bundle_context, contextual_probabilities
from bcc_model.analysis.region import explain_tile, analyse_region
from tests.support.bundles import shipped_bundle

PATCH = 50
GRID = 4
MARGIN = 2 * PATCH  # white glass right of the tissue block, a whole number of tiles wide


@pytest.fixture(scope="module")
def bundle(histo_spec, request):
    try:
        return shipped_bundle(histo_spec.key)
    except BundleError:
        return load_bundle(histo_spec, request.getfixturevalue("tiny_bundle"), allow_unverified=True)


@pytest.fixture(scope="module")
def explainer(bundle):
    return Explainer(bundle.model, bundle.labels, bundle.info["architecture"]["cam_layer"])


@pytest.fixture(scope="module")
def region_rgb(sample_files) -> np.ndarray:
    """4x4 sample patches at the model's own scale, with a band of white glass on the right."""
    patches = [np.asarray(Image.open(path).convert("RGB")) for path in sample_files[: GRID * GRID]]
    block = np.concatenate([np.concatenate(patches[r * GRID:(r + 1) * GRID], axis=1) for r in range(GRID)], axis=0)
    glass = np.full((block.shape[0], MARGIN, 3), 245, np.uint8)
    return np.concatenate([block, glass], axis=1)


@pytest.fixture(scope="module")
def result(bundle, explainer, region_rgb):
    return analyse_region(bundle, region_rgb, bundle.spec.mpp, explainer=explainer, top_k=4)


def test_tiles_match_single_patch_predictions(bundle, region_rgb, result):
    """At the training scale each tile is a sample patch, so its own probability is the patch's prediction."""
    assert result.n_tiles > 0
    assert result.tiles.skipped_background >= 2 * GRID  # the glass band is skipped
    for (x0, y0, x1, y1), probs in zip(result.tiles.boxes.tolist(), result.patch_probabilities):
        assert (x1 - x0, y1 - y0) == (PATCH, PATCH) and x1 <= GRID * PATCH
        expected = predict_images(bundle, [region_rgb[y0:y1, x0:x1]])[0]
        np.testing.assert_allclose(probs, [expected.probabilities[k] for k in bundle.labels], atol=1e-5)


def test_the_map_carries_the_slide_context_the_bundle_records(bundle, region_rgb, result):
    """Region mode applies the context chosen on whole slides (model.json), and can be run without it."""
    assert result.context == bundle_context(bundle.meta.extras)
    np.testing.assert_allclose(result.probabilities,
                               contextual_probabilities(result.patch_probabilities, result.tiles.boxes, result.context),
                               atol=1e-6)
    if bundle.verified:  # the shipped H&E bundle chose a context on its 7 test slides
        assert result.context.active and not np.allclose(result.probabilities, result.patch_probabilities)
    alone = analyse_region(bundle, region_rgb, bundle.spec.mpp, context=NO_CONTEXT)
    np.testing.assert_allclose(alone.probabilities, result.patch_probabilities, atol=1e-6)


def test_map_flagged_fraction_and_top_tiles(bundle, region_rgb, result):
    positive = result.positive_probabilities
    assert result.prob_map.shape == region_rgb.shape[:2]
    assert np.isnan(result.prob_map[:, GRID * PATCH:]).all()  # glass: not analysed, not 0
    x0, y0, x1, y1 = result.tiles.boxes[0]
    np.testing.assert_allclose(result.prob_map[y0:y1, x0:x1], positive[0], atol=1e-6)
    assert result.flagged_fraction == pytest.approx(np.mean(positive >= bundle.threshold))
    assert len(result.top_indices) == min(4, result.n_tiles)
    assert list(positive[result.top_indices]) == sorted(positive, reverse=True)[: len(result.top_indices)]
    assert result.top_heatmaps.shape == (len(result.top_indices), PATCH, PATCH)
    assert result.top_heatmaps.min() >= 0 and result.top_heatmaps.max() <= 1
    for crop, (x0, y0, x1, y1), prediction in zip(result.top_crops, result.top_boxes, result.top_predictions):
        np.testing.assert_array_equal(crop, region_rgb[y0:y1, x0:x1])
        assert prediction.positive_probability == pytest.approx(float(result.prob_map[y0, x0]), abs=1e-6)


def test_a_clicked_tile_is_shown_with_its_crop_decision_and_heatmap(bundle, explainer, region_rgb, result):
    """What the app shows for a tile clicked on the map: the same crop, probability and Grad-CAM as a top tile."""
    top = int(result.top_indices[0])
    view = explain_tile(bundle, result, region_rgb, top, explainer)
    x0, y0, x1, y1 = view.box
    np.testing.assert_array_equal(view.crop, region_rgb[y0:y1, x0:x1])
    assert view.prediction.positive_probability == pytest.approx(float(result.positive_probabilities[top]), abs=1e-6)
    np.testing.assert_allclose(view.heatmap, result.top_heatmaps[0], atol=1e-5)
    with pytest.raises(IndexError, match="tissue tiles"):
        explain_tile(bundle, result, region_rgb, result.n_tiles, explainer)


def test_finer_scan_is_tiled_at_the_model_scale(bundle, region_rgb, result):
    """The same region scanned at twice the resolution gives the same tiles, twice as large in px."""
    fine = np.repeat(np.repeat(region_rgb, 2, axis=0), 2, axis=1)
    fine_result = analyse_region(bundle, fine, bundle.spec.mpp / 2)
    assert fine_result.n_tiles == result.n_tiles
    np.testing.assert_array_equal(fine_result.tiles.boxes, result.tiles.boxes * 2)
    assert fine_result.top_heatmaps is None  # no explainer given
    np.testing.assert_allclose(fine_result.positive_probabilities, result.positive_probabilities, atol=0.05)


def test_refusals_and_an_image_without_tissue(bundle):
    empty = analyse_region(bundle, np.full((200, 200, 3), 250, np.uint8), bundle.spec.mpp)
    assert empty.n_tiles == 0 and empty.flagged_fraction is None and np.isnan(empty.prob_map).all()
    with pytest.raises(ValueError, match="colour"):
        analyse_region(bundle, np.full((200, 200), 128, np.uint8), bundle.spec.mpp)
    with pytest.raises(ValueError, match="smaller than one"):
        analyse_region(bundle, np.full((40, 40, 3), 128, np.uint8), bundle.spec.mpp)
    whole_image = replace(bundle, spec=replace(bundle.spec, mpp_at_size=512))  # e.g. a mammography model
    with pytest.raises(ValueError, match="fixed-scale patch model"):
        analyse_region(whole_image, np.full((200, 200, 3), 128, np.uint8), 4.0)


def test_progress_is_reported_in_tile_batches_up_to_the_total(bundle, region_rgb, result, monkeypatch):
    import bcc_model.analysis.region as region

    monkeypatch.setattr(region, "PROGRESS_TILES", 5)
    reports = []
    again = analyse_region(bundle, region_rgb, bundle.spec.mpp, progress=lambda done, total: reports.append((done, total)))
    total = result.n_tiles
    assert reports[-1] == (total, total) and len(reports) == -(-total // 5)
    assert [done for done, _ in reports] == sorted(done for done, _ in reports)
    np.testing.assert_allclose(again.probabilities, result.probabilities, atol=1e-6)


def test_a_raising_progress_callback_stops_the_run(bundle, region_rgb, monkeypatch):
    """The app's Cancel button stops the script at the next progress report; nothing is returned."""
    import bcc_model.analysis.region as region

    monkeypatch.setattr(region, "PROGRESS_TILES", 2)

    class Cancelled(Exception):
        pass

    def cancel(done, total):
        raise Cancelled

    with pytest.raises(Cancelled):
        analyse_region(bundle, region_rgb, bundle.spec.mpp, progress=cancel)
