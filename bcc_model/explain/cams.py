"""Class-activation heatmaps through tf-keras-vis (Grad-CAM family and SmoothGrad).

"What to explain" (a class name) is separate from "how" (a method name). The explainer keeps
one copy of the network whose softmax is replaced by a linear output, made once per model:
gradients of softmax outputs saturate and mix classes, so CAMs are taken on the class logits,
and the app's own model is never mutated (Streamlit sessions share it).
"""

from __future__ import annotations

import threading
from typing import Sequence

import numpy as np

__all__ = ["CAM_METHODS", "DEFAULT_METHOD", "FASTEST_FIRST", "Explainer", "HEATMAP_LIMITATIONS", "LESION_MAP_CAPTION"]

DEFAULT_METHOD = "Grad-CAM"
# Display name -> (tf-keras-vis module, class). References: Selvaraju et al. 2017 (Grad-CAM);
# Chattopadhay et al. 2018 (Grad-CAM++); Wang et al. 2020 (Score-CAM, "Faster" = top-N channels);
# Jiang et al. 2021 (LayerCAM); Smilkov et al. 2017 (SmoothGrad).
CAM_METHODS: dict[str, tuple[str, str]] = {
    "Grad-CAM": ("tf_keras_vis.gradcam", "Gradcam"),
    "Grad-CAM++": ("tf_keras_vis.gradcam_plus_plus", "GradcamPlusPlus"),
    "Faster-ScoreCAM": ("tf_keras_vis.scorecam", "Scorecam"),
    "LayerCAM": ("tf_keras_vis.layercam", "Layercam"),
    "SmoothGrad": ("tf_keras_vis.saliency", "Saliency"),
}
FASTEST_FIRST = ("Grad-CAM", "LayerCAM", "Grad-CAM++", "Faster-ScoreCAM", "SmoothGrad")
"""The methods by cost: one backward pass each for the first three, ``SCORECAM_MAX_N`` forward
passes for Faster-ScoreCAM, ``SMOOTHGRAD_SAMPLES`` backward passes for SmoothGrad."""
SCORECAM_MAX_N = 10  # channels kept by Faster-ScoreCAM
SMOOTHGRAD_SAMPLES = 20
SMOOTHGRAD_NOISE = 0.2  # noise sd as a fraction of the input range (Smilkov et al.: 10-20 %)

HEATMAP_LIMITATIONS = (
    "A heatmap shows which pixels most changed this model's score for the chosen class. It is not a "
    "segmentation of the tumour, it does not show why the model is right or wrong, different methods can "
    "disagree on the same image, and a confident-looking heatmap can accompany a wrong prediction. Coarse "
    "CAMs are upsampled from a low-resolution feature map, so small structures blur. Use heatmaps to "
    "check that the model looks at tissue rather than artefacts, not as evidence of disease."
)

LESION_MAP_CAPTION = (
    "Lesion map: probability of lesion per area from a head trained on lesion outlines. It does not "
    "depend on the class and is not rescaled per image (cold everywhere = no lesion found). The "
    "Training-metrics page shows how often its peak fell inside test lesions.")
"""Caption of the lesion map of bundles trained with a lesion head (``models/lesion_head.py``)."""


def _linear_copy(model):
    """A weight-sharing-free copy of ``model`` whose softmax output is replaced by identity."""
    import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    copy.layers[-1].activation = keras.activations.linear
    return copy


_EPSILON = 1e-7  # keras.backend.epsilon(), which tf-keras-vis' normalisation adds


def _gradcam_graph(model, layer: str):
    """A ``tf.function(batch, class_index) -> (logits, cams)`` for ``model``'s linear copy and CAM ``layer``."""
    import keras
    import tensorflow as tf

    both = keras.Model(model.inputs, [model.output, model.get_layer(layer).output])

    @tf.function(reduce_retracing=True)
    def run(batch, class_index):
        with tf.GradientTape() as tape:
            logits, features = both(batch, training=False)
            score = tf.gather(logits, class_index, axis=-1)
        grads = tape.gradient(score, features)
        weights = tf.reduce_mean(grads, axis=[1, 2], keepdims=True)
        return logits, tf.nn.relu(tf.reduce_sum(features * weights, axis=-1))

    return run


class Explainer:
    """Heatmaps for one model; holds the linear-head copy and one tf-keras-vis object per method.

    Thread-safe: tf-keras-vis objects keep per-call state, so calls are serialised.
    """

    def __init__(self, model, labels: Sequence[str], cam_layer: str = "last_conv") -> None:
        self._model = _linear_copy(model)
        self._labels = tuple(labels)
        self.cam_layer = cam_layer
        self._methods: dict[str, object] = {}
        self._gradcam_graphs: dict[str, object] = {}
        self._lock = threading.Lock()

    @property
    def labels(self) -> tuple[str, ...]:
        return self._labels

    def feature_layers(self) -> list[str]:
        """Layers a CAM can target, deepest first."""
        from bcc_model.models.architectures import feature_layer_names

        return feature_layer_names(self._model)

    def _method(self, name: str):
        if name not in CAM_METHODS:
            raise KeyError(f"unknown heatmap method {name!r}; valid: {', '.join(CAM_METHODS)}")
        if name not in self._methods:
            import importlib

            module, cls = CAM_METHODS[name]
            self._methods[name] = getattr(importlib.import_module(module), cls)(self._model, clone=False)
        return self._methods[name]

    def heatmaps(self, batch: np.ndarray, label: str, *, method: str = DEFAULT_METHOD,
                 layer: str | None = None) -> np.ndarray:
        """Heatmaps for class ``label`` over a preprocessed batch.

        Args:
            batch: float32 (N, H, W, C) model inputs in [0, 255] (``preprocess.to_model_batch``).
            label: class name to explain.
            method: one of ``CAM_METHODS``.
            layer: target layer for CAM methods (default: the model's CAM layer, exactly that layer:
                tf-keras-vis would otherwise step back to the nearest convolution, which in a
                residual network is a branch before the last addition and activation); ignored by
                SmoothGrad, which works on input pixels.

        Returns:
            float32 (N, H, W) in [0, 1], each map scaled to its own maximum.
        """
        from tf_keras_vis.utils.scores import CategoricalScore

        if label not in self._labels:
            raise KeyError(f"unknown class {label!r}; valid: {', '.join(self._labels)}")
        if method == "Grad-CAM":
            return self.gradcam(batch, label, layer=layer)[1]
        score = CategoricalScore([self._labels.index(label)] * len(batch))
        with self._lock:
            visualizer = self._method(method)
            if method == "SmoothGrad":
                maps = visualizer(score, batch, smooth_samples=SMOOTHGRAD_SAMPLES, smooth_noise=SMOOTHGRAD_NOISE)
            elif method == "Faster-ScoreCAM":
                maps = visualizer(score, batch, penultimate_layer=layer or self.cam_layer, max_N=SCORECAM_MAX_N,
                                  seek_penultimate_conv_layer=False)
            else:
                maps = visualizer(score, batch, penultimate_layer=layer or self.cam_layer,
                                  seek_penultimate_conv_layer=False)
        maps = np.nan_to_num(np.asarray(maps, dtype=np.float32).reshape(len(batch), *batch.shape[1:3]))
        return np.clip(maps, 0.0, 1.0)

    def gradcam(self, batch: np.ndarray, label: str, *, layer: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Grad-CAM of class ``label`` in one compiled graph: ``(logits (N, K), maps (N, H, W) in [0, 1])``.

        One forward and one backward pass give the class logits and the CAM layer's weighted
        activations together (Selvaraju et al. 2017: ReLU of the feature maps weighted by their
        spatially averaged gradients); the graph is traced once per layer and reused for every
        batch size. The maps are upsampled and scaled exactly as tf-keras-vis' ``Gradcam`` does
        (linear spline zoom, then each map to [0, 1]), which the parity test checks.
        """
        from scipy.ndimage import zoom

        if label not in self._labels:
            raise KeyError(f"unknown class {label!r}; valid: {', '.join(self._labels)}")
        layer = layer or self.cam_layer
        with self._lock:
            graph = self._gradcam_graphs.get(layer)
            if graph is None:
                graph = self._gradcam_graphs[layer] = _gradcam_graph(self._model, layer)
        logits, cams = (np.asarray(t) for t in graph(np.asarray(batch, np.float32), self._labels.index(label)))
        factors = (1.0, batch.shape[1] / cams.shape[1], batch.shape[2] / cams.shape[2])
        maps = zoom(cams.astype(np.float32), factors, order=1)
        low = maps.min(axis=(1, 2), keepdims=True)
        high = maps.max(axis=(1, 2), keepdims=True)
        maps = (maps - low) / (high - low + _EPSILON)
        return logits, np.clip(np.nan_to_num(maps.astype(np.float32)), 0.0, 1.0)
