"""Calibrated predictions from a loaded bundle: probabilities, decision and verdict.

Probabilities are always calibrated with the bundle's temperature and labelled with the
bundle's class names; the decision (label, indeterminate) follows the threshold and band chosen
on validation data, so the app, the command lines and evaluation cannot disagree. Single images
go through ``analysis.image.analyse``, which uses these functions.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from bcc_model.models.bundle import Bundle
from bcc_model.models.decision import OperatingPoint, apply_temperature
from bcc_model.imaging.preprocess import to_model_batch

__all__ = ["Prediction", "compiled_forward", "raw_probabilities", "calibrated_probabilities", "predict_images",
           "prediction_at", "set_in_words"]

BATCH_SIZE = 256
INPUT_VALUES_PER_CALL = 1 << 22
"""Upper bound on input values per forward pass: 28 images at 384 x 384. A pretrained trunk's
first block holds 64 float32 channels per pixel at full resolution, so a whole 133-image test
split in one call needs over 5 GB per activation; this bound keeps each call near 1 GB."""


@dataclass(frozen=True)
class Prediction:
    """One image's result. ``probabilities`` maps every label to its calibrated probability.

    ``conformal_set`` holds the classes the bundle cannot rule out at ``level`` (``None`` for a
    bundle without a conformal calibration); ``indeterminate`` is true unless it is exactly ``label``.
    """

    probabilities: dict[str, float]
    label: str
    indeterminate: bool
    positive_label: str
    conformal_set: tuple[str, ...] | None = None
    level: float | None = None

    @property
    def positive_probability(self) -> float:
        return self.probabilities[self.positive_label]


_FORWARD: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def compiled_forward(model):
    """``model(x, training=False)`` as one TensorFlow graph, built once per model.

    Why: called eagerly, a small network spends most of a one-patch prediction dispatching its
    hundred-odd ops one by one from Python (about 30 ms for the H&E SE-ResNet on two cores,
    against about 3 ms as a graph). ``reduce_retracing`` lets one trace serve every batch size.
    """
    import keras
    import tensorflow as tf

    if not isinstance(model, keras.Model):  # any other callable (a stand-in in tests) runs as it is
        return lambda x: model(x, training=False)
    forward = _FORWARD.get(model)
    if forward is None:
        forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        _FORWARD[model] = forward
    return forward


def raw_probabilities(model, batch: np.ndarray, *, batch_size: int = BATCH_SIZE, compiled: bool = False,
                      flips: Sequence[str] = ()) -> np.ndarray:
    """Uncalibrated softmax outputs (N, K) for float32 model inputs (N, H, W, C) in [0, 255].

    ``flips`` (``models.spec.FLIPS``): the outputs of the flipped images are averaged with the
    image's own (test-time augmentation; what the bundle's calibration was fitted on).

    Calls the model on at most ``batch_size`` inputs, fewer for large images
    (:data:`INPUT_VALUES_PER_CALL`), so memory does not grow with the number of images. With
    ``compiled`` it runs as one graph (:func:`compiled_forward`): worth its one-off tracing
    (about a second) for a loaded bundle that serves many calls, not for a model scored once
    during training.
    """
    if len(batch) == 0:
        return np.zeros((0, model.output_shape[-1]), dtype=np.float32)
    forward = compiled_forward(model) if compiled else (lambda x: model(x, training=False))
    return _in_chunks(forward, batch, batch_size, flips)


def _in_chunks(forward, batch: np.ndarray, batch_size: int = BATCH_SIZE, flips: Sequence[str] = ()) -> np.ndarray:
    if flips:
        from bcc_model.models.spec import FLIPS

        views = [batch] + [np.ascontiguousarray(np.flip(batch, axis=FLIPS[flip])) for flip in flips]
        return np.mean([_in_chunks(forward, view, batch_size) for view in views], axis=0).astype(np.float32)
    batch_size = max(1, min(batch_size, INPUT_VALUES_PER_CALL // int(np.prod(batch.shape[1:]))))
    chunks = [np.asarray(forward(np.asarray(batch[i:i + batch_size], np.float32)))
              for i in range(0, len(batch), batch_size)]
    return np.concatenate(chunks).astype(np.float32)


def calibrated_probabilities(bundle: Bundle, batch: np.ndarray) -> np.ndarray:
    """Temperature-scaled probabilities (N, K) for preprocessed model inputs.

    Through ONNX Runtime when the bundle ships ``model.onnx`` (``models.onnx_path``: 2-4x faster
    than the TensorFlow graph on this CPU, parity-tested), else through the Keras model as one graph;
    averaged over the bundle's test-time flips.
    """
    flips = bundle.meta.test_time_flips
    if bundle.fast is not None and len(batch):
        raw = _in_chunks(bundle.fast, batch, flips=flips)
    else:
        raw = raw_probabilities(bundle.model, batch, compiled=True, flips=flips)
    return apply_temperature(raw, bundle.temperature).astype(np.float32)


def predictions_from_probabilities(bundle: Bundle, probs: np.ndarray, level: float | None = None) -> list[Prediction]:
    """The decision of ``bundle`` (its conformal sets at ``level``, default the card's) on calibrated ``probs``."""
    labels = bundle.labels
    point = OperatingPoint.of(bundle, level)
    predicted, indeterminate = point.decide(probs)
    sets = point.sets(probs)
    return [
        Prediction(
            probabilities={label: float(p) for label, p in zip(labels, row)},
            label=labels[int(k)],
            indeterminate=bool(flag),
            positive_label=labels[point.positive_index],
            conformal_set=None if sets is None else tuple(label for label, inside in zip(labels, sets[n]) if inside),
            level=None if sets is None else point.level,
        )
        for n, (row, k, flag) in enumerate(zip(probs, predicted, indeterminate))
    ]


def prediction_at(bundle: Bundle, prediction: Prediction, level: float) -> Prediction:
    """``prediction`` decided again with the conformal sets at ``level`` (the app's level choice; no model call)."""
    if bundle.conformal is None or prediction.level == level:
        return prediction
    probs = np.asarray([[prediction.probabilities[label] for label in bundle.labels]], dtype=np.float64)
    return predictions_from_probabilities(bundle, probs, level)[0]


def set_in_words(bundle: Bundle, prediction: Prediction) -> str:
    """The conformal set beside the verdict: "IDC", "no IDC" or "IDC or no IDC: can't decide at 90 %" ("" without sets)."""
    from bcc_model.models.conformal import set_words

    if prediction.conformal_set is None or prediction.level is None:
        return ""
    spec = bundle.spec
    return set_words([spec.display(label) for label in prediction.conformal_set],
                     [spec.display(label) for label in bundle.labels], prediction.level)


def predict_images(bundle: Bundle, images: Sequence[np.ndarray], level: float | None = None) -> list[Prediction]:
    """Classify uint8 images (HxW or HxWx3, any size) with identical-to-training preprocessing."""
    batch = to_model_batch(images, bundle.spec)
    return predictions_from_probabilities(bundle, calibrated_probabilities(bundle, batch), level)
