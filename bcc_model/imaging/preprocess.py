"""Deterministic preprocessing shared by training and prediction.

The steps named in a modality's ``preprocessing`` tuple run here in order, on uint8 pixels,
and produce what the model's input expects: float32 HWC in [0, 255] at ``spec.input_size``.
Training and the app both call ``to_model_input``, so they cannot drift apart.

Every step maps ``(pixels, mask, spec) -> (pixels, mask)``. Intensity steps (``to_grey``,
``to_rgb``, ``clahe``, ``polarity``, ``pectoral_removal``, which blanks pixels in place) leave
the mask alone; geometric steps (``breast_crop``,
``laterality_flip``, ``pad_square``, ``resize``) decide their geometry from the pixels only and
apply exactly that geometry to the mask, so a lesion mask drawn on the original image lands on
the same model pixels as the lesion (``to_model_input_with_mask``).

References:
    Otsu (1979). A threshold selection method from gray-level histograms. IEEE Trans. Syst. Man
        Cybern. 9(1):62-66.
    Zuiderveld (1994). Contrast limited adaptive histogram equalization. Graphics Gems IV, 474-485.
"""

from __future__ import annotations

from typing import Callable, Iterable

import cv2
import numpy as np

from bcc_model.modalities import ModalitySpec

__all__ = [
    "to_model_input", "to_model_input_with_mask", "to_model_batch", "model_view", "view_of_input", "model_view_caption", "STEPS", "breast_box", "faces_right",
    "CLAHE_CLIP_LIMIT", "CLAHE_TILES",
]

Step = Callable[[np.ndarray, np.ndarray | None, ModalitySpec], tuple[np.ndarray, np.ndarray | None]]
"""``(pixels, mask or None, spec) -> (pixels, mask or None)``; see the module docstring."""

# Breast segmentation: pixels above OTSU_FRACTION x Otsu's threshold count as breast. Otsu alone
# (53-107 grey levels on mini-MIAS) splits dense from fatty tissue and cuts the fatty chest-wall
# side off dense breasts; film background is below ~15, so half of it still rejects background.
OTSU_FRACTION = 0.5
# The opening kernel (as a fraction of the shorter side) detaches film labels and edge strips that
# touch the breast through a few pixels; a component smaller than MIN_BREAST_FRACTION of the image
# means "no breast found" and the image is kept whole.
OPENING_FRACTION = 0.02
MIN_BREAST_FRACTION = 0.05
# Dilation (fraction of the shorter side) of the breast component before everything outside it is
# blanked: Otsu's threshold can sit above the faint skin line, which must stay in the image.
MARGIN_FRACTION = 0.01
# Laterality: share of tissue in the outermost fifth of columns on each side.
EDGE_FRACTION = 0.2
# Contrast-limited adaptive histogram equalisation (Zuiderveld 1994) as commonly used on
# mammograms: clip limit 2 (times the mean bin count), 8x8 tiles.
CLAHE_CLIP_LIMIT = 2.0
CLAHE_TILES = (8, 8)


def _check_mask(mask: np.ndarray | None, pixels: np.ndarray) -> np.ndarray | None:
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.shape != pixels.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} differs from the image's {pixels.shape[:2]}")
    return mask.astype(bool)


def _as_grey(pixels: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY) if pixels.ndim == 3 else pixels


# -- intensity steps ------------------------------------------------------------------------

def _to_rgb(pixels: np.ndarray, mask: np.ndarray | None, spec: ModalitySpec):
    if pixels.ndim == 2:
        return np.repeat(pixels[:, :, None], 3, axis=2), mask
    return pixels, mask


def _to_grey(pixels: np.ndarray, mask: np.ndarray | None, spec: ModalitySpec):
    return _as_grey(pixels), mask


def _stain_normalise(pixels: np.ndarray, mask: np.ndarray | None, spec: ModalitySpec):
    """Macenko normalisation to the fixed H&E reference (``imaging/stain.py``); colour only, geometry kept."""
    from bcc_model.imaging.stain import macenko_normalise

    return macenko_normalise(pixels), mask


def _clahe(pixels: np.ndarray, mask: np.ndarray | None, spec: ModalitySpec):
    """CLAHE on the grey image: local contrast of dense tissue, without amplifying noise unboundedly."""
    equaliser = cv2.createCLAHE(clipLimit=CLAHE_CLIP_LIMIT, tileGridSize=CLAHE_TILES)
    return equaliser.apply(_as_grey(pixels)), mask


# -- geometric steps ------------------------------------------------------------------------

def breast_box(grey: np.ndarray) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """Bounding box and mask of the breast: the largest bright connected component.

    Film mammograms hold the breast, a dark background, and bright film labels, orientation
    markers and scanner edge strips. Otsu's threshold (Otsu 1979) on the smoothed image separates
    bright from background; a morphological opening cuts thin bridges between the breast and a
    label or edge strip; the largest connected component is the breast (its holes filled, then
    dilated by a small margin so the faint skin line is kept). The threshold is half of Otsu's,
    because Otsu's own level falls between fatty and dense tissue on dense breasts.

    Args:
        grey: uint8 HxW image.

    Returns:
        ``((x0, y0, x1, y1), mask)``: the box in px (x1, y1 exclusive) and a bool HxW mask of the
        breast. When no component covers ``MIN_BREAST_FRACTION`` of the image (an image that is
        not a mammogram, or a blank one), the box is the whole image and the mask is all True.
    """
    height, width = grey.shape
    smooth = cv2.GaussianBlur(grey, (5, 5), 0)
    otsu, _ = cv2.threshold(smooth, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    bright = np.where(smooth > OTSU_FRACTION * otsu, 255, 0).astype(np.uint8)
    side = max(3, int(round(OPENING_FRACTION * min(height, width))) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
    bright = cv2.morphologyEx(bright, cv2.MORPH_OPEN, kernel)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(bright, connectivity=8)
    if count < 2:
        return (0, 0, width, height), np.ones_like(grey, dtype=bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[largest, cv2.CC_STAT_AREA] < MIN_BREAST_FRACTION * height * width:
        return (0, 0, width, height), np.ones_like(grey, dtype=bool)
    component = (labels == largest).astype(np.uint8)
    contours, _ = cv2.findContours(component, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(component, contours, -1, 1, thickness=cv2.FILLED)
    margin = max(3, int(round(MARGIN_FRACTION * min(height, width))) * 2 + 1)
    component = cv2.dilate(component, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (margin, margin)))
    x, y, w, h = cv2.boundingRect(component)
    return (x, y, x + w, y + h), component.astype(bool)


def _breast_crop(pixels: np.ndarray, mask: np.ndarray | None, spec: ModalitySpec):
    """Blank everything outside the breast (labels, markers) and crop to the breast's box."""
    (x0, y0, x1, y1), breast = breast_box(_as_grey(pixels))
    blanked = np.where(breast[..., None] if pixels.ndim == 3 else breast, pixels, 0).astype(np.uint8)
    cropped_mask = None if mask is None else mask[y0:y1, x0:x1]
    return blanked[y0:y1, x0:x1], cropped_mask


def faces_right(grey: np.ndarray) -> bool:
    """Whether the breast's chest wall is on the right of the image.

    The breast is cut off by the image edge along the chest wall, so the columns on that side are
    (nearly) all tissue, while the nipple side tapers to background. The side whose outermost
    ``EDGE_FRACTION`` of columns holds more of the breast mask (``breast_box``) is the chest
    wall (columns are counted within the breast's box, so black film margins do not matter).
    Summed intensity is less reliable: on a dense breast the bright glandular cone lies
    towards the nipple. On mini-MIAS this agrees with the left/right breast of ``Info.txt`` on
    272 of 274 images (the two others are close-ups filling the whole film).
    """
    (x0, _, x1, _), breast = breast_box(grey)
    coverage = breast[:, x0:x1].mean(axis=0)
    edge = max(1, int(round(EDGE_FRACTION * coverage.size)))
    return bool(coverage[-edge:].mean() > coverage[:edge].mean())


def _laterality_flip(pixels: np.ndarray, mask: np.ndarray | None, spec: ModalitySpec):
    """Mirror left/right so the chest wall is always on the left (left and right breasts look alike)."""
    if not faces_right(_as_grey(pixels)):
        return pixels, mask
    return pixels[:, ::-1].copy(), None if mask is None else mask[:, ::-1].copy()


def _polarity(pixels: np.ndarray, mask: np.ndarray | None, spec: ModalitySpec):
    """Invert a mammogram stored with a white background (``mammogram.is_inverted``); others unchanged."""
    from bcc_model.imaging.mammogram import normalise_polarity

    return normalise_polarity(_as_grey(pixels)), mask


def _pectoral_removal(pixels: np.ndarray, mask: np.ndarray | None, spec: ModalitySpec):
    """Blank the pectoral muscle of an oriented MLO crop (``mammogram.pectoral_mask``; none on CC views)."""
    from bcc_model.imaging.mammogram import pectoral_mask

    grey = _as_grey(pixels)
    return np.where(pectoral_mask(grey), 0, grey).astype(np.uint8), mask


def _pad_square(pixels: np.ndarray, mask: np.ndarray | None, spec: ModalitySpec):
    """Pad the shorter side with black, centred, to a square.

    The model input is square. Squashing a tall breast crop or a wide ultrasound frame into it
    would change the aspect ratio of lesions by up to 2x, and a lesion's shape (round, oval,
    spiculated, taller-than-wide in ultrasound) is diagnostic; padding keeps it.
    """
    height, width = pixels.shape[:2]
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    pad = ((top, side - height - top), (left, side - width - left))
    padded = np.pad(pixels, pad + ((0, 0),) * (pixels.ndim - 2))
    return padded, None if mask is None else np.pad(mask, pad)


def _resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Resize a bool mask by area coverage: a model pixel is inside when >= half of it is.

    A lesion smaller than half a model pixel would vanish; it keeps its most covered pixel(s).
    """
    coverage = cv2.resize(mask.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    out = coverage >= 0.5
    if mask.any() and not out.any():
        out = coverage >= coverage.max()
    return out


def _resize(pixels: np.ndarray, mask: np.ndarray | None, spec: ModalitySpec):
    """Resize to ``spec.input_size`` square (aspect ratio changes unless ``pad_square`` ran first)."""
    size = spec.input_size
    height, width = pixels.shape[:2]
    if (height, width) == (size, size):
        return pixels, mask
    # INTER_AREA averages when shrinking (no aliasing); INTER_LINEAR when enlarging.
    interpolation = cv2.INTER_AREA if height > size or width > size else cv2.INTER_LINEAR
    resized = cv2.resize(pixels, (size, size), interpolation=interpolation)
    return resized, None if mask is None else _resize_mask(mask, size)


STEPS: dict[str, Step] = {
    "to_rgb": _to_rgb,
    "to_grey": _to_grey,
    "clahe": _clahe,
    "breast_crop": _breast_crop,
    "laterality_flip": _laterality_flip,
    "polarity": _polarity,
    "pectoral_removal": _pectoral_removal,
    "pad_square": _pad_square,
    "resize": _resize,
    "stain_normalise": _stain_normalise,
}


def _run(pixels: np.ndarray, mask: np.ndarray | None, spec: ModalitySpec) -> tuple[np.ndarray, np.ndarray | None]:
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3):
        raise ValueError(f"expected uint8 HxW or HxWx3 pixels, got {pixels.dtype} with shape {pixels.shape}")
    unknown = [step for step in spec.preprocessing if step not in STEPS]
    if unknown:
        raise KeyError(f"unknown preprocessing step(s) {unknown}; valid: {', '.join(STEPS)}")
    out, out_mask = pixels, _check_mask(mask, pixels)
    for step in spec.preprocessing:
        out, out_mask = STEPS[step](out, out_mask, spec)
    if out.ndim == 2:
        out = out[:, :, None]
    if out.shape != spec.input_shape:
        raise ValueError(f"preprocessing gave shape {out.shape}, model expects {spec.input_shape}")
    return out.astype(np.float32), out_mask


def to_model_input(pixels: np.ndarray, spec: ModalitySpec) -> np.ndarray:
    """Apply the modality's preprocessing steps to one image.

    Args:
        pixels: uint8 HxW (grey) or HxWx3 (RGB), as returned by ``io.read_image``.
        spec: the modality whose steps and input size apply.

    Returns:
        float32 array of ``spec.input_shape`` with values in [0, 255].
    """
    return _run(pixels, None, spec)[0]


def to_model_input_with_mask(pixels: np.ndarray, mask: np.ndarray, spec: ModalitySpec) -> tuple[np.ndarray, np.ndarray]:
    """``to_model_input`` plus the same crop, flip, padding and resize applied to a region mask.

    Args:
        pixels: uint8 HxW or HxWx3 image.
        mask: HxW mask of the same image (bool, or any dtype where non-zero means inside), e.g. a
            lesion mask from ``datasets/lesions.py``.
        spec: the modality whose steps and input size apply.

    Returns:
        ``(image, mask)``: the float32 model input (as ``to_model_input``) and a bool
        ``(input_size, input_size)`` mask in model pixels.

    Raises:
        ValueError: if the mask's shape differs from the image's.
    """
    image, out_mask = _run(pixels, mask, spec)
    return image, out_mask


def model_view(pixels: np.ndarray, spec: ModalitySpec) -> np.ndarray:
    """What the model sees, for display: uint8 HxW (grey) or HxWx3 at the model's input size.

    Heatmaps live in model-input pixels. For modalities whose preprocessing crops, flips or pads
    (mammography), overlay them on this view, not on the uploaded image, or they are misplaced.
    """
    return view_of_input(to_model_input(pixels, spec))


def view_of_input(model_input: np.ndarray) -> np.ndarray:
    """A preprocessed model input (float32 HxWxC in [0, 255]) as a displayable uint8 HxW or HxWx3 image."""
    view = np.clip(model_input, 0, 255).astype(np.uint8)
    return view[..., 0] if view.shape[-1] == 1 else view


# Past participles of the steps that change what a person sees (geometry or contrast), in the
# words of the caption under a heatmap; colour-space conversions are left out.
_VIEW_WORDS = {"clahe": "contrast-equalised", "polarity": "polarity-normalised", "breast_crop": "cropped",
               "laterality_flip": "oriented", "pectoral_removal": "pectoral muscle removed", "pad_square": "padded"}


def model_view_caption(spec: ModalitySpec) -> str:
    """Caption for ``model_view``: what preprocessing did, so the heatmap's frame is not misread.

    Examples: "as the model sees it (cropped, oriented, padded, resized to 224×224 px)" for
    mammography; "as the model sees it (50×50 px)" for histopathology patches.
    """
    words = [_VIEW_WORDS[step] for step in spec.preprocessing if step in _VIEW_WORDS]
    size = f"{spec.input_size}×{spec.input_size} px"
    words.append(f"resized to {size}" if "resize" in spec.preprocessing else size)
    return f"as the model sees it ({', '.join(words)})"


def to_model_batch(images: Iterable[np.ndarray], spec: ModalitySpec) -> np.ndarray:
    """Stack preprocessed images into a float32 (N, H, W, C) batch."""
    batch = [to_model_input(image, spec) for image in images]
    if not batch:
        return np.zeros((0, *spec.input_shape), dtype=np.float32)
    return np.stack(batch)
