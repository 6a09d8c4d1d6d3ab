"""Does the pinned Capricorn DenseNet121 trunk (ImageNet weights) carry anything for IDC? A grouped-CV probe.

Frozen trunk features (global average pooled) of H&E patches, at several input scales, feed a
patient-weighted logistic regression scored by patient-grouped 5-fold cross-validation; the same
probe on a randomly initialised DenseNet121 (seeded) is the control. With ``--fine-tune N`` the
whole network (trunk and a new 2-way head) is instead trained end to end for N epochs on each
fold's training patients, from the Capricorn weights and from the random start, and scored on
the fold's held-out patients (3 folds: fine-tuning a DenseNet121 is ~30x the cost of a probe). Only patients outside the
bundle's test split are used (the split of ``python -m bcc_model.train`` with the same seed), at
most ``--per-patient`` patches each, so that every patient counts and the probe fits on two cores.

Usage:
    python scripts/probe_pretrained.py --data ../shared/data/histopathology [--scales 64 112 224]
    python scripts/probe_pretrained.py --data ../shared/data/histopathology --scales 64 --fine-tune 3
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
    from bcc_model.registry import get_modality

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--scales", type=int, nargs="+", default=[64, 112, 224])
    parser.add_argument("--per-patient", type=int, default=20)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--trunks", nargs="+", default=["capricorn", "random"],
                        choices=("capricorn", "random", "se_resnet"),
                        help="networks to compare; se_resnet (the shipped H&E architecture at its native 50 px, "
                             "random start) only with --fine-tune")
    parser.add_argument("--fine-tune", type=int, default=0, metavar="EPOCHS",
                        help="train the whole network end to end for EPOCHS per fold instead of a frozen probe")
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
        for trunk in args.trunks:
            start = time.perf_counter()
            if args.fine_tune:
                auc, balanced = _grouped_fine_tune(images, y, groups, scale, trunk, args.fine_tune, args.seed)
            else:
                auc, balanced = _grouped_probe(_features(images, scale, trunk, args.seed), y, groups, args.seed)
            seconds = (time.perf_counter() - start) * 1000 / len(images)
            print(f"{trunk:<12} {scale:>5} {np.mean(auc):>12.3f} ± {np.std(auc, ddof=1):.3f} "
                  f"{np.mean(balanced):>8.3f} ± {np.std(balanced, ddof=1):.3f} {seconds:>13.1f}", flush=True)
    return 0


def _features(images, scale: int, trunk: str, seed: int):
    """Global-average-pooled DenseNet121 features of ``images`` resized to ``scale`` px."""
    import keras
    import numpy as np

    pooled = keras.Sequential([_network(scale, trunk, seed), keras.layers.GlobalAveragePooling2D()])
    return np.concatenate([pooled(_densenet_inputs(images[start:start + 64], scale), training=False).numpy()
                           for start in range(0, len(images), 64)])


def _network(scale: int, trunk: str, seed: int):
    """DenseNet121 (Capricorn weights or seeded random) with global average pooling."""
    import keras

    from bcc_model.models.pretrained import densenet121_trunk

    keras.utils.set_random_seed(seed)
    shape = (scale, scale, 3)
    model = (densenet121_trunk(shape) if trunk == "capricorn" else
             keras.applications.DenseNet121(include_top=False, weights=None, input_shape=shape))
    return model


def _densenet_inputs(images, scale: int):
    import keras
    import numpy as np
    import tensorflow as tf

    resized = tf.image.resize(images.astype(np.float32), (scale, scale), method="bilinear").numpy()
    return keras.applications.densenet.preprocess_input(resized)


def _grouped_fine_tune(images, y, groups, scale: int, trunk: str, epochs: int, seed: int
                       ) -> tuple[list[float], list[float]]:
    """ROC AUC and balanced accuracy of the whole network fine-tuned on 2 of 3 patient folds, per fold."""
    import keras
    import numpy as np
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    from bcc_model.training.cv import patient_folds
    from bcc_model.training.tfdata import patient_weights

    from bcc_model.models.architectures import build_model
    from bcc_model.registry import get_modality

    spec = get_modality("histopathology")
    x = images.astype(np.float32) if trunk == "se_resnet" else _densenet_inputs(images, scale)
    fold_of = patient_folds(y, groups, 3, seed)
    auc, balanced = [], []
    for fold in range(3):
        fit, held = fold_of != fold, fold_of == fold
        if trunk == "se_resnet":  # the shipped architecture, as the bundle builds it
            keras.utils.set_random_seed(seed + fold)
            network = build_model("se_resnet", spec.input_shape, 2, **dict(spec.recipe.arch_params["se_resnet"]))
        else:
            network = keras.Sequential([_network(scale, trunk, seed + fold), keras.layers.GlobalAveragePooling2D(),
                                        keras.layers.Dropout(0.3), keras.layers.Dense(2, activation="softmax")])
        network.compile(optimizer=keras.optimizers.AdamW(3e-4, weight_decay=1e-4),
                        loss="sparse_categorical_crossentropy")
        rng = np.random.default_rng(seed + fold)
        for _ in range(epochs):  # flips and quarter turns, fresh each epoch
            flipped = np.where(rng.random(fit.sum())[:, None, None, None] < 0.5, x[fit][:, :, ::-1], x[fit])
            turned = np.rot90(flipped, k=int(rng.integers(4)), axes=(1, 2))
            network.fit(turned, y[fit], sample_weight=patient_weights(y[fit], groups[fit], 2), batch_size=32,
                        epochs=1, verbose=0)
        p = network.predict(x[held], batch_size=128, verbose=0)[:, 1]
        auc.append(roc_auc_score(y[held], p))
        balanced.append(balanced_accuracy_score(y[held], (p >= 0.5).astype(int)))
        print(f"  {trunk} {scale}px fine-tuned, fold {fold + 1}/3: ROC AUC {auc[-1]:.3f}", flush=True)
    return auc, balanced


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
