"""analyse(): one preprocessing pass gives the verdict, the model view, heatmaps, lesion map and warnings."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import bcc_model
from bcc_model.analysis.image import HeatmapRequest, analyse, analyse_many, make_explainer
from bcc_model.analysis.predictions import predict_images
from bcc_model.datasets.folders import sample_images
from bcc_model.imaging.io import read_image
from bcc_model.imaging.preprocess import model_view
from tests.support.bundles import shipped_bundle


@pytest.fixture(scope="module")
def histo():
    return shipped_bundle("histopathology")


@pytest.fixture(scope="module")
def ultrasound():
    return shipped_bundle("ultrasound")


def test_analysis_agrees_with_the_batch_prediction_and_the_model_view(histo):
    paths = sample_images(histo.spec)[:4]
    pixels = [read_image(p).pixels for p in paths]
    results = analyse_many(histo, pixels)
    for result, expected, image in zip(results, predict_images(histo, pixels), pixels):
        assert result.prediction.label == expected.label
        for label in histo.labels:
            assert result.prediction.probabilities[label] == pytest.approx(expected.probabilities[label], abs=1e-6)
        np.testing.assert_array_equal(result.view, model_view(image, histo.spec))
        assert result.lesion_map is None and not result.heatmaps


def test_heatmaps_default_to_the_positive_class_on_the_bundles_cam_layer(histo):
    pixels = read_image(sample_images(histo.spec)[0]).pixels
    result = analyse(histo, pixels, explain=[HeatmapRequest(), HeatmapRequest(label="benign", method="SmoothGrad")])
    assert set(result.heatmaps) == {("Grad-CAM", "malignant", histo.meta.cam_layer), ("SmoothGrad", "benign", "")}
    heat = result.heatmap("Grad-CAM")
    assert heat.shape == histo.spec.input_shape[:2] and 0.0 <= heat.min() and heat.max() <= 1.0
    with pytest.raises(KeyError):
        result.heatmap("LayerCAM")


def test_loaded_bundle_uses_its_recorded_cam_layer(histo):
    assert histo.spec.cam_layer == histo.meta.cam_layer == make_explainer(histo).cam_layer


def test_lesion_map_refusal_and_warnings_travel_with_the_result(ultrasound, histo):
    sound = analyse(ultrasound, read_image(sample_images(ultrasound.spec)[0]).pixels)
    assert sound.lesion_map is not None and sound.lesion_map.shape == ultrasound.spec.input_shape[:2]
    assert sound.refusal is None and sound.prediction.label in ultrasound.labels
    he_patch = read_image(sample_images(histo.spec)[0]).pixels
    wrong = analyse(ultrasound, he_patch, image_warnings=("skipped 2 pages",))
    assert "H&E" in wrong.refusal
    assert wrong.warnings == ("skipped 2 pages",)
    assert wrong.prediction.label in ultrasound.labels, "what the model computed is kept, for research; no output shows it"


def test_public_api_is_lazy_and_complete():
    code = ("import sys, bcc_model; assert 'tensorflow' not in sys.modules; "
            "from bcc_model import analyse, load_bundle, read_image, get_modality, Analysis; print('ok')")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "ok\n"
    assert bcc_model.analyse is analyse
    with pytest.raises(AttributeError):
        bcc_model.not_a_name  # noqa: B018
