"""Both architectures build flat, train a step, save/load, and give a real tf-keras-vis Grad-CAM."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from bcc_model.models.architectures import DENSENET121, build_model, feature_layer_names
from bcc_model.explain.cams import CAM_METHODS, Explainer

# Small but not tiny: with 8-channel convolutions TensorFlow 2.21's oneDNN CPU kernels corrupt
# memory under GradientTape (seen here as "double free or corruption" in Grad-CAM); shipped models
# use 16 channels or more.
SMALL = {
    "se_resnet": {"widths": (16, 32), "blocks_per_stage": (1, 1), "se_ratio": 4},
    "densenet": {"blocks": (2, 2), "growth_rate": 16, "stem_filters": 16},
}


@pytest.mark.parametrize("arch", sorted(SMALL))
def test_build_train_save_load_and_cam(arch, tmp_path):
    keras.utils.set_random_seed(0)
    model = build_model(arch, (32, 32, 3), 2, **SMALL[arch])
    assert all(not isinstance(layer, keras.Model) for layer in model.layers), "a nested model breaks tf-keras-vis"
    assert model.get_layer("last_conv").output.shape[1:3] == (16, 16)
    assert model.layers[-1].name == "probabilities"
    x = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    y = keras.utils.to_categorical(np.arange(8) % 2, 2)
    model.compile("adam", "categorical_crossentropy")
    before = [w.copy() for w in model.get_weights()]
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights())), "a training step changed nothing"
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)

    explainer = Explainer(loaded, ["benign", "malignant"])
    heat = explainer.heatmaps(x[:2], "malignant", method="Grad-CAM")
    assert heat.shape == (2, 32, 32) and heat.dtype == np.float32
    assert heat.max() > 0 and heat.min() >= 0 and heat.max() <= 1
    assert loaded.layers[-1].activation is keras.activations.softmax, "explainer must not mutate the model"


@pytest.mark.parametrize("channels", [3, 1])  # RGB (H&E) and greyscale (mammography, ultrasound) inputs
def test_every_heatmap_method_runs_on_a_flat_model(channels):
    keras.utils.set_random_seed(1)
    model = build_model("se_resnet", (24, 24, channels), 2, **SMALL["se_resnet"])
    x = np.random.default_rng(1).uniform(0, 255, (1, 24, 24, channels)).astype("float32")
    explainer = Explainer(model, ["benign", "malignant"])
    for method in CAM_METHODS:
        heat = explainer.heatmaps(x, "benign", method=method)
        assert heat.shape == (1, 24, 24), method
        assert np.isfinite(heat).all() and heat.max() > 0, method
    assert explainer.feature_layers()[0] == "last_conv"
    with pytest.raises(KeyError, match="valid"):
        explainer.heatmaps(x, "benign", method="nope")
    with pytest.raises(KeyError, match="valid"):
        explainer.heatmaps(x, "unknown-class")


def test_densenet121_configuration_matches_the_paper():
    model = build_model("densenet", (224, 224, 3), 1000, **DENSENET121)
    # Keras Applications' DenseNet121 with a 1000-class head has exactly this many weights.
    assert model.count_params() == 8_062_504
    assert "last_conv" in feature_layer_names(model)


def test_unknown_architecture_lists_valid_ones():
    with pytest.raises(KeyError, match="se_resnet"):
        build_model("vgg", (32, 32, 3), 2)


@pytest.mark.parametrize("arch", sorted(SMALL))
def test_strided_stem_and_weights_transfer_between_input_sizes(arch):
    """Whole-image options: the stem quarters the resolution, and a patch model's weights fit."""
    keras.utils.set_random_seed(2)
    params = {**SMALL[arch], "stem_strides": 2, "stem_pool": True, "head_pool": "max", "bn_momentum": 0.9}
    whole = build_model(arch, (64, 64, 1), 3, **params)
    norms = [layer for layer in whole.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(layer.momentum == 0.9 for layer in norms)
    assert whole.get_layer("last_conv").output.shape[1:3] == (8, 8)
    assert whole.get_layer("gmp") is not None
    patch = build_model(arch, (24, 24, 1), 3, **params)
    whole.set_weights(patch.get_weights())
    x = np.random.default_rng(2).uniform(0, 255, (2, 24, 24, 1)).astype("float32")
    big = np.zeros((2, 64, 64, 1), "float32")
    big[:, :24, :24] = x
    assert whole(big).shape == (2, 3) and patch(x).shape == (2, 3)
    default = build_model(arch, (32, 32, 3), 2, **SMALL[arch])
    assert default.get_layer("last_conv").output.shape[1:3] == (16, 16), "defaults must not change"
    with pytest.raises(ValueError, match="head_pool"):
        build_model(arch, (32, 32, 3), 2, **SMALL[arch], head_pool="median")
    with pytest.raises(ValueError, match="bn_momentum"):
        build_model(arch, (32, 32, 3), 2, **SMALL[arch], bn_momentum=1.0)
