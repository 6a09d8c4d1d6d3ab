"""Unit tests of the lesion-first mammography pieces: pooling, losses, cell targets, marks, FROC, head training."""

from __future__ import annotations


import numpy as np
import pytest

from bcc_model.evaluation.calibration import fit_temperature
from bcc_model.evaluation.froc import froc
from bcc_model.explain.marks import Mark, lesion_marks, marks_caption
from bcc_model.registry import get_modality
from bcc_model.modalities.mammography.features import cell_targets


def _cells() -> np.ndarray:
    """(1, 2, 2, 2): class 0 evidence 1..4, class 1 evidence all 0."""
    return np.array([[[[1, 0], [2, 0]], [[3, 0], [4, 0]]]], np.float32)


@pytest.mark.parametrize("mode,expected", [("max", 4.0), ("mean", 2.5), ("topk", 3.5)])
def test_cell_pooling_modes(mode, expected):
    from bcc_model.modalities.mammography.mil import CellPooling

    pooled = np.asarray(CellPooling(mode, k=2)(_cells()))
    assert pooled.shape == (1, 2)
    assert pooled[0, 0] == pytest.approx(expected) and pooled[0, 1] == pytest.approx(0.0)


def test_lse_pooling_lies_between_mean_and_max_and_keeps_a_flat_map():
    from bcc_model.modalities.mammography.mil import CellPooling

    pooled = np.asarray(CellPooling("lse", r=4.0)(_cells()))[0]
    assert 2.5 < pooled[0] < 4.0
    assert pooled[1] == pytest.approx(0.0, abs=1e-6), "a uniform map keeps its value"
    with pytest.raises(ValueError, match="unknown pooling"):
        CellPooling("median")


def test_set_cross_entropy_scores_a_screening_negative_by_its_set():
    from bcc_model.modalities.mammography.mil import set_cross_entropy

    p = np.array([[0.2, 0.5, 0.3]], np.float32)
    one_hot = np.asarray(set_cross_entropy(np.array([[0, 1, 0]], np.float32), p))
    negative = np.asarray(set_cross_entropy(np.array([[1, 1, 0]], np.float32), p))
    assert one_hot[0] == pytest.approx(-np.log(0.5), rel=1e-5)
    assert negative[0] == pytest.approx(-np.log(0.7), rel=1e-5), "negative = not malignant: -log(1 - p_malignant)"


def test_masked_cell_entropy_ignores_unknown_cells():
    from bcc_model.modalities.mammography.mil import masked_cell_entropy

    predictions = np.array([[0.9, 0.1, 0.5], [0.5, 0.5, 0.5]], np.float32)
    targets = np.array([[1, 0, -1], [-1, -1, -1]], np.float32)
    loss = np.asarray(masked_cell_entropy(targets, predictions))
    assert loss[0] == pytest.approx(-np.log(0.9), rel=1e-4)
    assert loss[1] == 0.0, "an image without known cells adds nothing"


def test_temperature_fits_label_sets_and_equals_the_class_fit_for_one_hot():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(200, 3)) * 3
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = rng.integers(0, 3, 200)
    assert fit_temperature(probs, targets=np.eye(3)[y]) == pytest.approx(fit_temperature(probs, y), rel=1e-4)
    sets = np.eye(3)[y]
    sets[y < 2] = [1, 1, 0]
    assert fit_temperature(probs, targets=sets) > 1, "random logits are over-confident: the temperature softens"
    with pytest.raises(ValueError, match="at least one allowed class"):
        fit_temperature(probs, targets=np.zeros((200, 3)))


def test_cell_targets_label_lesion_cells_normal_tissue_and_unknowns():
    spec = get_modality("mammography")
    image = np.zeros((64, 64, 1), np.float32)
    image[:, :48] = 100  # tissue in the left three of four 16 px columns
    normal = cell_targets(image, None, "normal", spec, 16).reshape(4, 4)
    assert (normal[:, :3] == 0).all() and (normal[:, 3] == -1).all(), "background is not a negative"
    mask = np.zeros((64, 64), bool)
    mask[20:28, 20:28] = True  # inside one cell
    lesion = cell_targets(image, mask, "malignant", spec, 16).reshape(4, 4)
    assert lesion[1, 1] == 1 and (lesion == 1).sum() == 1 and (lesion[lesion != 1] == -1).all()
    assert (cell_targets(image, None, "benign", spec, 16) == -1).all(), "lesion without geometry: unknown"
    assert (cell_targets(image, None, "negative", spec, 16) == -1).all(), "a screening label says nothing per cell"


def test_marks_are_separated_peaks_inside_the_region_highest_first():
    heat = np.zeros((128, 128), np.float32)
    heat[20, 20], heat[22, 22], heat[100, 100], heat[60, 10] = 0.9, 0.8, 0.7, 0.95
    region = np.ones((128, 128), bool)
    region[:, :15] = False  # the 0.95 peak is outside the breast
    marks = lesion_marks(heat, region=region, floor=0.5, min_distance=16)
    assert marks == [Mark(20, 20, pytest.approx(0.9)), Mark(100, 100, pytest.approx(0.7))]
    assert lesion_marks(heat, region=region, floor=0.8, min_distance=16) == [Mark(20, 20, pytest.approx(0.9))]
    assert "2 mark(s)" in marks_caption(marks) and "No mark" in marks_caption([])


def test_froc_counts_hits_once_and_false_marks_per_image():
    lesion = np.zeros((64, 64), bool)
    lesion[10:20, 10:20] = True
    normal = np.zeros((64, 64), bool)
    marks = [[Mark(15, 15, 0.9), Mark(12, 12, 0.8), Mark(50, 50, 0.3)],  # hit, repeat hit, false
             [Mark(30, 30, 0.6)]]  # a false mark on a normal breast, above the lesion image's false mark
    block = froc(marks, [lesion, normal], ["a", "b"], n_resamples=50)
    assert block["lesions"] == 1 and block["images"] == 2
    assert block["sensitivity"]["0.5"]["value"] == 1.0, "the lesion is found before any false mark"
    assert block["sensitivity"]["1"]["value"] == 1.0
    missed = froc([[Mark(50, 50, 0.9)], []], [lesion, normal], ["a", "b"], n_resamples=10)
    assert missed["sensitivity"]["2"]["value"] == 0.0


def test_head_training_is_deterministic_and_learns_a_cell_signal():
    from bcc_model.training.config import TrainConfig
    from bcc_model.modalities.mammography.training import fit_head

    spec = get_modality("mammography").with_recipe(arch_params={"densenet121_mil": {"width": 8, "dropout": 0.0, "k": 2}})
    rng = np.random.default_rng(1)
    features = rng.normal(size=(40, 2, 2, 1024)).astype(np.float16)
    targets = np.zeros((40, 3), np.float32)
    targets[:20, 2], targets[20:] = 1, [1, 1, 0]
    features[:20, 0, 0, :8] += 3  # one cell of every cancer carries the signal
    cells = np.full((40, 4), -1.0, np.float32)
    arrays = (features, targets, cells, np.ones(40, np.float32))
    config = TrainConfig(modality="mammography", epochs=15, batch_size=8, lr=1e-2)
    first, history, _ = fit_head(spec, config, "densenet121_mil", "max", arrays)
    second, _, _ = fit_head(spec, config, "densenet121_mil", "max", arrays)
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(a, b)
    p = first.predict(features.astype(np.float32), verbose=0)["probabilities"][:, 2]
    assert p[:20].mean() > p[20:].mean() + 0.3 and history["loss"].iloc[-1] < history["loss"].iloc[0]
    assert history["auc"].iloc[-1] > 0.9 and 0 <= history["accuracy"].iloc[-1] <= 1, "training curves per epoch"


@pytest.mark.parametrize("arch", ["densenet121_mil", "vgg16_mil"])
def test_full_model_equals_head_on_trunk_features(arch):
    from bcc_model.models.architectures import build_model
    from bcc_model.modalities.mammography.mil import build_mil_head, transfer_head, trunk_model

    model = build_model(arch, (64, 64, 1), 3, width=8, pooling="topk", k=2, pretrained=False)
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 1)).astype(np.float32)
    features = np.asarray(trunk_model(model)(x))
    assert features.shape[1:3] == (2, 2), "both trunks: one cell per 32 px"
    head = build_mil_head(2, 3, channels=features.shape[-1], width=8, pooling="topk", k=2)
    transfer_head(head, model)
    np.testing.assert_allclose(np.asarray(model(x)), head.predict(features, verbose=0)["probabilities"], atol=1e-5)
    assert not any(layer.trainable for layer in model.layers
                   if layer.weights and layer.name.startswith(("conv2_block", "block"))), "the trunk is frozen"


def test_lite0_cell_model_splits_into_cached_frozen_features_and_a_fine_tuned_head():
    """What training fits on cached features (the head, with Lite0's last stages) is exactly the bundled model."""
    import keras

    from bcc_model.explain.cams import Explainer
    from bcc_model.modalities.mammography.mil import build_lite0_mil, build_mil_head, transfer_head, trunk_model

    keras.utils.set_random_seed(0)
    model = build_lite0_mil((64, 64, 1), 3, tuned_from=12, pooling="lse", pretrained=False)
    assert all(not isinstance(layer, keras.Model) for layer in model.layers), "a nested model breaks tf-keras-vis"
    assert not model.get_layer("lite0_b10_project").trainable and model.get_layer("lite0_b11_expand").trainable
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 1)).astype("float32")
    features = trunk_model(model).predict(x, verbose=0)
    assert features.shape == (2, 4, 4, 112), "units 0-11 end at stride 16 with 112 channels"
    head = build_mil_head(4, 3, channels=112, pooling="lse", tuned_from=12, pretrained=False)
    assert head.get_layer("lesion_map").output.shape[-1] == 4, "the lesion map has the model's 32 px cells"
    transfer_head(head, model)
    np.testing.assert_allclose(model.predict(x, verbose=0), head.predict(features, verbose=0)["probabilities"],
                               atol=1e-5)
    heat = Explainer(model, ["normal", "benign", "malignant"]).heatmaps(x[:1], "malignant", method="Grad-CAM")
    assert heat.shape == (1, 64, 64) and np.isfinite(heat).all()
    with pytest.raises(ValueError, match="tuned_from"):
        build_lite0_mil((64, 64, 1), 3, tuned_from=18, pretrained=False)
