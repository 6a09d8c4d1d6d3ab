"""A bundle as a TensorFlow SavedModel for TF Serving: preprocessed batches in, calibrated probabilities out.

The serving signature takes what ``imaging.preprocess.to_model_batch`` produces (float32
``(N, H, W, C)`` in [0, 255]) and applies the bundle's temperature inside the graph, so a
server returns the same calibrated probabilities as the app. The decision rule (threshold and
indeterminate band) is written beside it in ``bcc_serving.json``, with the labels.
"""

from __future__ import annotations

import json
from pathlib import Path

from bcc_model.models.bundle import Bundle

__all__ = ["SIGNATURE", "export_saved_model"]

SIGNATURE = "serving_default"
_PROB_FLOOR = 1e-12  # as in evaluation/calibration.py: log(0) would give infinite logits


def export_saved_model(bundle: Bundle, out_dir: Path) -> Path:
    """Write ``out_dir`` as a SavedModel whose ``serving_default`` returns ``{"probabilities": (N, K)}``."""
    import tensorflow as tf

    model = bundle.model
    temperature = tf.constant(bundle.temperature, tf.float32)

    class Served(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        @tf.function(input_signature=[tf.TensorSpec([None, *bundle.spec.input_shape], tf.float32, name="images")])
        def serve(self, images):
            probs = self.model(images, training=False)
            logits = tf.math.log(tf.clip_by_value(probs, _PROB_FLOOR, 1.0)) / temperature
            return {"probabilities": tf.nn.softmax(logits, axis=-1)}

    module = Served()
    out_dir = Path(out_dir)
    tf.saved_model.save(module, str(out_dir), signatures={SIGNATURE: module.serve})
    (out_dir / "bcc_serving.json").write_text(json.dumps({
        "modality": bundle.spec.key, "model": bundle.meta.name, "model_sha256": bundle.meta.model_sha256,
        "labels": list(bundle.labels), "positive_label": bundle.spec.positive_label,
        "input": {"shape": [None, *bundle.spec.input_shape], "dtype": "float32", "range": [0, 255],
                  "preprocessing": list(bundle.meta.preprocessing)},
        "threshold": bundle.threshold, "indeterminate_band": list(bundle.band),
        "output": "calibrated probabilities (temperature applied)"}, indent=2) + "\n", encoding="utf-8")
    return out_dir
