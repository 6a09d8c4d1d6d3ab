"""Deterministic preprocessing shared by training and prediction.

The steps named in a modality's ``preprocessing`` tuple run here in order, on uint8 pixels,
and produce what the model's input expects: float32 HWC in [0, 255] at ``spec.input_size``.
Training and the app both call ``to_model_input``, so they cannot drift apart.

Every step maps ``(pixels, mask, spec) -> (pixels, mask)``. Intensity steps (``to_grey``,
``to_rgb``, ``clahe``) leave the mask alone; geometric steps (``pad_square``, ``resize``) decide
their geometry from the pixels only and apply exactly that geometry to the mask, so a lesion mask
drawn on the original image lands on the same model pixels as the lesion
(``to_model_input_with_mask``). A modality adds its own steps with ``register_step`` when it is
imported (mammography's breast crop, laterality flip, polarity and pectoral removal live in
``modalities/mammography/hygiene.py``), under the same contract.

References:
    Zuiderveld (1994). Contrast limited adaptive histogram equalization. Graphics Gems IV, 474-485.
"""

from __future__ import annotations

from typing import Callable, Iterable

import cv2
import numpy as np

from bcc_model.registry import ModalitySpec

__all__ = [
    "to_model_input", "to_model_input_with_mask", "to_model_batch", "model_view", "view_of_input", "model_view_caption",
    "STEPS", "register_step", "region_of_interest", "as_grey", "CLAHE_CLIP_LIMIT", "CLAHE_TILES",
]

Step = Callable[[np.ndarray, np.ndarray | None, ModalitySpec], tuple[np.ndarray, np.ndarray | None]]
"""``(pixels, mask or None, spec) -> (pixels, mask or None)``; see the module docstring."""

# Contrast-limited adaptive histogram equalisation (Zuiderveld 1994) as commonly used on
# mammograms: clip limit 2 (times the mean bin count), 8x8 tiles.
CLAHE_CLIP_LIMIT = 2.0
CLAHE_TILES = (8, 8)
# Images longer than this many model inputs are shrunk to it before the steps (``_shrink_oversized``).
OVERSIZE = 4


def _check_mask(mask: np.ndarray | None, pixels: np.ndarray) -> np.ndarray | None:
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.shape != pixels.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} differs from the image's {pixels.shape[:2]}")
    # A float plane (``imaging.geometry``'s pixel coordinates) keeps its values; anything else is a region.
    return mask.astype(np.float32) if np.issubdtype(mask.dtype, np.floating) else mask.astype(bool)


def as_grey(pixels: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY) if pixels.ndim == 3 else pixels


# -- intensity steps ------------------------------------------------------------------------

def _to_rgb(pixels: np.ndarray, mask: np.ndarray | None, spec: ModalitySpec):
    if pixels.ndim == 2:
        return np.repeat(pixels[:, :, None], 3, axis=2), mask
    return pixels, mask


def _to_grey(pixels: np.ndarray, mask: np.ndarray | None, spec: ModalitySpec):
    return as_grey(pixels), mask


def _stain_normalise(pixels: np.ndarray, mask: np.ndarray | None, spec: ModalitySpec):
    """Macenko normalisation to the fixed H&E reference (``imaging/stain.py``); colour only, geometry kept."""
    from bcc_model.imaging.stain import macenko_normalise

    return macenko_normalise(pixels), mask


def _clahe(pixels: np.ndarray, mask: np.ndarray | None, spec: ModalitySpec):
    """CLAHE on the grey image: local contrast of dense tissue, without amplifying noise unboundedly."""
    equaliser = cv2.createCLAHE(clipLimit=CLAHE_CLIP_LIMIT, tileGridSize=CLAHE_TILES)
    return equaliser.apply(as_grey(pixels)), mask


# -- geometric steps ------------------------------------------------------------------------

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


def _resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a bool mask to ``(width, height)`` by area coverage: a pixel is inside when >= half of it is.

    A lesion smaller than half a model pixel would vanish; it keeps its most covered pixel(s). A
    float plane is resized like the image (area when shrinking, linear when enlarging).
    """
    if mask.dtype == np.float32:
        shrinking = size[0] < mask.shape[1] or size[1] < mask.shape[0]
        return cv2.resize(mask, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    coverage = cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA)
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
    return resized, None if mask is None else _resize_mask(mask, (size, size))


STEPS: dict[str, Step] = {
    "to_rgb": _to_rgb,
    "to_grey": _to_grey,
    "clahe": _clahe,
    "pad_square": _pad_square,
    "resize": _resize,
    "stain_normalise": _stain_normalise,
}


def _shrink_oversized(pixels: np.ndarray, mask: np.ndarray | None, spec: ModalitySpec):
    """Shrink an image far larger than the model's input to ``OVERSIZE`` times it, before any step.

    Why: every step ends at ``input_size`` px, and steps that segment or filter (a breast crop's
    blur, threshold and connected components) cost memory in proportion to the pixels: a 100
    megapixel upload through mammography hygiene took 2.3 GB. At four times the input the steps
    see more detail than the model ever does, and images at training sizes are untouched.
    """
    limit = OVERSIZE * spec.input_size
    height, width = pixels.shape[:2]
    if max(height, width) <= limit:
        return pixels, mask
    scale = limit / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA), None if mask is None else _resize_mask(mask, size)


def _run(pixels: np.ndarray, mask: np.ndarray | None, spec: ModalitySpec) -> tuple[np.ndarray, np.ndarray | None]:
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3):
        raise ValueError(f"expected uint8 HxW or HxWx3 pixels, got {pixels.dtype} with shape {pixels.shape}")
    unknown = [step for step in spec.preprocessing if step not in STEPS]
    if unknown:
        raise KeyError(f"unknown preprocessing step(s) {unknown}; valid: {', '.join(STEPS)}")
    out, out_mask = _shrink_oversized(pixels, _check_mask(mask, pixels), spec)
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
_VIEW_WORDS = {"clahe": "contrast-equalised", "pad_square": "padded"}
# Step -> the region of a model view that the step keeps (a crop to an organ); marks stay inside it.
_REGIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {}


def register_step(name: str, step: Step, *, view_word: str | None = None,
                  region: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
    """Add a modality's own preprocessing step (the core holds only generic ones).

    Args:
        name: the name ``preprocessing`` tuples use; must be new.
        step: ``(pixels, mask, spec) -> (pixels, mask)`` (see the module docstring).
        view_word: the participle the heatmap caption uses for it (``model_view_caption``).
        region: for a step that crops to an organ, ``view -> bool mask`` of that organ in a
            model view (``region_of_interest``).
    """
    if name in STEPS and STEPS[name] is not step:
        raise ValueError(f"preprocessing step {name!r} is already registered")
    STEPS[name] = step
    if view_word:
        _VIEW_WORDS[name] = view_word
    if region is not None:
        _REGIONS[name] = region


def region_of_interest(view: np.ndarray, spec: ModalitySpec) -> np.ndarray | None:
    """bool mask of the organ a model view shows (marks are kept inside it), or ``None``: the whole view."""
    for step in spec.preprocessing:
        if step in _REGIONS:
            return _REGIONS[step](view)
    return None


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
