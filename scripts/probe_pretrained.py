"""Does the pinned Capricorn DenseNet121 trunk (ImageNet weights) carry anything for IDC? A grouped-CV probe.

Frozen trunk features (global average pooled) of H&E patches, at several input scales, feed a
patient-weighted logistic regression scored by patient-grouped 5-fold cross-validation; the same
probe on a randomly initialised DenseNet121 (seeded) is the control. Only patients outside the
bundle's test split are used (the split of ``python -m bcc_model.train`` with the same seed), at
most ``--per-patient`` patches each, so that every patient counts and the probe fits on two cores.

Usage:
    python scripts/probe_pretrained.py --data ../shared/data/histopathology [--scales 64 112 224]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    from bcc_model.datasets.folders import discover, load_images
    from bcc_model.datasets.splits import split_by_group
    from bcc_model.modalities import get_modality

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--scales", type=int, nargs="+", default=[64, 112, 224])
    parser.add_argument("--per-patient", type=int, default=20)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    spec = get_modality("histopathology")
    table = split_by_group(discover(args.data, spec), seed=args.seed)
    table = table[table["split"] != "test"]
    table = table.sample(frac=1.0, random_state=args.seed)
    table = table[table.groupby("group").cumcount() < args.per_patient].sort_values("file")
    y = (table["label"] == spec.positive_label).to_numpy(int)
    groups = table["group"].to_numpy()
    images = load_images(table, args.data, spec)
    print(f"{len(table)} patches of {table['group'].nunique()} non-test patients "
          f"(<= {args.per_patient} each), {y.mean():.2f} IDC", flush=True)
    print(f"{'trunk':<12} {'scale':>5} {'ROC AUC (mean ± sd)':>20} {'bal. acc.':>16} {'s/1k patches':>13}")
    for scale in args.scales:
        for trunk in ("capricorn", "random"):
            start = time.perf_counter()
            features = _features(images, scale, trunk, args.seed)
            seconds = (time.perf_counter() - start) * 1000 / len(images)
            auc, balanced = _grouped_probe(features, y, groups, args.seed)
            print(f"{trunk:<12} {scale:>5} {np.mean(auc):>12.3f} ± {np.std(auc, ddof=1):.3f} "
                  f"{np.mean(balanced):>8.3f} ± {np.std(balanced, ddof=1):.3f} {seconds:>13.1f}", flush=True)
    return 0


def _features(images, scale: int, trunk: str, seed: int):
    """Global-average-pooled DenseNet121 features of ``images`` resized to ``scale`` px."""
    import keras
    import numpy as np
    import tensorflow as tf

    from bcc_model.models.pretrained import densenet121_trunk

    keras.utils.set_random_seed(seed)
    shape = (scale, scale, 3)
    model = (densenet121_trunk(shape) if trunk == "capricorn" else
             keras.applications.DenseNet121(include_top=False, weights=None, input_shape=shape))
    pooled = keras.Sequential([model, keras.layers.GlobalAveragePooling2D()])
    out = []
    for start in range(0, len(images), 64):
        batch = tf.image.resize(images[start:start + 64].astype(np.float32), (scale, scale), method="bilinear")
        out.append(pooled(keras.applications.densenet.preprocess_input(batch.numpy()), training=False).numpy())
    return np.concatenate(out)


def _grouped_probe(features, y, groups, seed: int) -> tuple[list[float], list[float]]:
    """ROC AUC and balanced accuracy of a patient-weighted logistic regression over 5 patient folds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from bcc_model.training.cv import patient_folds
    from bcc_model.training.tfdata import patient_weights

    fold_of = patient_folds(y, groups, 5, seed)
    auc, balanced = [], []
    for fold in range(5):
        fit, held = fold_of != fold, fold_of == fold
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=2000))
        probe.fit(features[fit], y[fit], logisticregression__sample_weight=patient_weights(y[fit], groups[fit], 2))
        p = probe.predict_proba(features[held])[:, 1]
        auc.append(roc_auc_score(y[held], p))
        balanced.append(balanced_accuracy_score(y[held], (p >= 0.5).astype(int)))
    return auc, balanced


if __name__ == "__main__":
    raise SystemExit(main())
