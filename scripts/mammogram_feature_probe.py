"""Is there cancer signal a pretrained trunk can read in these mammograms? A grouped-CV probe.

Every image of mini-MIAS and of the RSNA folder goes through the mammogram hygiene steps
(polarity, breast crop, orientation, pectoral removal, square padding) to ``--size`` px, and the
pinned Capricorn DenseNet121 trunk (ImageNet weights, frozen) turns it into a feature map: one
1024-d descriptor per 32 px cell, each seeing a patch of the breast. Then, all scored out of fold
over patient-grouped folds:

* RSNA cancer vs negative from the image's pooled cells (mean, max, both), against the
  histogram-only baseline of ``evaluation.baseline`` on the same folds;
* a cell-level lesion detector on MIAS (cells whose centre lies in an annotated lesion against
  cells of normal breasts), slid over every image as a lesion map, scored by the pointing game on
  MIAS lesions and by the map's maximum as an abnormal-vs-normal score.

Features are cached in ``--cache`` (they take most of the time). Usage:
    python scripts/mammogram_feature_probe.py --mias ../shared/data/mammography \
        --rsna ../shared/data/mammography-rsna [--size 384]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HYGIENE = ("to_grey", "polarity", "breast_crop", "laterality_flip", "pectoral_removal", "pad_square", "resize")


def _features(data_dir: Path, files: list[str], size: int, lesions=None):
    """(N, g, g, 1024) DenseNet121 cell features and (N, g, g) lesion-cell masks (None without lesions)."""
    import keras
    import numpy as np

    from bcc_model.datasets.lesions import circle_mask
    from bcc_model.imaging.io import read_image
    from bcc_model.imaging.preprocess import to_model_input_with_mask
    from bcc_model.registry import get_modality
    from bcc_model.models.pretrained import densenet121_trunk

    spec = replace(get_modality("mammography"), preprocessing=HYGIENE, input_size=size)
    trunk = densenet121_trunk((size, size, 3))
    cells = size // 32
    out, masks = [], []
    for start in range(0, len(files), 16):
        batch, batch_masks = [], []
        for file in files[start:start + 16]:
            pixels = read_image(data_dir / file).pixels
            grey = pixels if pixels.ndim == 2 else pixels[..., 0]
            circles = (lesions or {}).get(file) or []
            image, mask = to_model_input_with_mask(grey, circle_mask(grey.shape, circles), spec)
            batch.append(np.repeat(image, 3, axis=-1))
            coverage = mask.reshape(cells, 32, cells, 32).mean(axis=(1, 3))
            batch_masks.append(coverage >= 0.25)
        x = keras.applications.densenet.preprocess_input(np.stack(batch))
        out.append(trunk(x, training=False).numpy().astype(np.float16))
        masks += batch_masks
        print(f"  {data_dir.name}: {min(start + 16, len(files))}/{len(files)}", flush=True)
    return np.concatenate(out), np.stack(masks)


def main(argv: list[str] | None = None) -> int:
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from bcc_model.datasets.lesions import read_circles
    from bcc_model.evaluation.baseline import grey_histograms
    from bcc_model.training.cv import patient_folds

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mias", required=True, type=Path)
    parser.add_argument("--rsna", required=True, type=Path)
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--cache", type=Path, default=ROOT / "runs" / "mammogram_features")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    sets = {}
    for name, folder in (("mias", args.mias), ("rsna", args.rsna)):
        table = pd.read_csv(folder / "labels.csv", dtype=str)
        cache = args.cache / f"{name}_{args.size}.npz"
        if not cache.is_file():
            features, masks = _features(folder, table["file"].tolist(), args.size,
                                        read_circles(folder) if name == "mias" else None)
            np.savez(cache, features=features, masks=masks)
        stored = np.load(cache)
        sets[name] = (table, stored["features"].astype(np.float32), stored["masks"])

    def grouped_oof(x, y, groups, c=0.05, folds=5):
        fold_of = patient_folds(y, groups, folds, args.seed)
        p = np.zeros(len(y))
        for fold in range(folds):
            fit, held = fold_of != fold, fold_of == fold
            model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000))
            p[held] = model.fit(x[fit], y[fit]).predict_proba(x[held])[:, 1]
        return p

    table, features, _ = sets["rsna"]
    y, groups = (table["label"] == "malignant").to_numpy(int), table["group"].to_numpy()
    breast = np.abs(features).sum(-1) > 0
    pooled = {"mean": features.mean(axis=(1, 2)), "max": features.max(axis=(1, 2))}
    pooled["mean+max"] = np.concatenate([pooled["mean"], pooled["max"]], axis=1)
    print(f"RSNA {len(y)} images, {len(np.unique(groups))} patients; patient-grouped 5-fold out-of-fold ROC AUC:")
    print(f"  grey-level histogram baseline  {roc_auc_score(y, grouped_oof(grey_histograms(args.rsna, table['file'].tolist()), y, groups, c=1.0)):.3f}")
    for name, x in pooled.items():
        for c in (0.001, 0.01):
            print(f"  trunk cells pooled by {name:<9} C={c:<6} {roc_auc_score(y, grouped_oof(x, y, groups, c=c)):.3f}",
                  flush=True)
    del breast

    table, features, masks = sets["mias"]
    groups = table["group"].to_numpy()
    abnormal = (table["label"] != "normal").to_numpy(int)
    fold_of = patient_folds(abnormal, groups, 5, args.seed)
    maps = np.zeros(features.shape[:3])
    for fold in range(5):
        fit, held = fold_of != fold, fold_of == fold
        cells = features[fit].reshape(-1, features.shape[-1])
        lesion = masks[fit].reshape(-1)
        normal = np.repeat(abnormal[fit] == 0, masks.shape[1] * masks.shape[2])
        tissue = np.abs(cells).sum(-1) > 0
        keep = (lesion | normal) & tissue
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=3000, class_weight="balanced"))
        model.fit(cells[keep], lesion[keep].astype(int))
        held_cells = features[held].reshape(-1, features.shape[-1])
        maps[held] = model.predict_proba(held_cells)[:, 1].reshape(-1, *features.shape[1:3])
    maps[np.abs(features).sum(-1) == 0] = 0
    has = masks.reshape(len(masks), -1).any(axis=1)
    peak = maps.reshape(len(maps), -1).argmax(axis=1)
    hits = masks.reshape(len(masks), -1)[np.arange(len(masks)), peak]
    print(f"MIAS {len(table)} images: lesion-cell detector, patient-grouped 5-fold out of fold")
    print(f"  pointing game (map maximum in an annotated lesion): {hits[has].mean():.3f} of {int(has.sum())}")
    top = np.sort(maps.reshape(len(maps), -1), axis=1)[:, -3:].mean(axis=1)
    malignant = (table["label"] == "malignant").to_numpy(int)
    for name, score in (("max", maps.reshape(len(maps), -1).max(axis=1)), ("top-3 mean", top)):
        print(f"  map {name}: abnormal-vs-normal ROC AUC {roc_auc_score(abnormal, score):.3f}, "
              f"malignant-vs-rest {roc_auc_score(malignant, score):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
