"""Robustness to lossy re-encoding: the same test images as JPEG and WebP, scored again.

Uploads are often re-saved on the way (browser, viewer, PACS export). A verdict that moves when
the file is re-encoded is not a property of the tissue. For each codec the test images (at the
model's input size) are encoded and decoded with OpenCV, classified with the bundle's
calibration and decision rule, and compared with the originals: balanced accuracy and ROC AUC
of the re-encoded set, the share of decisions that changed, and the mean change of P(positive).
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from bcc_model.models.decision import OperatingPoint, decide

__all__ = ["CODECS", "reencode", "compression_robustness"]

CODECS: dict[str, tuple[str, list[int]]] = {
    "JPEG quality 90": (".jpg", [cv2.IMWRITE_JPEG_QUALITY, 90]),
    "JPEG quality 50": (".jpg", [cv2.IMWRITE_JPEG_QUALITY, 50]),
    "WebP quality 75": (".webp", [cv2.IMWRITE_WEBP_QUALITY, 75]),
}
"""Codec name -> (OpenCV extension, encoder parameters)."""


def reencode(image: np.ndarray, codec: str) -> np.ndarray:
    """``image`` (uint8 HxW or HxWx3 RGB) encoded with ``codec`` and decoded again, same layout."""
    extension, params = CODECS[codec]
    bgr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(extension, bgr, params)
    if not ok:
        raise ValueError(f"OpenCV could not encode {codec}")
    if image.ndim == 2:  # WebP always decodes to colour: ask for grey back
        return cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE)
    return cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def compression_robustness(probabilities: Callable[[np.ndarray], np.ndarray], images: np.ndarray, y: np.ndarray,
                           point: OperatingPoint) -> dict:
    """Metrics of re-encoded copies of ``images`` against the originals (metrics.json ``robustness``).

    Args:
        probabilities: calibrated probabilities (N, K) of float32 model inputs (N, H, W, C).
        images: uint8 model inputs (N, H, W, C), as training and evaluation hold them.
        y: (N,) true class indices.
        point: the bundle's labels, positive class, threshold and band.

    Returns:
        ``{"method", "codecs": {codec: {"balanced_accuracy", "roc_auc", "decisions_changed",
        "mean_abs_change_positive"}}, "original": {...}}``.
    """
    positive = point.positive_index
    is_positive = (y == positive).astype(int)

    def score(batch: np.ndarray) -> tuple[dict, np.ndarray, np.ndarray]:
        probs = probabilities(batch.astype(np.float32))
        predicted, _ = decide(probs, positive, point.threshold, point.band)
        both = len(set(is_positive.tolist())) == 2
        return ({"balanced_accuracy": float(balanced_accuracy_score(y, predicted)),
                 "roc_auc": float(roc_auc_score(is_positive, probs[:, positive])) if both else None},
                probs[:, positive], predicted)

    original, p_original, d_original = score(images)
    codecs = {}
    for codec in CODECS:
        coded = np.stack([reencode(image[..., 0] if image.shape[-1] == 1 else image, codec) for image in images])
        figures, p_coded, d_coded = score(coded.reshape(images.shape))
        codecs[codec] = {**figures, "decisions_changed": float(np.mean(d_coded != d_original)),
                         "mean_abs_change_positive": float(np.mean(np.abs(p_coded - p_original)))}
    return {"method": "test images at model-input size re-encoded with OpenCV, then classified as uploads are",
            "n_images": int(len(images)), "original": original, "codecs": codecs}
