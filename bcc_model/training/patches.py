"""Lesion-patch pre-training: teach the network what a lesion looks like before it sees whole images.

A whole mammogram's label says only that a lesion is somewhere in ~50,000 model pixels; with
~200 training images a network from scratch mostly learns breast density and shape. Patches
cut around annotated lesion centres (labelled with their image's class) and random
breast-tissue patches from normal images give it the lesion's appearance directly. The
architectures are fully convolutional up to global average pooling, so the patch network's
weights fit the whole-image network unchanged; whole-image training then starts from them.
This is the patch-then-whole-image recipe of Shen et al. (2019), without their ImageNet start.

Patches are cut from the preprocessed model inputs (same crop, flip, padding and scale as the
whole-image model), so no second preprocessing path exists.

References:
    Shen, Margolies, Rothstein, Fluder, McBride & Sieh (2019). Deep learning to improve breast
        cancer detection on screening mammography. Scientific Reports 9:12495.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Sequence

import numpy as np

from bcc_model.registry import ModalitySpec

__all__ = ["extract_patches", "pretrained_model"]


def _crop(image: np.ndarray, row: int, col: int, size: int) -> np.ndarray:
    """``size`` x ``size`` window centred on (row, col), shifted to stay inside the image."""
    height, width = image.shape[:2]
    top = int(np.clip(row - size // 2, 0, height - size))
    left = int(np.clip(col - size // 2, 0, width - size))
    return image[top:top + size, left:left + size]


def extract_patches(images: np.ndarray, masks: Sequence[np.ndarray | None], y: np.ndarray, spec: ModalitySpec,
                    *, per_image: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Patches around lesions (lesion classes) and from tissue (other classes).

    Args:
        images: uint8 (N, S, S, C) model inputs.
        masks: per image a bool (S, S) model-space lesion mask, or ``None`` (unknown geometry).
        y: (N,) class indices into ``spec.labels``.
        spec: the modality; ``spec.patch_size`` is the patch side in px.
        per_image: patches drawn per image.
        seed: seed of the centre draws.

    Returns:
        ``(patches, labels)``: uint8 (M, P, P, C) and int (M,). A lesion-class image contributes
        patches centred on random lesion pixels (so each holds lesion, at varied offsets); an
        image of another class contributes patches centred on random non-black (tissue) pixels;
        a lesion-class image without geometry contributes none.

    Raises:
        ValueError: if the spec has no ``patch_fraction``.
    """
    size = spec.patch_size
    if size is None:
        raise ValueError(f"modality {spec.key!r} has no patch_fraction: patch pre-training is not configured")
    lesion_index = {spec.labels.index(label) for label in spec.recipe.lesion_labels}
    rng = np.random.default_rng(seed)
    patches, labels = [], []
    for image, mask, label in zip(images, masks, y):
        if int(label) in lesion_index:
            if mask is None or not mask.any():
                continue
            candidates = np.argwhere(mask)
        else:
            candidates = np.argwhere(image.max(axis=-1) > 0)
            if candidates.size == 0:
                continue
        for row, col in candidates[rng.integers(0, len(candidates), size=per_image)]:
            patches.append(_crop(image, row, col, size))
            labels.append(int(label))
    if not patches:
        return np.zeros((0, size, size, images.shape[-1]), dtype=np.uint8), np.zeros((0,), dtype=int)
    return np.stack(patches).astype(np.uint8), np.asarray(labels, dtype=int)


def pretrained_model(arch: str, spec: ModalitySpec, patches: np.ndarray, labels: np.ndarray, *,
                     compile_fn: Callable, epochs: int, batch_size: int, lr: float, seed: int, verbose: int = 0,
                     validation: tuple[np.ndarray, np.ndarray] | None = None):
    """Train ``arch`` on patches, then return a whole-image model that starts from its weights.

    Args:
        arch: architecture name (``architectures.ARCHITECTURES``) with ``spec.recipe.arch_params[arch]``.
        spec: the modality (whole-image input size, labels, augmentation).
        patches: uint8 (M, P, P, C) from ``extract_patches``.
        labels: (M,) class indices.
        compile_fn: ``compile_fn(model, lr)`` compiles a model (the trainer's optimiser and loss).
        epochs: maximum patch-training epochs.
        batch_size: patches per batch.
        lr: learning rate of the patch training.
        seed: seed of shuffling and augmentation.
        verbose: Keras progress output.
        validation: patches of the validation split; when given, patch training stops early on
            their loss (patience 3) and keeps the best epoch's weights.

    Returns:
        An uncompiled whole-image ``keras.Model`` of ``spec.input_shape`` holding the patch
        network's weights (every weight is independent of the input size).
    """
    from bcc_model.models.architectures import build_model
    from bcc_model.training.tfdata import class_weights, make_dataset

    params = dict(spec.recipe.arch_params[arch])
    patch_spec = replace(spec, input_size=int(patches.shape[1]))
    patch_model = compile_fn(build_model(arch, patch_spec.input_shape, len(spec.labels), **params), lr)
    dataset = make_dataset(patches, labels, patch_spec, batch_size=batch_size, training=True, seed=seed)
    fit_args = {}
    if validation is not None and len(validation[0]):
        import keras

        fit_args = {"validation_data": make_dataset(*validation, patch_spec, batch_size=batch_size, training=False,
                                                    seed=seed),
                    "callbacks": [keras.callbacks.EarlyStopping(monitor="val_loss", patience=3,
                                                                restore_best_weights=True)]}
    patch_model.fit(dataset, epochs=epochs, class_weight=class_weights(labels, len(spec.labels)), verbose=verbose,
                    **fit_args)
    model = build_model(arch, spec.input_shape, len(spec.labels), **params)
    model.set_weights(patch_model.get_weights())
    return model
