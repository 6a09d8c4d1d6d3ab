"""Lesion-map supervision: an auxiliary head that teaches the feature map where the lesion is.

A whole-image label says only that a lesion is somewhere; with a few hundred images a network
from scratch finds shortcuts (breast density, image borders, the pectoral muscle) that do not
carry over to new patients. The data also give each lesion's outline (BUSI masks, MIAS circles),
so during training a 1x1 convolution on the Grad-CAM layer (``last_conv``) predicts, for every
cell of that grid, whether it holds lesion (binary cross-entropy against the max-pooled mask),
beside the class. The classifier and the lesion map share every feature, so the features the
class decision and Grad-CAM read are pulled towards the lesion: multi-task learning (Caruana
1997) of classification with segmentation, as Zhou et al. (2021) did for breast ultrasound.

The bundled classifier is :func:`classifier_only`, the plain flat model, so prediction,
calibration and the CAMs work exactly as for any other bundle. The head's own output also ships:
a per-cell lesion probability that was trained against outlines, which the app shows beside
Grad-CAM. Its file (:data:`LESION_MAP_FILE`) holds only the head (:func:`lesion_head_only`, the
1x1 convolution), and loading reattaches it to the classifier's Grad-CAM layer
(:func:`attach_lesion_head`): a copy of the whole trunk would double the bundle (31 MB more for
a pretrained VGG16) for weights the classifier already holds. Images whose lesion geometry is
unknown get weight 0 in the lesion loss; normal images teach an empty map.

References:
    Caruana (1997). Multitask learning. Machine Learning 28:41-75.
    Zhou, Chen, Li et al. (2021). Multi-task learning for segmentation and classification of
        tumors in 3D automated breast ultrasound images. Medical Image Analysis 70:101918.
"""

from __future__ import annotations


import cv2
import keras
import numpy as np
from keras import layers


__all__ = ["LESION_OUTPUT", "CLASS_OUTPUT", "LESION_MAP_FILE", "add_lesion_head", "classifier_only",
           "lesion_map_model", "lesion_head_only", "attach_lesion_head", "lesion_maps",
           "lesion_grid", "canonical_history"]

CLASS_OUTPUT = "probabilities"
LESION_OUTPUT = "lesion_map"
LESION_MAP_FILE = "lesion_map.keras"
_LESION_CONV = "lesion_conv"


def add_lesion_head(classifier: keras.Model, cam_layer: str = "last_conv") -> keras.Model:
    """A two-output model: the classifier's probabilities and a per-cell lesion probability.

    The lesion map is flattened to ``(grid * grid,)`` so the per-image loss is one number and an
    image's sample weight can switch it off. Every layer stays at the top level of one
    functional model (the classifier's layers are shared, not copied).
    """
    features = classifier.get_layer(cam_layer).output
    cells = layers.Conv2D(1, 1, activation="sigmoid", name=_LESION_CONV)(features)
    lesion = layers.Flatten(name=LESION_OUTPUT)(cells)
    return keras.Model(classifier.inputs, {CLASS_OUTPUT: classifier.get_layer(CLASS_OUTPUT).output,
                                           LESION_OUTPUT: lesion}, name=classifier.name)


def classifier_only(model: keras.Model) -> keras.Model:
    """The single-output classifier inside a model with a lesion head (unchanged without one)."""
    if len(model.outputs) == 1:
        return model
    return keras.Model(model.inputs, model.get_layer(CLASS_OUTPUT).output, name=model.name)


def lesion_map_model(model: keras.Model) -> keras.Model:
    """Image -> (grid, grid, 1) lesion probability per cell, from a model with a lesion head."""
    return keras.Model(model.inputs, model.get_layer(_LESION_CONV).output, name=LESION_OUTPUT)


def lesion_head_only(model: keras.Model) -> keras.Model:
    """The lesion head alone, Grad-CAM-layer features -> (grid, grid, 1): what the bundle stores."""
    conv = model.get_layer(_LESION_CONV)
    features = keras.Input(shape=conv.input.shape[1:], name="features")
    head = layers.Conv2D(1, 1, activation="sigmoid", name=_LESION_CONV)
    outputs = head(features)
    head.set_weights(conv.get_weights())
    return keras.Model(features, outputs, name=LESION_OUTPUT)


def attach_lesion_head(classifier: keras.Model, head: keras.Model, cam_layer: str = "last_conv") -> keras.Model:
    """Image -> (grid, grid, 1) lesion map: a stored head (:func:`lesion_head_only`) on ``classifier``'s features.

    Raises:
        ValueError: the head does not fit the classifier's Grad-CAM layer (another model's head).
    """
    features = classifier.get_layer(cam_layer).output
    if tuple(head.input.shape[1:]) != tuple(features.shape[1:]):
        raise ValueError(f"the lesion head expects features of shape {tuple(head.input.shape[1:])}, but the "
                         f"classifier's {cam_layer!r} gives {tuple(features.shape[1:])}")
    return keras.Model(classifier.inputs, head.get_layer(_LESION_CONV)(features), name=LESION_OUTPUT)


def lesion_maps(map_model: keras.Model, batch: np.ndarray, *, batch_size: int = 16) -> np.ndarray:
    """float32 (N, H, W) lesion probability at model-input size (cells resized bilinearly).

    Unlike a CAM this does not depend on a class: it is the head's estimate of where lesion
    tissue is, trained against outlines, so it can be read as a probability per pixel.
    """
    height, width = batch.shape[1:3]
    cells = map_model.predict(np.asarray(batch, dtype=np.float32), batch_size=batch_size, verbose=0)[..., 0]
    return np.stack([cv2.resize(c.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
                     for c in cells]) if len(cells) else np.zeros((0, height, width), np.float32)


def lesion_grid(model: keras.Model, cam_layer: str = "last_conv") -> int:
    """Side of the lesion-map grid: that of the CAM layer's feature map (7 for 224 px inputs here)."""
    height, width = model.get_layer(cam_layer).output.shape[1:3]
    if height != width:
        raise ValueError(f"lesion map needs a square feature map, got {height}x{width}")
    return int(height)


def canonical_history(history):
    """Rename a two-output training log to the single-output column names.

    ``loss``/``val_loss`` become the class loss (what early stopping watches and what the
    metrics page plots for every bundle), the weighted sum moves to ``total_loss``, and the
    lesion-map loss to ``lesion_loss``. A single-output log is returned unchanged.
    """
    if f"{CLASS_OUTPUT}_loss" not in history.columns:
        return history
    renamed = {}
    for prefix in ("", "val_"):
        renamed[f"{prefix}loss"] = f"{prefix}total_loss"
        renamed[f"{prefix}{LESION_OUTPUT}_loss"] = f"{prefix}lesion_loss"
        for column in history.columns:
            if column.startswith(f"{prefix}{CLASS_OUTPUT}_"):
                renamed[column] = prefix + column[len(f"{prefix}{CLASS_OUTPUT}_"):]
    return history.rename(columns=renamed)
