"""The fast inference paths agree with the reference ones on the shipped bundles and the samples.

Prediction runs the bundle's ONNX copy on ONNX Runtime (``models.onnx_path``), or without one
the model as one TensorFlow graph (``analysis.predictions.compiled_forward``), and
Grad-CAM as one graph returning logits and the CAM together (``Explainer.gradcam``); both are
there for speed only, so they must give what eager Keras and tf-keras-vis give.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from bcc_model.analysis.predictions import calibrated_probabilities, compiled_forward, raw_probabilities
from bcc_model.datasets.folders import sample_images
from bcc_model.models.decision import apply_temperature, decide
from bcc_model.explain.cams import Explainer
from bcc_model.imaging.io import read_image
from bcc_model.imaging.preprocess import to_model_batch
from bcc_model.registry import get_modality
from bcc_model.models.bundle import load_bundle
from tests.support.bundles import shipped_bundle


def _bundle_and_batch(key: str, limit: int):
    spec = get_modality(key)
    bundle = shipped_bundle(key)
    return bundle, to_model_batch([read_image(p).pixels for p in sample_images(spec)[:limit]], spec)


@pytest.mark.parametrize("key,limit", [("histopathology", 20), ("mammography", 3), ("ultrasound", 3)])
def test_onnx_runtime_and_the_compiled_graph_match_eager_keras(key, limit):
    """Every shipped image bundle predicts through its model.onnx: same probabilities (1e-4) and decisions."""
    bundle, batch = _bundle_and_batch(key, limit)
    assert bundle.fast is not None, f"the shipped {key} bundle ships model.onnx"
    eager = apply_temperature(np.asarray(bundle.model(batch, training=False)), bundle.temperature)
    graph = apply_temperature(raw_probabilities(bundle.model, batch, compiled=True), bundle.temperature)
    fast = calibrated_probabilities(bundle, batch)
    np.testing.assert_allclose(fast, apply_temperature(bundle.fast(batch), bundle.temperature), atol=1e-7)
    positive = bundle.spec.positive_index
    for path in (fast, graph):
        assert np.abs(path - eager).max() <= 1e-4
        for a, b in zip(decide(path, positive, bundle.threshold, bundle.band),
                        decide(eager, positive, bundle.threshold, bundle.band)):
            np.testing.assert_array_equal(a, b)
    assert compiled_forward(bundle.model) is compiled_forward(bundle.model), "one graph per model"


def test_a_changed_onnx_file_is_refused_and_a_bundle_without_one_runs_on_keras(tmp_path):
    import json
    import shutil

    from bcc_model.models.bundle import BundleTampered

    spec = get_modality("histopathology")
    copy = tmp_path / "bundle"
    shutil.copytree(spec.bundle_dir, copy)
    onnx = copy / "model.onnx"
    onnx.write_bytes(onnx.read_bytes()[:-16])
    with pytest.raises(BundleTampered, match="model.onnx"):
        load_bundle(spec, copy, allow_unverified=True)
    onnx.unlink()
    info = json.loads((copy / "model.json").read_text())
    del info["runtime"]
    (copy / "model.json").write_text(json.dumps(info))
    plain = load_bundle(spec, copy, allow_unverified=True)
    assert plain.fast is None
    batch = to_model_batch([read_image(p).pixels for p in sample_images(spec)[:4]], spec)
    np.testing.assert_allclose(calibrated_probabilities(plain, batch),
                               calibrated_probabilities(shipped_bundle(spec.key), batch), atol=1e-4)


def test_compiled_gradcam_matches_tf_keras_vis_on_the_named_layer():
    from tf_keras_vis.utils.scores import CategoricalScore

    bundle, batch = _bundle_and_batch("histopathology", 20)
    explainer = Explainer(bundle.model, bundle.labels, bundle.spec.cam_layer)
    positive = bundle.spec.positive_label
    logits, maps = explainer.gradcam(batch, positive)
    reference = importlib.import_module("tf_keras_vis.gradcam").Gradcam(explainer._model, clone=False)(
        CategoricalScore([bundle.labels.index(positive)] * len(batch)), batch,
        penultimate_layer=bundle.spec.cam_layer, seek_penultimate_conv_layer=False)
    assert maps.shape == (len(batch), *batch.shape[1:3]) and np.abs(maps - reference).max() <= 1e-4
    softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
    softmax /= softmax.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(softmax, np.asarray(bundle.model(batch, training=False)), atol=1e-5)
    np.testing.assert_allclose(explainer.heatmaps(batch[:3], positive), maps[:3], atol=1e-5)


def test_test_time_flips_average_the_flipped_images_outputs():
    """A stand-in whose output depends on where the bright half is: the vertical flip swaps it."""
    def model(x, training=False):
        top = x[:, : x.shape[1] // 2].mean(axis=(1, 2, 3)) / 255
        return np.stack([top, 1 - top], axis=1)

    batch = np.zeros((3, 8, 8, 1), np.float32)
    batch[:, :4] = 255  # bright top half
    np.testing.assert_allclose(raw_probabilities(model, batch), [[1, 0]] * 3)
    np.testing.assert_allclose(raw_probabilities(model, batch, flips=("vertical",)), [[0.5, 0.5]] * 3)
    np.testing.assert_allclose(raw_probabilities(model, batch, flips=("horizontal",)), [[1, 0]] * 3)
