"""The histogram-only baseline: how far acquisition alone separates the classes of a folder.

Screening data mix sites and vendors, and the mix is rarely the same for cancers and
negatives: on the RSNA folder a logistic regression that sees nothing but each image's global
grey-level histogram reaches ROC AUC ~0.59. A model must beat that clearly before its score can
be read as seeing disease rather than the machine. The baseline is fitted and scored here by
patient-grouped k-fold cross-validation on the very folder being evaluated (each image scored
by a regression that never saw its patient), so it needs no bundle and no training data, and
it is reported beside the model with the same patient bootstrap CI.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

__all__ = ["HISTOGRAM_BINS", "grey_histograms", "histogram_baseline"]

HISTOGRAM_BINS = 32


def grey_histograms(data_dir: str | Path, files: list[str]) -> np.ndarray:
    """float32 (N, HISTOGRAM_BINS): each image's grey-level histogram as shares of its pixels (stored pixels)."""
    from bcc_model.imaging.io import read_image

    rows = []
    for file in files:
        pixels = read_image(Path(data_dir) / file).pixels
        grey = pixels if pixels.ndim == 2 else cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
        counts = np.bincount((grey.astype(np.int64).ravel() * HISTOGRAM_BINS) // 256, minlength=HISTOGRAM_BINS)
        rows.append(counts / counts.sum())
    return np.asarray(rows, np.float32)


def histogram_baseline(data_dir: str | Path, table: pd.DataFrame, positive_label: str, *, folds: int = 5,
                       n_resamples: int = 1000, seed: int = 0) -> dict:
    """Out-of-fold ROC AUC (with patient-bootstrap CI) of a histogram-only logistic regression.

    Args:
        data_dir: the folder the images are read from.
        table: ``file, label, group`` rows (``datasets.folders.discover``).
        positive_label: the class scored against all others.
        folds: patient folds (fewer when the folder has fewer patients of a class).

    Returns:
        ``{"method", "n_images", "n_groups", "roc_auc": {"value", "ci95"}}``; ``roc_auc`` is
        ``None`` when the folder lacks either class or has fewer than two patients of each.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from bcc_model.models.decision import OperatingPoint
    from bcc_model.evaluation.metrics import compute_metrics
    from bcc_model.datasets.splits import patient_folds

    y = (table["label"] == positive_label).to_numpy(int)
    groups = table["group"].to_numpy()
    per_class = [len(np.unique(groups[y == k])) for k in (0, 1)]
    k = min(folds, *per_class)
    block = {"method": f"logistic regression on {HISTOGRAM_BINS}-bin grey-level histograms of the stored images, "
                       f"patient-grouped {k}-fold cross-validation on this folder (out-of-fold scores), "
                       "95% CI from a patient bootstrap",
             "n_images": int(len(y)), "n_groups": int(len(np.unique(groups))), "roc_auc": None}
    if k < 2:
        return block
    features = grey_histograms(data_dir, table["file"].tolist())
    fold_of = patient_folds(y, groups, k, seed)
    p = np.zeros(len(y))
    for fold in range(k):
        fit, held = fold_of != fold, fold_of == fold
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
        p[held] = model.fit(features[fit], y[fit]).predict_proba(features[held])[:, 1]
    point = OperatingPoint((f"not {positive_label}", positive_label), 1, 0.5, (0.5, 0.5))
    metrics = compute_metrics(np.stack([1 - p, p], axis=1), y, groups.tolist(), point, split="baseline",
                              n_resamples=n_resamples, seed=seed)
    block["roc_auc"] = metrics["headline"]["roc_auc"]
    return block
