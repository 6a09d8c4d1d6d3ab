"""Does 8-way dihedral test-time augmentation help the H&E bundle on its test patients? (issue 28 lever)

Scores the bundle's test split (from its manifest.csv) once plainly and once as the mean softmax
over the 8 flips/rotations, through the same ONNX Runtime path the app uses, and prints ROC AUC,
balanced accuracy at the bundle's threshold (pooled and case-weighted) and ms per patch.

    python docs/experiments/he_tta.py --bundle weights/histopathology --data ../shared/data/histopathology
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from bcc_model.datasets.folders import discover, load_images
from bcc_model.datasets.weights import prevalence_weights
from bcc_model.models.bundle import load_bundle
from bcc_model.models.decision import apply_temperature
from bcc_model.registry import get_modality


def dihedral(x: np.ndarray) -> list[np.ndarray]:
    """The 8 rotations and reflections of a (N, H, W, C) batch."""
    views = [np.rot90(x, k, axes=(1, 2)) for k in range(4)]
    return views + [v[:, :, ::-1] for v in views]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bundle", type=Path, default=Path("weights/histopathology"))
    parser.add_argument("--data", type=Path, required=True)
    args = parser.parse_args()
    spec = get_modality("histopathology")
    bundle = load_bundle(spec, args.bundle, allow_unverified=True)
    manifest = pd.read_csv(args.bundle / "manifest.csv", dtype=str)
    test = set(manifest.loc[manifest["split"] == "test", "file"])
    table = discover(args.data, spec)
    table = table[table["file"].isin(test)].reset_index(drop=True)
    x = load_images(table, args.data, spec).astype(np.float32)
    y = (table["label"] == spec.positive_label).to_numpy(int)
    w = prevalence_weights(table["prevalence_weight"])
    threshold = bundle.meta.decision.threshold
    for name, views in (("plain", [x]), ("dihedral x8", dihedral(x))):
        start = time.perf_counter()
        raw = np.mean([np.concatenate([bundle.fast(np.ascontiguousarray(v[i:i + 256]))
                                       for i in range(0, len(v), 256)]) for v in views], axis=0)
        ms = 1000 * (time.perf_counter() - start) / len(x)
        p = apply_temperature(raw, bundle.temperature)[:, spec.positive_index]
        pred = (p >= threshold).astype(int)
        print(f"{name:12s} AUC pooled {roc_auc_score(y, p):.4f} weighted {roc_auc_score(y, p, sample_weight=w):.4f}  "
              f"BA pooled {balanced_accuracy_score(y, pred):.4f} weighted "
              f"{balanced_accuracy_score(y, pred, sample_weight=w):.4f}  {ms:.2f} ms/patch ({len(x)} patches, "
              f"{table['group'].nunique()} patients)")


if __name__ == "__main__":
    main()
