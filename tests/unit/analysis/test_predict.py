"""raw_probabilities: chunked forward passes whose size follows the image size, not the split size."""

from __future__ import annotations

import keras
import numpy as np

from bcc_model.analysis import predictions as predict


def _tiny_model(size: int) -> keras.Model:
    inputs = keras.Input((size, size, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))


class _Recording:
    """Stands in for the compiled forward pass of a model and records the batch size of every call."""

    def __init__(self, model: keras.Model):
        self.model, self.sizes = model, []

    def __call__(self, batch):
        self.sizes.append(len(batch))
        return self.model(batch, training=False)

    def install(self, monkeypatch) -> "_Recording":
        monkeypatch.setattr(predict, "compiled_forward", lambda model: self)
        return self


def test_large_inputs_are_split_into_calls_bounded_by_input_values(monkeypatch):
    model = _tiny_model(32)
    images = np.random.default_rng(0).uniform(0, 255, (10, 32, 32, 1)).astype(np.float32)
    whole = predict.raw_probabilities(model, images)
    monkeypatch.setattr(predict, "INPUT_VALUES_PER_CALL", 3 * 32 * 32)
    recording = _Recording(model).install(monkeypatch)
    chunked = predict.raw_probabilities(model, images, compiled=True)
    assert recording.sizes == [3, 3, 3, 1]
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-6)


def test_an_input_larger_than_the_bound_still_runs_one_at_a_time(monkeypatch):
    monkeypatch.setattr(predict, "INPUT_VALUES_PER_CALL", 10)
    model = _tiny_model(16)
    recording = _Recording(model).install(monkeypatch)
    probs = predict.raw_probabilities(model, np.zeros((2, 16, 16, 1), np.float32), compiled=True)
    assert recording.sizes == [1, 1] and probs.shape == (2, 3)
