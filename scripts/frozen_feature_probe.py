"""How much do frozen pretrained VGG16 features say about a modality? Train vs validation only.

A cheap check before fine-tuning: pooled conv4_3 / conv5_3 features of the pretrained trunk
(``bcc_model.pretrained``), logistic regression fitted on the training split, scored on the
validation split of the same seeded group split that ``train`` uses. The test split is never
loaded. Prints accuracy, log loss and, for three-class modalities, abnormal-vs-normal and
malignant-vs-rest ROC AUC, per feature set and regularisation strength.

    python scripts/frozen_feature_probe.py --modality ultrasound --data ../shared/data/ultrasound --image-size 224
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bcc_model.models.architectures import build_vgg16  # noqa: E402
from bcc_model.datasets.folders import discover, load_images
from bcc_model.datasets.splits import split_by_group
from bcc_model.registry import get_modality, modality_keys  # noqa: E402


def pooled_features(images: np.ndarray) -> dict[str, np.ndarray]:
    """Global-average-pooled conv4_3 and conv5_3, and global-max-pooled conv5_3, per image."""
    import keras

    trunk = build_vgg16(images.shape[1:], 2, blocks=5, frozen_blocks=5)
    conv4, conv5 = trunk.get_layer("block4_conv3").output, trunk.get_layer("last_conv").output
    pooled = keras.Model(trunk.input, [keras.layers.GlobalAveragePooling2D()(conv4),
                                       keras.layers.GlobalAveragePooling2D()(conv5),
                                       keras.layers.GlobalMaxPooling2D()(conv5)])
    conv4_avg, conv5_avg, conv5_max = pooled.predict(images.astype(np.float32), batch_size=16, verbose=0)
    return {"conv4 avg": conv4_avg, "conv5 avg": conv5_avg, "conv5 max": conv5_max,
            "all": np.concatenate([conv4_avg, conv5_avg, conv5_max], axis=1)}


def main(argv: list[str] | None = None) -> int:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modality", required=True, choices=[k for k in modality_keys() if k != "cytology"])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    spec = replace(get_modality(args.modality), input_size=args.image_size)
    manifest = split_by_group(discover(args.data, spec), seed=args.seed)
    manifest = manifest[manifest["split"] != "test"].reset_index(drop=True)
    labels = manifest["label"].map({label: i for i, label in enumerate(spec.labels)}).to_numpy()
    train = (manifest["split"] == "train").to_numpy()
    features = pooled_features(load_images(manifest, args.data, spec))
    y_val = labels[~train]
    print(f"{args.modality} at {args.image_size} px: {train.sum()} training, {(~train).sum()} validation images")
    for name, x in features.items():
        for c in (0.01, 0.1, 1.0):
            model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000, class_weight="balanced"))
            probs = model.fit(x[train], labels[train]).predict_proba(x[~train])
            line = (f"{name:10s} C={c:<5} accuracy {accuracy_score(y_val, probs.argmax(1)):.3f} "
                    f"log loss {log_loss(y_val, probs, labels=list(range(len(spec.labels)))):.3f}")
            if len(spec.labels) == 3:
                line += (f" abnormal AUC {roc_auc_score(y_val > 0, 1 - probs[:, 0]):.3f}"
                         f" malignant AUC {roc_auc_score(y_val == spec.positive_index, probs[:, spec.positive_index]):.3f}")
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
