"""Deterministic preprocessing shared by training and prediction.

The steps named in a modality's ``preprocessing`` tuple run here in order, on uint8 pixels,
and produce what the model's input expects: float32 HWC in [0, 255] at ``spec.input_size``.
Training and the app both call ``to_model_input``, so they cannot drift apart.
"""

from __future__ import annotations

from typing import Callable, Iterable

import cv2
import numpy as np

from .modalities import ModalitySpec

__all__ = ["to_model_input", "to_model_batch", "STEPS"]


def _to_rgb(pixels: np.ndarray, spec: ModalitySpec) -> np.ndarray:
    if pixels.ndim == 2:
        return np.repeat(pixels[:, :, None], 3, axis=2)
    return pixels


def _to_grey(pixels: np.ndarray, spec: ModalitySpec) -> np.ndarray:
    if pixels.ndim == 3:
        return cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    return pixels


def _resize(pixels: np.ndarray, spec: ModalitySpec) -> np.ndarray:
    size = spec.input_size
    height, width = pixels.shape[:2]
    if (height, width) == (size, size):
        return pixels
    # INTER_AREA averages when shrinking (no aliasing); INTER_LINEAR when enlarging.
    interpolation = cv2.INTER_AREA if height > size or width > size else cv2.INTER_LINEAR
    return cv2.resize(pixels, (size, size), interpolation=interpolation)


STEPS: dict[str, Callable[[np.ndarray, ModalitySpec], np.ndarray]] = {
    "to_rgb": _to_rgb,
    "to_grey": _to_grey,
    "resize": _resize,
}


def to_model_input(pixels: np.ndarray, spec: ModalitySpec) -> np.ndarray:
    """Apply the modality's preprocessing steps to one image.

    Args:
        pixels: uint8 HxW (grey) or HxWx3 (RGB), as returned by ``io.read_image``.
        spec: the modality whose steps and input size apply.

    Returns:
        float32 array of ``spec.input_shape`` with values in [0, 255].
    """
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3):
        raise ValueError(f"expected uint8 HxW or HxWx3 pixels, got {pixels.dtype} with shape {pixels.shape}")
    out = pixels
    for step in spec.preprocessing:
        out = STEPS[step](out, spec)
    if out.ndim == 2:
        out = out[:, :, None]
    if out.shape != spec.input_shape:
        raise ValueError(f"preprocessing gave shape {out.shape}, model expects {spec.input_shape}")
    return out.astype(np.float32)


def to_model_batch(images: Iterable[np.ndarray], spec: ModalitySpec) -> np.ndarray:
    """Stack preprocessed images into a float32 (N, H, W, C) batch."""
    batch = [to_model_input(image, spec) for image in images]
    if not batch:
        return np.zeros((0, *spec.input_shape), dtype=np.float32)
    return np.stack(batch)
