"""--strategy: training on two logical CPU devices follows the single-device loss curve."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT, SAMPLES

# Logical devices must be configured before TensorFlow starts, so the runs live in a child process.
_TWO_CPUS = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
"""

# The fit loop of every bundle (training.fit.train_one) on the sample patches, once per strategy,
# with a network without batch normalisation or dropout: those keep per-replica statistics and
# random masks, so only they could make the curves differ when the distribution itself is right.
_CURVES = _TWO_CPUS + """
import json
from dataclasses import replace
from pathlib import Path
import keras
from bcc_model.datasets.folders import discover, load_images
from bcc_model.registry import get_modality
from bcc_model.training.config import TrainConfig
from bcc_model.training.fit import configure_determinism, train_one

spec = get_modality("histopathology").with_recipe(augmentation=())
table = discover(sys.argv[1], spec)
x, y = load_images(table, sys.argv[1], spec), table["label"].map(spec.labels.index).to_numpy()

def build():
    inputs = keras.Input(spec.input_shape)
    h = keras.layers.Rescaling(1 / 255)(inputs)
    h = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, keras.layers.Dense(len(spec.labels), activation="softmax")(h))

curves = {}
for strategy in ("default", "mirrored"):
    configure_determinism(0)
    config = TrainConfig(epochs=4, batch_size=8, patience=10, patient_weighting=False, verbose=0, strategy=strategy)
    _, history = train_one("tiny", spec, {"train": (x, y), "validation": (x, y)}, config,
                           Path(sys.argv[2]) / strategy, build=build)
    curves[strategy] = {"loss": history["loss"].tolist(), "val_loss": history["val_loss"].tolist()}
from bcc_model.training.distribute import describe
curves["recorded"] = describe("mirrored")  # what model.json's training.distribution then says
print(json.dumps(curves))
"""


@pytest.mark.e2e
def test_two_logical_devices_follow_the_single_device_loss_curve(tmp_path):
    run = subprocess.run([sys.executable, "-c", _CURVES, str(SAMPLES), str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    curves = json.loads(run.stdout.strip().splitlines()[-1])
    assert curves["recorded"] == {"strategy": "mirrored", "replicas": 2}
    single, mirrored = curves["default"], curves["mirrored"]
    assert len(single["loss"]) == len(mirrored["loss"]) == 4
    assert single["loss"][-1] < single["loss"][0], "the network learns"
    # Summing two half-batch gradients is not bit-equal to one batch's, and Adam amplifies the last
    # digits where gradients are near zero: measured 0.07 % apart after the first epoch, 1.2 % after four.
    assert abs(mirrored["val_loss"][0] - single["val_loss"][0]) < 2e-3 * single["val_loss"][0]
    np.testing.assert_allclose(mirrored["loss"], single["loss"], rtol=0.02)
    np.testing.assert_allclose(mirrored["val_loss"], single["val_loss"], rtol=0.02)


def test_an_unknown_strategy_is_refused_by_the_command_line(capsys):
    from bcc_model.cli.train import main

    with pytest.raises(SystemExit):
        main(["--strategy", "parameter_server"])
    assert "invalid choice" in capsys.readouterr().err
