"""Display-side image helpers: heatmap overlay, PNG encoding and display downscaling.

Everything here takes and returns RGB (uint8, HxWx3); OpenCV's BGR order never leaves this
module. The functions are pure: inputs are never modified, so cached arrays (Streamlit's
``st.cache_data``/``st.cache_resource``) can be passed in safely.

The overlay follows ``show_cam_on_image`` from pytorch-grad-cam (Gildenblat et al.): a colour-
mapped heatmap alpha-blended over the image, refusing heatmaps outside [0, 1] instead of
silently rescaling them, so that the same colour always means the same value.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

import cv2
import numpy as np

OVERLAY_STYLES = ("contour", "high", "blend")
"""How a heatmap is drawn: iso-lines, colour on high values only, or a full blend."""
STYLE_NAMES = {"contour": "outlines", "high": "colour on high values", "blend": "colour blend"}
"""What the app calls each style."""
HIGH_LEVEL = 0.5
"""Heat from which ``"high"`` colours the image."""
CONTOUR_LEVELS = (0.5, 0.75, 0.9)
"""Heat levels ``"contour"`` outlines."""

__all__ = [
    "map_over",
    "map_to_png",
    "put_text",
    "scale_bar",
    "OVERLAY_STYLES",
    "STYLE_NAMES",
    "enlarge",
    "DISPLAY_MAX_PX",
    "for_display",
    "COLORMAPS",
    "DEFAULT_COLORMAP",
    "ensure_rgb",
    "overlay_heatmap",
    "shrink_to_fit",
    "encode_png",
]

COLORMAPS: Mapping[str, int] = MappingProxyType(
    {
        # cividis is designed to read the same for the common colour-vision deficiencies
        # (Nuñez et al., PLoS ONE 13:e0199239, 2018), hence the default.
        "cividis (colour-blind safe)": cv2.COLORMAP_CIVIDIS,
        "viridis": cv2.COLORMAP_VIRIDIS,
        "inferno": cv2.COLORMAP_INFERNO,
        "jet": cv2.COLORMAP_JET,
        "turbo": cv2.COLORMAP_TURBO,
    }
)
"""Display name -> OpenCV colormap constant, in the order the UI should offer them."""

DEFAULT_COLORMAP = next(iter(COLORMAPS))


def ensure_rgb(image: np.ndarray) -> np.ndarray:
    """Check a display image and return it as 3-channel RGB.

    Args:
        image: uint8 array, HxW greyscale or HxWx3 RGB.

    Returns:
        uint8 HxWx3 RGB. The input itself when it already is RGB (not copied: callers must not
        write to the result), otherwise a new array with the grey channel repeated.

    Raises:
        ValueError: wrong dtype, shape or an empty image.
    """
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    if image.ndim == 2:
        rgb = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 3:
        rgb = image
    else:
        raise ValueError(f"image must be HxW grey or HxWx3 RGB, got shape {image.shape}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"image is empty, shape {image.shape}")
    return rgb


def overlay_heatmap(
    image: np.ndarray,
    heatmap: np.ndarray,
    *,
    opacity: float = 0.4,
    colormap: str = DEFAULT_COLORMAP,
    style: str = "blend",
) -> np.ndarray:
    """Draw a colour-mapped heatmap on an image, in one of ``OVERLAY_STYLES``.

    * ``"blend"``: ``(1 - opacity) * image + opacity * colour`` everywhere.
    * ``"high"``: the same blend only where the heat is at least ``HIGH_LEVEL``; elsewhere the
      image is untouched, so most of an H&E stain keeps its true colours.
    * ``"contour"``: the image untouched, with the outlines of the heat at ``CONTOUR_LEVELS``
      drawn in their colour: morphology stays readable under the explanation.

    Args:
        image: uint8 HxW grey or HxWx3 RGB.
        heatmap: real-valued 2-D array of any size, values in [0, 1]; resized bilinearly to the
            image size (bilinear interpolation cannot leave [0, 1]). NaN means "no value" and is
            drawn as 0.
        opacity: weight of the heatmap colour, in [0, 1]; 0 returns the image, 1 the pure
            colour-mapped heatmap.
        colormap: a key of ``COLORMAPS``.
        style: one of ``OVERLAY_STYLES``.

    Returns:
        New uint8 HxWx3 RGB array of the image's size.

    Raises:
        ValueError: bad image, heatmap not 2-D or with values outside [0, 1], opacity outside
            [0, 1], or an unknown colormap.

    Examples:
        >>> img = np.zeros((4, 6), np.uint8)
        >>> overlay_heatmap(img, np.ones((2, 3)), opacity=0.5).shape
        (4, 6, 3)
    """
    rgb = ensure_rgb(image)
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    if colormap not in COLORMAPS:
        raise ValueError(f"unknown colormap {colormap!r}; valid: {', '.join(COLORMAPS)}")
    if style not in OVERLAY_STYLES:
        raise ValueError(f"unknown overlay style {style!r}; valid: {', '.join(OVERLAY_STYLES)}")
    if heatmap.ndim != 2 or heatmap.size == 0:
        raise ValueError(f"heatmap must be a non-empty 2-D array, got shape {heatmap.shape}")
    values = heatmap.astype(np.float32)  # a copy: the caller's array is never modified
    values[np.isnan(values)] = 0.0
    low, high = float(values.min()), float(values.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(f"heatmap values must be in [0, 1], got range [{low:.4g}, {high:.4g}]")

    height, width = rgb.shape[:2]
    values = cv2.resize(values, (width, height), interpolation=cv2.INTER_LINEAR)
    levels = np.rint(values * 255.0).astype(np.uint8)
    colour = cv2.cvtColor(cv2.applyColorMap(levels, COLORMAPS[colormap]), cv2.COLOR_BGR2RGB)
    if style == "contour":
        return _contours(rgb, values, colour)
    # addWeighted rounds and saturates to uint8, and returns a new array.
    blended = cv2.addWeighted(rgb, 1.0 - opacity, colour, opacity, 0.0)
    if style == "high":
        blended = np.where((values >= HIGH_LEVEL)[..., None], blended, rgb).astype(np.uint8)
    return blended


def _contours(rgb: np.ndarray, values: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """The image with the heat's iso-lines at ``CONTOUR_LEVELS``, each in the colour map's colour there."""
    out = rgb.copy()
    thickness = max(1, round(min(rgb.shape[:2]) / 150))
    for level in CONTOUR_LEVELS:
        mask = (values >= level).astype(np.uint8)
        lines, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
        if not lines:
            continue
        y, x = np.argwhere(mask)[0]
        line_colour = tuple(int(c) for c in colour[y, x])
        cv2.drawContours(out, lines, -1, line_colour, thickness)
    return out


def outline_region(image: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int] = (0, 200, 80)) -> np.ndarray:
    """RGB copy of ``image`` with the outline of ``mask`` (any size: scaled to the image) drawn on it."""
    out = ensure_rgb(image).copy()
    scaled = cv2.resize(mask.astype(np.uint8), (out.shape[1], out.shape[0]), interpolation=cv2.INTER_NEAREST)
    lines, _ = cv2.findContours(scaled, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, lines, -1, colour, max(1, round(min(out.shape[:2]) / 200)))
    return out


def shrink_to_fit(image: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale an image so that its longer side is at most ``max_side`` px.

    Used before embedding images in figures and reports: a large H&E region can be tens of
    thousands of pixels wide, far more than a screen or a printed page shows.

    Args:
        image: HxW or HxWxC array (any dtype OpenCV resizes, e.g. uint8 RGB).
        max_side: largest allowed side in px, >= 1.

    Returns:
        The input itself when it already fits (not copied), else a new array resized with
        ``cv2.INTER_AREA`` (averages source pixels, so no aliasing when shrinking).

    Raises:
        ValueError: ``max_side`` < 1.
    """
    if max_side < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side}")
    height, width = image.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1.0:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def encode_png(image: np.ndarray) -> bytes:
    """Encode an RGB or grey uint8 image as PNG bytes, in memory (lossless).

    Args:
        image: uint8 HxW grey or HxWx3 RGB.

    Returns:
        The PNG file contents.

    Raises:
        ValueError: bad image, or OpenCV failed to encode it.
    """
    rgb = ensure_rgb(image)
    ok, buffer = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"PNG encoding failed for an image of shape {image.shape}")
    return buffer.tobytes()


DISPLAY_MAX_PX = 1024
"""Longest side of an image held or shown for display: sharp on a screen, small in memory."""
_MAX_ASPECT = 8.0


def for_display(image: np.ndarray, max_side: int = DISPLAY_MAX_PX) -> np.ndarray:
    """A copy of ``image`` that any image widget can show: at most ``max_side`` px, aspect at most 8:1.

    Why: a 1 x 5000 px upload broke the page while being *displayed* (a thumbnail of a 1 px side
    has a zero side), and a 9,000 x 9,000 px field would be kept at full size just to be shown
    at screen size. Extreme strips are padded with mid-grey to 8:1 before shrinking, so no side
    can round to zero; nothing of the image is cut.

    Args:
        image: uint8 HxW or HxWx3.
        max_side: largest side of the result in px.

    Returns:
        uint8 array of the same channel layout.
    """
    height, width = image.shape[:2]
    long_side, short_side = max(height, width), min(height, width)
    if long_side > _MAX_ASPECT * short_side:
        short_target = int(np.ceil(long_side / _MAX_ASPECT))
        pad_total = short_target - short_side
        before, after = pad_total // 2, pad_total - pad_total // 2
        pad = ((before, after), (0, 0)) if height < width else ((0, 0), (before, after))
        if image.ndim == 3:
            pad = (*pad, (0, 0))
        image = np.pad(image, pad, constant_values=128)
    return np.ascontiguousarray(shrink_to_fit(image, max_side))


def put_text(image: np.ndarray, text: str, origin: tuple[int, int], scale: float = 0.4,
             colour: tuple[int, int, int] = (0, 0, 0), thickness: int = 1) -> None:
    """``cv2.putText`` that also writes "µ" (OpenCV's Hershey fonts have no µ, and "um" is not a unit).

    Why not a TrueType font: none is guaranteed on a fresh machine (Pillow's built-in one lacks µ
    too). The µ is drawn as a "u" whose left stroke runs below the baseline, which is its shape.
    """
    x, y = origin
    font = cv2.FONT_HERSHEY_SIMPLEX
    for i, part in enumerate(text.split("µ")):
        if i:
            (width, height), _ = cv2.getTextSize("u", font, scale, thickness)
            cv2.putText(image, "u", (x, y), font, scale, colour, thickness, cv2.LINE_AA)
            stem = x + max(1, round(0.17 * width))
            cv2.line(image, (stem, y - height // 2), (stem, y + round(0.45 * height)), colour,
                     max(1, thickness), cv2.LINE_AA)
            x += width
        if part:
            cv2.putText(image, part, (x, y), font, scale, colour, thickness, cv2.LINE_AA)
            x += cv2.getTextSize(part, font, scale, thickness)[0][0]


_SCALE_BAR_UM = (5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000)


def enlarge(image: np.ndarray, min_side: int = 256, mpp: float | None = None) -> np.ndarray:
    """A small image made readable: nearest-neighbour upscaling by a whole factor, and a scale bar.

    Why: a 50 px patch stretched by the browser is smoothed into blur; repeating each pixel keeps
    what the model saw (its pixels) visible. With ``mpp`` (µm per pixel of ``image``) a bar of a
    round length (about a quarter of the width) is drawn bottom left, labelled in µm.

    Args:
        image: uint8 HxW or HxWx3.
        min_side: the shorter side is scaled to at least this (whole factors only).
        mpp: µm per pixel of ``image``; ``None`` draws no bar.

    Returns:
        uint8 RGB (HxWx3), ``factor`` times larger; the input itself (as RGB) when it is large enough.
    """
    rgb = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)
    factor = max(1, int(np.ceil(min_side / min(rgb.shape[:2]))))
    big = np.ascontiguousarray(np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1))
    return big if mpp is None or mpp <= 0 else scale_bar(big, mpp / factor)


def scale_bar(image: np.ndarray, mpp: float) -> np.ndarray:
    """``image`` (uint8 RGB, changed in place and returned) with a µm bar of a round length, about a
    third of the width at most, bottom left on a white label."""
    width_um = image.shape[1] * mpp
    length = max((u for u in _SCALE_BAR_UM if u <= width_um / 3), default=_SCALE_BAR_UM[0])
    bar_px = max(2, int(round(length / mpp)))
    x0, y1 = 8, image.shape[0] - 8
    cv2.rectangle(image, (x0 - 3, y1 - 22), (x0 + max(bar_px, 50) + 3, y1 + 3), (255, 255, 255), thickness=-1)
    cv2.rectangle(image, (x0, y1 - 4), (x0 + bar_px, y1), (0, 0, 0), thickness=-1)
    put_text(image, f"{length} µm", (x0, y1 - 9))
    return image


def map_over(image: np.ndarray, prob_map: np.ndarray, *, opacity: float = 0.4,
             colormap: str = DEFAULT_COLORMAP) -> np.ndarray:
    """A probability map over its image, uint8 RGB: processed pixels colour-mapped
    (``overlay_heatmap``), unprocessed ones (NaN) the plain image, so "not analysed" never looks like "0".

    Args:
        image: uint8 HxW grey or HxWx3 RGB, the original image.
        prob_map: float HxW from ``imaging.tiling.merge_to_map``, values in [0, 1] or NaN.
        opacity: heatmap weight in [0, 1].
        colormap: a key of ``COLORMAPS``.

    Raises:
        ValueError: the map and image sizes differ, or invalid values (see ``overlay_heatmap``).
    """
    rgb = ensure_rgb(image)
    if prob_map.shape != rgb.shape[:2]:
        raise ValueError(f"prob_map shape {prob_map.shape} does not match image {rgb.shape[:2]}")
    blended = overlay_heatmap(rgb, prob_map, opacity=opacity, colormap=colormap)
    unprocessed = np.isnan(prob_map)
    blended[unprocessed] = rgb[unprocessed]
    return blended


def map_to_png(image: np.ndarray, prob_map: np.ndarray, *, opacity: float = 0.4,
               colormap: str = DEFAULT_COLORMAP) -> bytes:
    """:func:`map_over` as PNG bytes."""
    return encode_png(map_over(image, prob_map, opacity=opacity, colormap=colormap))
