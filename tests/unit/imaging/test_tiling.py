"""Tests for bcc_model.tiling on a synthetic region assembled from real H&E patches."""

from __future__ import annotations


import cv2
import numpy as np
import pytest
from PIL import Image

from bcc_model.explain.overlay import map_to_png
from bcc_model.imaging.tiling import (
    flagged_fraction,
    magnification_to_mpp,
    merge_to_map,
    tile_image,
    tissue_mask,
    top_tiles,
)
from tests.conftest import ROOT

DATA = ROOT / "samples" / "histopathology"
PATCH = 50
ROWS, COLS = 6, 8
MARGIN = 2 * PATCH  # white glass around the tissue block, a whole number of tiles wide


def _dense_patches(count: int) -> list[np.ndarray]:
    """Real 50x50 IDC patches that are mostly stained (grey < 200 on >= 80% of pixels).

    The selection uses a plain brightness rule, independent of ``tissue_mask``, so that the
    expected "all grid tiles are tissue" does not presume the code under test.
    """
    patches = []
    files = sorted((DATA / "malignant").glob("*.png")) + sorted((DATA / "benign").glob("*.png"))
    for path in files:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
        if rgb.shape == (PATCH, PATCH, 3) and (rgb.mean(axis=2) < 200).mean() >= 0.8:
            patches.append(rgb)
    assert patches, "no dense H&E patch among the samples"
    # The samples are few: repeat them in order to fill the grid.
    return [patches[i % len(patches)] for i in range(count)]


@pytest.fixture(scope="module")
def region() -> tuple[np.ndarray, list[np.ndarray]]:
    """A (6*50 + 2*100) x (8*50 + 2*100) image: a 6x8 grid of real patches on white glass."""
    patches = _dense_patches(ROWS * COLS)
    image = np.full((ROWS * PATCH + 2 * MARGIN, COLS * PATCH + 2 * MARGIN, 3), 245, np.uint8)
    for i, patch in enumerate(patches):
        r, c = divmod(i, COLS)
        top, left = MARGIN + r * PATCH, MARGIN + c * PATCH
        image[top : top + PATCH, left : left + PATCH] = patch
    return image, patches


def test_tissue_mask_separates_glass(region: tuple[np.ndarray, list[np.ndarray]]) -> None:
    image, _ = region
    mask = tissue_mask(image)
    assert mask.dtype == bool and mask.shape == image.shape[:2]
    assert not mask[:MARGIN - 5].any() and not mask[:, :MARGIN - 5].any()
    assert mask[MARGIN:-MARGIN, MARGIN:-MARGIN].mean() > 0.5


def test_native_scale_tiles_are_the_original_patches(region) -> None:
    image, patches = region
    tiles = tile_image(image, image_mpp=4.0, model_mpp=4.0, patch_px=PATCH)
    assert tiles.image_shape == image.shape[:2]
    assert tiles.patches.shape == (ROWS * COLS, PATCH, PATCH, 3)
    assert tiles.patches.dtype == np.uint8
    all_tiles = (image.shape[0] // PATCH) * (image.shape[1] // PATCH)
    assert tiles.skipped_background == all_tiles - ROWS * COLS
    # Row-major order over the grid, pixel-exact, boxes on the 50 px grid.
    for i, (patch, box) in enumerate(zip(tiles.patches, tiles.boxes)):
        r, c = divmod(i, COLS)
        np.testing.assert_array_equal(patch, patches[i])
        x0, y0 = MARGIN + c * PATCH, MARGIN + r * PATCH
        assert box.tolist() == [x0, y0, x0 + PATCH, y0 + PATCH]


def test_finer_image_is_rescaled_to_model_scale(region) -> None:
    image, _ = region
    native = tile_image(image, image_mpp=4.0, model_mpp=4.0, patch_px=PATCH)
    # Pretend the image is at 2 µm/px: it is halved to reach 4 µm/px, so half the tiles per side.
    halved = tile_image(image, image_mpp=2.0, model_mpp=4.0, patch_px=PATCH)
    n_native = len(native.patches) + native.skipped_background
    n_halved = len(halved.patches) + halved.skipped_background
    assert n_halved == n_native // 4
    assert len(halved.patches) == (ROWS // 2) * (COLS // 2)
    assert halved.patches.shape[1:] == (PATCH, PATCH, 3)
    # Boxes are in original pixels: 100 px wide, on a 100 px grid inside the tissue block.
    widths = halved.boxes[:, 2] - halved.boxes[:, 0]
    assert (widths == 2 * PATCH).all() and (halved.boxes % (2 * PATCH) == 0).all()
    assert halved.boxes[:, :2].min() == MARGIN


def test_overlapping_stride(region) -> None:
    image, _ = region
    tiles = tile_image(image, image_mpp=4.0, model_mpp=4.0, patch_px=PATCH, stride_px=PATCH // 2)
    assert len(tiles.patches) > ROWS * COLS
    assert (np.diff(np.unique(tiles.boxes[:, 0])) == PATCH // 2).all()


def test_all_background_gives_no_patches() -> None:
    glass = np.full((200, 300, 3), 240, np.uint8)
    tiles = tile_image(glass, image_mpp=4.0, model_mpp=4.0, patch_px=PATCH)
    assert tiles.patches.shape == (0, PATCH, PATCH, 3)
    assert tiles.boxes.shape == (0, 4)
    assert tiles.skipped_background == 4 * 6


def test_too_small_image_raises() -> None:
    small = np.full((300, 300, 3), 200, np.uint8)
    with pytest.raises(ValueError, match="smaller than one 50x50 patch at 4.0 µm/px"):
        tile_image(small, image_mpp=0.5, model_mpp=4.0, patch_px=PATCH)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"image_mpp": 0.0, "model_mpp": 4.0, "patch_px": 50},
        {"image_mpp": 4.0, "model_mpp": -1.0, "patch_px": 50},
        {"image_mpp": 4.0, "model_mpp": 4.0, "patch_px": 50, "stride_px": 0},
        {"image_mpp": 4.0, "model_mpp": 4.0, "patch_px": 50, "min_tissue_fraction": 1.5},
    ],
)
def test_bad_settings_raise(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        tile_image(np.zeros((100, 100, 3), np.uint8), **kwargs)


def test_grey_image_refused() -> None:
    with pytest.raises(ValueError, match="HxWx3"):
        tile_image(np.zeros((100, 100), np.uint8), image_mpp=4.0, model_mpp=4.0, patch_px=PATCH)


def test_magnification_to_mpp() -> None:
    assert magnification_to_mpp(40) == pytest.approx(0.25)
    assert magnification_to_mpp(2.5) == pytest.approx(4.0)
    assert magnification_to_mpp(20, mpp_at_40x=0.5) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        magnification_to_mpp(0)


def test_merge_to_map_worked_example() -> None:
    boxes = np.array([[0, 0, 2, 2], [1, 0, 3, 2], [0, 2, 1, 3]])
    merged = merge_to_map(boxes, np.array([0.2, 0.6, 1.0]), (3, 4))
    expected = np.array(
        [
            [0.2, 0.4, 0.6, np.nan],  # column 1 is covered by two tiles: mean of 0.2 and 0.6
            [0.2, 0.4, 0.6, np.nan],
            [1.0, np.nan, np.nan, np.nan],  # NaN: no tile, not processed
        ],
        dtype=np.float32,
    )
    assert merged.dtype == np.float32
    np.testing.assert_allclose(merged, expected)


def test_merge_to_map_validates() -> None:
    with pytest.raises(ValueError, match="outside"):
        merge_to_map(np.array([[0, 0, 5, 2]]), np.array([0.5]), (3, 4))
    with pytest.raises(ValueError, match="values"):
        merge_to_map(np.array([[0, 0, 2, 2]]), np.array([0.5, 0.1]), (3, 4))


def test_flagged_fraction_and_top_tiles() -> None:
    values = np.array([0.1, 0.9, 0.47, 0.3, 0.9])
    assert flagged_fraction(values, 0.47) == pytest.approx(3 / 5)  # "at or above"
    np.testing.assert_array_equal(top_tiles(values, 3), [1, 4, 2])
    assert len(top_tiles(values, 10)) == 5
    with pytest.raises(ValueError):
        flagged_fraction(np.array([]), 0.5)
    with pytest.raises(ValueError):
        top_tiles(values, -1)


def test_map_to_png_round_trip(region) -> None:
    image, _ = region
    tiles = tile_image(image, image_mpp=4.0, model_mpp=4.0, patch_px=PATCH)
    values = np.linspace(0, 1, len(tiles.boxes))
    prob_map = merge_to_map(tiles.boxes, values, tiles.image_shape)
    png = map_to_png(image, prob_map)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    decoded = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
    assert decoded.shape == image.shape
    # Unprocessed glass keeps the plain image; processed tissue is tinted.
    np.testing.assert_array_equal(decoded[:MARGIN], image[:MARGIN])
    assert not np.array_equal(decoded[MARGIN:-MARGIN, MARGIN:-MARGIN],
                              image[MARGIN:-MARGIN, MARGIN:-MARGIN])
    with pytest.raises(ValueError, match="shape"):
        map_to_png(image, prob_map[:-1])
