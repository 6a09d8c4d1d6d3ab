"""Random training-time transforms, run inside tf.data on the CPU.

Each transform is a pure function of (image, seed) built on TensorFlow's stateless random ops,
so a seeded run draws the same augmentations every time (deterministic training). Images are
float32 HWC in [0, 255]; outputs stay in that range. Augmentation never runs at prediction time.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

__all__ = ["AUGMENTATIONS", "augment", "HED_FROM_RGB", "RGB_FROM_HED"]

# Ruifrok & Johnston 2001 stain vectors (haematoxylin, eosin, DAB), rows normalised as in
# scikit-image's rgb2hed; the inverse maps stain optical densities back to RGB optical density.
RGB_FROM_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], dtype=np.float32)
RGB_FROM_HED /= np.linalg.norm(RGB_FROM_HED, axis=1, keepdims=True)
HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED).astype(np.float32)

HED_SIGMA = 0.05  # "HED-light" strength of Tellez et al. 2019 (Med Image Anal 58:101544).


def _flip(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    seeds = tf.random.experimental.stateless_split(seed, 2)
    image = tf.image.stateless_random_flip_left_right(image, seeds[0])
    return tf.image.stateless_random_flip_up_down(image, seeds[1])


def _rot90(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    k = tf.random.stateless_uniform([], seed, minval=0, maxval=4, dtype=tf.int32)
    return tf.image.rot90(image, k)


def _hed_jitter(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Perturb haematoxylin/eosin/DAB concentrations: ``s' = s * alpha + beta`` per stain.

    Simulates stain and scanner differences between patients and labs, which is what most
    degrades H&E models on new patients (Tellez et al. 2019).
    """
    seeds = tf.random.experimental.stateless_split(seed, 2)
    alpha = tf.random.stateless_uniform([3], seeds[0], 1.0 - HED_SIGMA, 1.0 + HED_SIGMA)
    beta = tf.random.stateless_uniform([3], seeds[1], -HED_SIGMA, HED_SIGMA)
    rgb = tf.clip_by_value(image / 255.0, 1e-6, 1.0)
    stains = tf.tensordot(-tf.math.log(rgb), HED_FROM_RGB, axes=1)
    stains = stains * alpha + beta
    out = tf.exp(-tf.tensordot(stains, RGB_FROM_HED, axes=1))
    return tf.clip_by_value(out * 255.0, 0.0, 255.0)


def _brightness_contrast(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    seeds = tf.random.experimental.stateless_split(seed, 3)
    image = tf.image.stateless_random_brightness(image, 0.08 * 255.0, seeds[0])
    image = tf.image.stateless_random_contrast(image, 0.85, 1.15, seeds[1])
    if image.shape[-1] == 3:
        image = tf.image.stateless_random_saturation(image, 0.85, 1.15, seeds[2])
    return tf.clip_by_value(image, 0.0, 255.0)


AUGMENTATIONS: dict[str, Callable[[tf.Tensor, tf.Tensor], tf.Tensor]] = {
    "flip": _flip,
    "rot90": _rot90,
    "hed_jitter": _hed_jitter,
    "brightness_contrast": _brightness_contrast,
}


def augment(image: tf.Tensor, seed: tf.Tensor, names: Sequence[str]) -> tf.Tensor:
    """Apply the named transforms in order, each with its own sub-seed of ``seed`` (int64[2])."""
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise KeyError(f"unknown augmentation(s) {unknown}; valid: {', '.join(AUGMENTATIONS)}")
    if not names:
        return image
    seeds = tf.random.experimental.stateless_split(seed, len(names))
    for i, name in enumerate(names):
        image = AUGMENTATIONS[name](image, seeds[i])
    return image
