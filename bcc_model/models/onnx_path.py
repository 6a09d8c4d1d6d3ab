"""The lean CPU inference path: a bundle's network as ONNX, run by ONNX Runtime.

Measured on this 2-core machine (``scripts/benchmark_latency.py --runtimes``), for the same
network and the same inputs:

* H&E SE-ResNet, one patch: Keras eager 39 ms, ``tf.function`` 9.3 ms, ONNX Runtime 2.1 ms;
  256 patches: 680 / 1,015 / 630 ms.
* Mammography SE-ResNet at 224 px, one image: 39 / 9.5 / 2.5 ms.
* Ultrasound VGG16 at 384 px, one image: 360 / 607 / 225 ms.
* LiteRT (the ``ai-edge-litert`` interpreter, XNNPACK) converted from a concrete function gave
  NaN outputs and 34 ms per patch; through a SavedModel it matched to 2e-13 but was slower than
  the TensorFlow graph on batches of 256 tiles.

ONNX Runtime is therefore the prediction and tile-map path: ``model.onnx`` is converted from
``model.keras`` (``tf2onnx``, dynamic batch) when a bundle is written, recorded with its sha256
and measured parity in ``model.json`` (``runtime``), and refused at load if it differs from
that hash, exactly as the Keras file is. Keras stays the source of truth and the path for
gradients (Grad-CAM, lesion maps); a bundle without ``model.onnx`` runs on Keras.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["ONNX_FILE", "OPSET", "export_onnx", "load_forward", "runtime_record"]

ONNX_FILE = "model.onnx"
OPSET = 17


def export_onnx(model, path: str | Path) -> None:
    """Convert a Keras classifier to ONNX (batch dimension left free) at ``path``."""
    import tensorflow as tf
    import tf2onnx

    spec = [tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name="image")]
    forward = tf.function(lambda x: model(x, training=False))
    staged = Path(path).with_name(Path(path).name + ".part")  # write, then rename: never a half-written file
    try:
        tf2onnx.convert.from_function(forward, input_signature=spec, opset=OPSET, output_path=str(staged))
        os.replace(staged, path)
    finally:
        staged.unlink(missing_ok=True)


def load_forward(path: str | Path) -> Callable[[np.ndarray], np.ndarray]:
    """``x (N, H, W, C) float32 -> softmax (N, K)`` through an ONNX Runtime session on every core."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def forward(x: np.ndarray) -> np.ndarray:
        return session.run(None, {name: np.ascontiguousarray(x, np.float32)})[0]

    return forward


def runtime_record(model, path: str | Path, sha256: str, seed: int = 0) -> dict:
    """model.json ``runtime``: engine, file, its ``sha256`` and the largest |ΔP| against Keras on 16 random inputs."""
    shape = tuple(model.input_shape[1:])
    x = np.random.default_rng(seed).uniform(0, 255, (16, *shape)).astype(np.float32)
    difference = np.abs(load_forward(path)(x) - np.asarray(model(x, training=False))).max()
    import onnxruntime
    import tf2onnx

    return {"engine": "onnxruntime", "file": Path(path).name, "sha256": sha256, "opset": OPSET,
            "parity_max_abs_difference": float(difference),
            "versions": {"onnxruntime": onnxruntime.__version__, "tf2onnx": tf2onnx.__version__}}
