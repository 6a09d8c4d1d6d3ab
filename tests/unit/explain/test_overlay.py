"""Tests for bcc_model.overlay: blending, colour order, validation, purity."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from bcc_model.explain.overlay import (
    COLORMAPS,
    DEFAULT_COLORMAP,
    encode_png,
    overlay_heatmap,
    shrink_to_fit,
)


@pytest.fixture
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(40, 60, 3), dtype=np.uint8)


@pytest.fixture
def heatmap() -> np.ndarray:
    # Smaller than the image on purpose: the overlay must resize it.
    return np.linspace(0.0, 1.0, 20 * 30, dtype=np.float32).reshape(20, 30)


def test_default_colormap_is_colour_blind_safe_cividis() -> None:
    assert DEFAULT_COLORMAP.startswith("cividis")
    assert COLORMAPS[DEFAULT_COLORMAP] == cv2.COLORMAP_CIVIDIS
    assert list(COLORMAPS)[1:] == ["viridis", "inferno", "jet", "turbo"]


def test_output_shape_and_dtype(image: np.ndarray, heatmap: np.ndarray) -> None:
    out = overlay_heatmap(image, heatmap)
    assert out.shape == image.shape and out.dtype == np.uint8


def test_grey_image_gives_rgb(heatmap: np.ndarray) -> None:
    grey = np.full((10, 12), 128, np.uint8)
    assert overlay_heatmap(grey, heatmap).shape == (10, 12, 3)


def test_opacity_zero_returns_the_image(image: np.ndarray, heatmap: np.ndarray) -> None:
    np.testing.assert_array_equal(overlay_heatmap(image, heatmap, opacity=0.0), image)


def test_opacity_one_returns_the_colormap_in_rgb(image: np.ndarray) -> None:
    ones = np.ones((5, 5), np.float32)
    out = overlay_heatmap(image, ones, opacity=1.0, colormap="jet")
    # jet at 1.0 is dark red: R high, B low. In BGR order it would be the other way round.
    expected_bgr = cv2.applyColorMap(np.full((1, 1), 255, np.uint8), cv2.COLORMAP_JET)[0, 0]
    np.testing.assert_array_equal(out, np.broadcast_to(expected_bgr[::-1], out.shape))
    assert out[0, 0, 0] > out[0, 0, 2]


def test_nan_is_drawn_as_zero(image: np.ndarray) -> None:
    nan_map = np.full((5, 5), np.nan)
    zero_map = np.zeros((5, 5))
    np.testing.assert_array_equal(
        overlay_heatmap(image, nan_map, opacity=1.0), overlay_heatmap(image, zero_map, opacity=1.0)
    )


@pytest.mark.parametrize("bad", [-0.1, 1.5, np.inf])
def test_heatmap_out_of_range_raises(image: np.ndarray, bad: float) -> None:
    heat = np.zeros((4, 4))
    heat[1, 1] = bad
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        overlay_heatmap(image, heat)


@pytest.mark.parametrize("opacity", [-0.01, 1.01])
def test_opacity_out_of_range_raises(image: np.ndarray, heatmap: np.ndarray, opacity: float) -> None:
    with pytest.raises(ValueError, match="opacity"):
        overlay_heatmap(image, heatmap, opacity=opacity)


def test_bad_inputs_raise(image: np.ndarray, heatmap: np.ndarray) -> None:
    with pytest.raises(ValueError, match="colormap"):
        overlay_heatmap(image, heatmap, colormap="rainbow")
    with pytest.raises(ValueError, match="uint8"):
        overlay_heatmap(image.astype(np.float32), heatmap)
    with pytest.raises(ValueError, match="2-D"):
        overlay_heatmap(image, heatmap[None])


def test_inputs_not_mutated(image: np.ndarray) -> None:
    heat = np.array([[np.nan, 0.5], [1.0, 0.0]], np.float32)
    image_before, heat_before = image.copy(), heat.copy()
    overlay_heatmap(image, heat, opacity=0.7)
    np.testing.assert_array_equal(image, image_before)
    np.testing.assert_array_equal(heat, heat_before)  # NaN compares equal here


def test_shrink_to_fit_and_png_round_trip(image: np.ndarray) -> None:
    assert shrink_to_fit(image, 100) is image
    small = shrink_to_fit(image, 30)
    assert small.shape == (20, 30, 3)
    decoded = cv2.imdecode(np.frombuffer(encode_png(image), np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(decoded[:, :, ::-1], image)  # lossless, RGB preserved


def test_enlarge_repeats_pixels_and_draws_a_scale_bar():
    from bcc_model.explain.overlay import enlarge

    patch = np.random.default_rng(0).integers(0, 256, (50, 50, 3), dtype=np.uint8)
    plain = enlarge(patch, 256)
    assert plain.shape == (300, 300, 3)
    np.testing.assert_array_equal(plain[::6, ::6], patch)  # each pixel a 6 x 6 block: no smoothing
    barred = enlarge(patch, 256, mpp=4.0)
    assert (barred[-12:-8, 8:8 + 75] == 0).all(), "a 50 µm bar is 12.5 px of the patch, 75 px enlarged"
    big = np.zeros((600, 800, 3), np.uint8)
    assert enlarge(big, 256).shape == big.shape


def test_outline_and_high_value_styles_leave_the_stain_as_it_is():
    from bcc_model.explain.overlay import HIGH_LEVEL, overlay_heatmap

    image = np.random.default_rng(1).integers(0, 256, (60, 60, 3), dtype=np.uint8)
    heat = np.zeros((60, 60), np.float32)
    heat[20:40, 20:40] = 1.0
    high = overlay_heatmap(image, heat, opacity=0.5, style="high")
    np.testing.assert_array_equal(high[heat < HIGH_LEVEL], image[heat < HIGH_LEVEL])
    assert not np.array_equal(high[25:35, 25:35], image[25:35, 25:35])
    outline = overlay_heatmap(image, heat, style="contour")
    changed = np.any(outline != image, axis=2)
    assert changed.any() and changed.mean() < 0.2, "only the outline is drawn"
    np.testing.assert_array_equal(outline[:10, :10], image[:10, :10])
    with pytest.raises(ValueError, match="overlay style"):
        overlay_heatmap(image, heat, style="glow")
