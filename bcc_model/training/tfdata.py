"""The tf.data input pipeline of training: cached pixels, seeded augmentation, class weights.

Lesion masks travel with their images (``LesionTargets``) so the same augmentation moves both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from bcc_model.datasets.weights import case_weights
from bcc_model.registry import ModalitySpec

__all__ = ["LesionTargets", "class_weights", "patient_weights", "make_dataset"]


@dataclass(frozen=True)
class LesionTargets:
    """Lesion masks of a split for lesion-map supervision (``models/lesion_head.py``).

    Attributes:
        masks: uint8 (N, S, S), 1 on lesion pixels of the model input.
        known: bool (N,), False where the image's lesion geometry is unknown (its mask is empty).
        grid: side of the lesion-map grid the masks are pooled to.
    """

    masks: np.ndarray
    known: np.ndarray
    grid: int

    @classmethod
    def from_masks(cls, masks: Sequence[np.ndarray | None], size: int, grid: int) -> "LesionTargets":
        """From ``lesions.model_space_masks`` entries (``None``: unknown geometry)."""
        stacked = np.zeros((len(masks), size, size), dtype=np.uint8)
        for i, mask in enumerate(masks):
            if mask is not None:
                stacked[i] = mask
        return cls(stacked, np.array([m is not None for m in masks], dtype=bool), grid)


def class_weights(y: np.ndarray, n_classes: int) -> dict[int, float]:
    """Balanced weights ``n / (k * n_c)`` so each class carries equal total weight in the loss."""
    counts = np.bincount(y, minlength=n_classes).astype(float)
    return {c: float(len(y) / (n_classes * counts[c])) if counts[c] else 0.0 for c in range(n_classes)}


def patient_weights(y: np.ndarray, groups: Sequence[str], n_classes: int,
                    prevalence: Sequence[float] | None = None) -> np.ndarray:
    """float32 (N,) sample weights: every patient carries the same total weight, then every class.

    Why: in the H&E data one patient has 2 patches and another 700; unweighted, the large ones
    decide what the model learns and the small ones (most patients) barely count. Each sample
    first gets its ``datasets.weights.case_weights`` (the patient's share, spread over its
    patches by ``prevalence``: under-sampled negatives count ``1 / fraction``); the classes are
    then rebalanced on those weights (each class the same total); the weights are scaled to
    mean 1 so the learning rate keeps its meaning.
    """
    weights = case_weights(groups, prevalence)
    per_class = np.bincount(y, weights=weights, minlength=n_classes)
    present = per_class > 0
    balance = np.where(present, weights.sum() / (present.sum() * np.where(present, per_class, 1.0)), 0.0)
    weights = weights * balance[y]
    return (weights / weights.mean()).astype(np.float32)


def make_dataset(images: np.ndarray, y: np.ndarray, spec: ModalitySpec, *, batch_size: int, training: bool,
                 seed: int, lesion: LesionTargets | None = None, sample_weights: np.ndarray | None = None):
    """A tf.data pipeline: cache decoded pixels, shuffle + augment (training only), batch, prefetch.

    Augmentation seeds come from ``Dataset.random(seed)``, re-drawn every epoch but identical
    between runs with the same seed.

    With ``lesion`` the elements are ``(x, targets, sample_weights)`` for a model with a lesion
    head (``models/lesion_head.py``): targets hold the one-hot class and the mask max-pooled to the
    lesion grid (a cell is 1 when any of its pixels is lesion), moved by the same augmentation
    as the image; sample weights carry the class weights (training only) and switch the lesion
    loss off for images of unknown geometry.

    With ``sample_weights`` (e.g. :func:`patient_weights`; no lesion head) the elements are
    ``(x, y, weight)`` and the weights replace class weights.
    """
    import tensorflow as tf

    from bcc_model.training.augment import augment
    from bcc_model.models.lesion_head import CLASS_OUTPUT, LESION_OUTPUT

    n_classes = len(spec.labels)
    names = tuple(spec.recipe.augmentation)
    onehot = tf.one_hot(y, n_classes)
    if lesion is None and sample_weights is not None:
        ds = tf.data.Dataset.from_tensor_slices((images, onehot, np.asarray(sample_weights, np.float32))).cache()
    elif lesion is None:
        ds = tf.data.Dataset.from_tensor_slices((images, onehot)).cache()
    else:
        weights = class_weights(y, n_classes) if training else {c: 1.0 for c in range(n_classes)}
        ds = tf.data.Dataset.from_tensor_slices((images, onehot, lesion.masks[..., None], {
            CLASS_OUTPUT: np.array([weights[int(c)] for c in y], dtype=np.float32),
            LESION_OUTPUT: lesion.known.astype(np.float32)})).cache()
    if training:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds))

    def prepare(element, seed_pair=None):
        image = tf.cast(element[0], tf.float32)
        if lesion is None:
            image = augment(image, seed_pair, names) if training else image
            return (image, element[1]) if sample_weights is None else (image, element[1], element[2])
        mask = tf.cast(element[2], tf.float32)
        if training:
            image, mask = augment(image, seed_pair, names, mask)
        cells = tf.image.resize(tf.cast(mask > 0.5, tf.float32), (lesion.grid, lesion.grid), method="area") > 0
        return image, {CLASS_OUTPUT: element[1], LESION_OUTPUT: tf.reshape(tf.cast(cells, tf.float32), [-1])}, element[3]

    ds = ds.map(prepare if training else lambda *element: prepare(element),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
