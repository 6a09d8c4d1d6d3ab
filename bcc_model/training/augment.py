"""Random training-time transforms, run inside tf.data on the CPU.

Each transform is a pure function of (image, seed) built on TensorFlow's stateless random ops,
so a seeded run draws the same augmentations every time (deterministic training). Images are
float32 HWC in [0, 255]; outputs stay in that range. Augmentation never runs at prediction time.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

__all__ = ["AUGMENTATIONS", "GEOMETRIC", "JPEG_QUALITY", "augment", "HED_FROM_RGB", "RGB_FROM_HED"]

# Ruifrok & Johnston 2001 stain vectors (haematoxylin, eosin, DAB), rows normalised as in
# scikit-image's rgb2hed; the inverse maps stain optical densities back to RGB optical density.
RGB_FROM_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], dtype=np.float32)
RGB_FROM_HED /= np.linalg.norm(RGB_FROM_HED, axis=1, keepdims=True)
HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED).astype(np.float32)

HED_SIGMA = 0.05  # "HED-light" strength of Tellez et al. 2019 (Med Image Anal 58:101544).
HED_SIGMA_STRONG = 0.2  # four times stronger, the order of their "HED-strong" setting

# Whole-image greyscale geometry: positioning differs by a few degrees and centimetres between
# exams and compression/probe pressure changes apparent size, but never by much more.
MAX_ROTATION_DEG = 12.0
ZOOM_RANGE = (0.9, 1.1)
MAX_SHIFT_FRACTION = 0.06
# Exposure / gain: gamma drawn log-uniformly from [1/GAMMA_MAX, GAMMA_MAX].
GAMMA_MAX = 1.3


def _flip(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    seeds = tf.random.experimental.stateless_split(seed, 2)
    image = tf.image.stateless_random_flip_left_right(image, seeds[0])
    return tf.image.stateless_random_flip_up_down(image, seeds[1])


def _flip_lr(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Mirror left/right only: right for ultrasound (probe orientation is arbitrary across the
    breast) but not up/down, which would put the skin below the lesion and its acoustic shadow."""
    return tf.image.stateless_random_flip_left_right(image, seed)


def _affine(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Small rotation about the centre, isotropic zoom and shift; uncovered pixels are black.

    The projective transform maps each output pixel (x, y) back to the input point
    ``R(-theta) [(x, y) - c] / s + c - t`` (c: centre, s: zoom, t: shift in px), sampled
    bilinearly, so a zoom s > 1 enlarges the content.
    """
    seeds = tf.random.experimental.stateless_split(seed, 3)
    height, width = tf.cast(tf.shape(image)[0], tf.float32), tf.cast(tf.shape(image)[1], tf.float32)
    theta = tf.random.stateless_uniform([], seeds[0], -MAX_ROTATION_DEG, MAX_ROTATION_DEG) * (np.pi / 180.0)
    zoom = tf.random.stateless_uniform([], seeds[1], *ZOOM_RANGE)
    shift = tf.random.stateless_uniform([2], seeds[2], -MAX_SHIFT_FRACTION, MAX_SHIFT_FRACTION) * tf.stack([width, height])
    cx, cy = (width - 1.0) / 2.0, (height - 1.0) / 2.0
    cos, sin = tf.cos(theta) / zoom, tf.sin(theta) / zoom
    transform = tf.stack([cos, sin, cx - shift[0] - cos * cx - sin * cy,
                          -sin, cos, cy - shift[1] + sin * cx - cos * cy, 0.0, 0.0])
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None], transforms=transform[None], output_shape=tf.shape(image)[:2],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT")
    return tf.clip_by_value(out[0], 0.0, 255.0)


def _gamma(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """``255 (x / 255) ** g``: film exposure and ultrasound gain change mid-tones, not black/white."""
    log_max = float(np.log(GAMMA_MAX))
    gamma = tf.exp(tf.random.stateless_uniform([], seed, -log_max, log_max))
    return tf.clip_by_value(255.0 * tf.pow(tf.clip_by_value(image / 255.0, 0.0, 1.0), gamma), 0.0, 255.0)


def _rot90(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    k = tf.random.stateless_uniform([], seed, minval=0, maxval=4, dtype=tf.int32)
    return tf.image.rot90(image, k)


def _hed(sigma: float) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """Perturb haematoxylin/eosin/DAB concentrations: ``s' = s * alpha + beta`` per stain, both within ``sigma``.

    Simulates stain and scanner differences between patients and labs, which is what most
    degrades H&E models on new patients (Tellez et al. 2019); ``hed_jitter`` is their light
    setting, ``hed_jitter_strong`` four times that.
    """

    def jitter(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        seeds = tf.random.experimental.stateless_split(seed, 2)
        alpha = tf.random.stateless_uniform([3], seeds[0], 1.0 - sigma, 1.0 + sigma)
        beta = tf.random.stateless_uniform([3], seeds[1], -sigma, sigma)
        rgb = tf.clip_by_value(image / 255.0, 1e-6, 1.0)
        stains = tf.tensordot(-tf.math.log(rgb), HED_FROM_RGB, axes=1)
        stains = stains * alpha + beta
        out = tf.exp(-tf.tensordot(stains, RGB_FROM_HED, axes=1))
        return tf.clip_by_value(out * 255.0, 0.0, 255.0)

    return jitter


def _brightness_contrast(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    seeds = tf.random.experimental.stateless_split(seed, 3)
    image = tf.image.stateless_random_brightness(image, 0.08 * 255.0, seeds[0])
    image = tf.image.stateless_random_contrast(image, 0.85, 1.15, seeds[1])
    if image.shape[-1] == 3:
        image = tf.image.stateless_random_saturation(image, 0.85, 1.15, seeds[2])
    return tf.clip_by_value(image, 0.0, 255.0)


JPEG_QUALITY = (30, 95)
"""Quality range of the lossy re-encoding augmentation (half of the images are re-encoded)."""


def _jpeg(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Re-encode half of the images as JPEG at a random quality in ``JPEG_QUALITY``.

    Uploads arrive re-saved by browsers, viewers and PACS exports: the same patch as lossy WebP
    moved a verdict from "malignant 90 %" to "indeterminate 68 %". Training on compressed copies
    teaches the model to ignore block artefacts; the model card reports robustness to them.
    """
    seeds = tf.random.experimental.stateless_split(seed, 2)
    coded = tf.image.stateless_random_jpeg_quality(image / 255.0, JPEG_QUALITY[0], JPEG_QUALITY[1], seeds[0]) * 255.0
    keep = tf.random.stateless_uniform([], seeds[1]) < 0.5
    return tf.where(keep, image, tf.reshape(coded, tf.shape(image)))


AUGMENTATIONS: dict[str, Callable[[tf.Tensor, tf.Tensor], tf.Tensor]] = {
    "flip": _flip,
    "flip_lr": _flip_lr,
    "affine": _affine,
    "gamma": _gamma,
    "rot90": _rot90,
    "hed_jitter": _hed(HED_SIGMA),
    "hed_jitter_strong": _hed(HED_SIGMA_STRONG),
    "brightness_contrast": _brightness_contrast,
    "jpeg": _jpeg,
}


# Transforms that move pixels: a lesion mask must follow them; the others change values only.
GEOMETRIC = frozenset({"flip", "flip_lr", "affine", "rot90"})


def augment(image: tf.Tensor, seed: tf.Tensor, names: Sequence[str], mask: tf.Tensor | None = None):
    """Apply the named transforms in order, each with its own sub-seed of ``seed`` (int64[2]).

    With ``mask`` (HxWx1 float in [0, 1], the lesion mask of the image) the geometric transforms
    move it exactly as the image (they run on the stacked channels) and ``(image, mask)`` is
    returned; the image alone comes out the same with or without a mask.
    """
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise KeyError(f"unknown augmentation(s) {unknown}; valid: {', '.join(AUGMENTATIONS)}")
    if names:
        seeds = tf.random.experimental.stateless_split(seed, len(names))
        for i, name in enumerate(names):
            if mask is not None and name in GEOMETRIC:
                channels = image.shape[-1]
                stacked = AUGMENTATIONS[name](tf.concat([image, mask], axis=-1), seeds[i])
                image, mask = stacked[..., :channels], stacked[..., channels:]
            else:
                image = AUGMENTATIONS[name](image, seeds[i])
    return image if mask is None else (image, mask)
