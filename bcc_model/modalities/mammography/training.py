"""Training the mammography cell model: two data sets, cached trunk features, pooling chosen by grouped CV.

What happens, in order:
1. Each data folder (MIAS with lesion circles; optionally an RSNA-style screening folder with
   ``negative/`` and ``malignant/``) is indexed and split into train / validation / test by whole
   patients, and every file's sha256 goes into the manifest.
2. Each frozen trunk of the registry (``arch_params``: DenseNet121 and VGG16 cell models) turns
   every image (and augmented copies of the MIAS training images) into cell features, cached per
   image (``modalities/mammography/features.py``).
3. Patient-grouped cross-validation over every non-test patient of both sets compares trunk x
   ``cell_poolings`` x number of epochs on the same folds; the rule, fixed in advance, is the mean
   over data sets of the out-of-fold malignant-vs-rest ROC AUC.
4. The operating point (temperature, threshold, indeterminate band) is fitted on the chosen
   recipe's out-of-fold predictions; the head is trained once more on all non-test patients and
   copied into the full image model.
5. Each data set's test patients are scored once, through the full model (``modalities/mammography/scoring.py``).

Why the losses look as they do: the image loss is cross-entropy against the label's *set* of
classes (``models.mil.set_cross_entropy``; RSNA's negative is {normal, benign}), and each data set
carries half of the weight, split equally between its classes, so neither the source nor its class
mix can stand in for the label (RSNA cancers are never learnt against MIAS normals). The lesion
loss (weight ``lesion_loss_weight``) teaches the lesion map on MIAS cells.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from bcc_model.modalities.mammography.choice import (PoolingCV, operating_point, patient_pooling, set_targets,
                                                     source_weights)
from bcc_model.modalities.mammography.features import Source
from bcc_model.registry import ModalitySpec
from bcc_model.training.config import TrainConfig, TrainingError, check_architectures

log = logging.getLogger(__name__)

__all__ = ["PoolingCV", "index_folders", "load_sources", "fit_head", "cross_validate_poolings",
           "lesion_first_epochs", "train_mil", "EPOCH_CHECKPOINTS"]

EPOCH_CHECKPOINTS = (5, 10, 20)
"""Epochs at which cross-validation scores the held-out folds (those above ``--epochs`` are dropped)."""
AUGMENTED_COPIES = 2
"""Augmented copies of each MIAS training image (their trunk features are cached like the originals)."""
HELD_OUT_CURVES = ("val_loss", "val_accuracy", "val_auc")
"""Per-epoch held-out scores; the bundle's history shows their mean over the cross-validation folds."""


def index_folders(config: TrainConfig, spec: ModalitySpec) -> list[tuple[Path, pd.DataFrame]]:
    """Every data folder of the run with its rows split by patient and hashed (once, for every trunk)."""
    from bcc_model.datasets.folders import discover
    from bcc_model.datasets.manifest import add_hashes
    from bcc_model.datasets.splits import split_by_group

    folders = [Path(config.data or spec.default_data_dir)] + ([Path(config.screening_data)] if config.screening_data else [])
    return [(folder, add_hashes(split_by_group(discover(folder, spec, negatives=True), seed=config.seed), folder))
            for folder in folders]


def load_sources(indexed: list[tuple[Path, pd.DataFrame]], spec: ModalitySpec, trunk, trunk_id: str, cache: Path,
                 seed: int) -> list[Source]:
    """Featurise every indexed folder with ``trunk`` (cached), with augmented copies where lesions are annotated."""
    from bcc_model.modalities.mammography.features import cached_features

    sources = []
    for folder, table in indexed:
        features, cells = cached_features(trunk, trunk_id, table, folder, spec, cache, seed=seed, progress=folder.name)
        augmented = []
        if not set(table["label"]) - set(spec.labels):  # copies only where lesions are annotated
            fit_rows = table[table["split"] != "test"].reset_index(drop=True)
            augmented = [cached_features(trunk, trunk_id, fit_rows, folder, spec, cache, copy=copy, seed=seed,
                                         progress=f"{folder.name} copy {copy}")
                         for copy in range(1, AUGMENTED_COPIES + 1)]
        flipped = tuple(cached_features(trunk, trunk_id, table, folder, spec, cache, seed=seed, flip=flip,
                                        progress=f"{folder.name} {flip} flip")[0]
                        for flip in spec.recipe.test_time_flips)
        sources.append(Source(folder.name, folder, table, features, cells, augmented, flipped))
    return sources


def _fit_arrays(sources: list[Source], spec: ModalitySpec, keep: list[np.ndarray]):
    """Features, set targets, cell targets and weights of the rows ``keep[i]`` of each source, with copies."""
    parts = []
    for source, rows in zip(sources, keep):
        labels = source.table["label"][rows].reset_index(drop=True)
        # each source weighs the same in all, its augmented copies included
        weights = source_weights(labels) / (len(sources) * (1 + len(source.augmented)))
        parts.append((source.features[rows], set_targets(labels, spec), source.cells[rows], weights))
        fit_index = np.flatnonzero((source.table["split"] != "test").to_numpy())
        position = {row: i for i, row in enumerate(fit_index)}
        copy_rows = [position[r] for r in np.flatnonzero(rows) if r in position]
        for features, cells in source.augmented:
            parts.append((features[copy_rows], set_targets(labels, spec), cells[copy_rows], weights))
    return [np.concatenate(column) for column in zip(*parts)]


def _scores(p: np.ndarray, targets: np.ndarray, positive_index: int) -> dict[str, float]:
    """Set loss, set accuracy (arg-max inside the label's set) and malignant-vs-rest ROC AUC of one epoch."""
    chosen = targets[np.arange(len(targets)), p.argmax(axis=1)] == 1
    auc = _binary_auc(p[:, positive_index], (targets[:, positive_index] == 1).astype(int))
    return {"loss": float(np.mean(-np.log(np.clip((p * targets).sum(axis=1), 1e-7, 1)))),
            "accuracy": float(chosen.mean()), "auc": float("nan") if auc is None else auc}


def fit_head(spec: ModalitySpec, config: TrainConfig, arch: str, pooling: str, arrays, *, held=None, checkpoints=(),
             lesion_first: int = 0):
    """Train the cell head on cached features; returns ``(head, history, held-out predictions by epoch)``.

    The history has, per epoch, the optimiser's loss and the training images' set accuracy and
    ROC AUC; ``held``: ``(views, targets)`` scored after every epoch (its loss, accuracy and
    AUC become ``val_*``; ``views``: the features and those of each test-time flip, whose
    probabilities are averaged), and kept at the epochs in ``checkpoints`` (cross-validation).
    With ``lesion_first`` epochs, the fine-tuned units, the cell descriptor and the lesion layer
    first learn lesion cells against normal tissue alone (the images with known cells), then the
    whole-image objective starts from there: lesion patches first, as Shen et al. (2019) trained.
    """
    import keras
    import tensorflow as tf

    from bcc_model.modalities.mammography.mil import build_mil_head, masked_cell_entropy, set_cross_entropy

    keras.utils.set_random_seed(config.seed)
    features, targets, cells, weights = arrays
    params = {k: v for k, v in spec.recipe.arch_params[arch].items()
              if k in ("width", "dropout", "k", "tuned_from", "pretrained")}
    head = build_mil_head(features.shape[1], len(spec.labels), channels=features.shape[-1], pooling=pooling, **params)

    def compile_for(image_weight: float, lesion_weight: float) -> None:
        head.compile(optimizer=keras.optimizers.AdamW(config.lr, weight_decay=1e-4),
                     loss={"probabilities": set_cross_entropy, "lesion_map": masked_cell_entropy},
                     loss_weights={"probabilities": image_weight, "lesion_map": lesion_weight})

    known = (cells >= 0).any(axis=1)
    if lesion_first and known.any():
        compile_for(0.0, 1.0)
        lesion_data = tf.data.Dataset.from_tensor_slices(
            (features[known], {"probabilities": targets[known], "lesion_map": cells[known]})).shuffle(
            int(known.sum()), seed=config.seed).batch(config.batch_size).map(lambda x, y: (tf.cast(x, tf.float32), y))
        head.fit(lesion_data, epochs=lesion_first, verbose=0)
    compile_for(1.0, float(spec.recipe.lesion_loss_weight or 0.0))
    scale = len(weights) / weights.sum()
    data = tf.data.Dataset.from_tensor_slices(
        (features, {"probabilities": targets, "lesion_map": cells}, weights * scale)).shuffle(
        len(weights), seed=config.seed, reshuffle_each_iteration=True).batch(config.batch_size).map(
        lambda x, y, w: (tf.cast(x, tf.float32), y, w))

    def predict(x: np.ndarray) -> np.ndarray:
        batches = tf.data.Dataset.from_tensor_slices(x).batch(64).map(lambda b: tf.cast(b, tf.float32))
        return head.predict(batches, verbose=0)["probabilities"]

    held_out, rows = {}, []

    class Scores(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            train = _scores(predict(features), targets, spec.positive_index)
            row = {"epoch": epoch, "loss": float(logs["probabilities_loss"]),
                   "lesion_loss": float(logs["lesion_map_loss"]), "accuracy": train["accuracy"],
                   "auc": train["auc"], "learning_rate": float(config.lr)}
            if held is not None:
                p = np.mean([predict(view) for view in held[0]], axis=0)
                row.update({f"val_{k}": v for k, v in _scores(p, held[1], spec.positive_index).items()})
                if epoch + 1 in checkpoints:
                    held_out[epoch + 1] = p
            rows.append(row)

    start = time.time()
    head.fit(data, epochs=config.epochs, verbose=0, callbacks=[Scores()])
    history = pd.DataFrame(rows)
    history["epoch_seconds"] = (time.time() - start) / max(len(rows), 1)
    return head, history, held_out


def lesion_first_epochs(config: TrainConfig, spec: ModalitySpec, arch: str) -> int:
    """Epochs of lesion-cell pre-training (``--patch-pretrain``, ``--patch-epochs``).

    On by default where trunk units are fine-tuned (``tuned_from``): there the lesion cells have
    weights to shape before the weak image label arrives; a frozen trunk's 1x1 head gains nothing.
    """
    wanted = config.patch_pretrain if config.patch_pretrain is not None else "tuned_from" in spec.recipe.arch_params[arch]
    return config.patch_epochs if wanted else 0


def _binary_auc(p: np.ndarray, positive: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(positive, p)) if 0 < positive.sum() < len(positive) else None


def cross_validate_poolings(sources: list[Source], spec: ModalitySpec, config: TrainConfig, folds: int,
                            arch: str) -> PoolingCV:
    """Out-of-fold scores of every pooling x epoch checkpoint of ``arch``, over the non-test patients of every source.

    The folds depend only on the seed and the patients, so every trunk meets the same folds.
    """
    from bcc_model.datasets.splits import patient_folds

    fold_of = []
    for source in sources:
        rows = source.table["split"] != "test"
        codes = source.table["label"].astype("category").cat.codes.to_numpy()
        f = np.full(len(source.table), -1)
        f[rows.to_numpy()] = patient_folds(codes[rows.to_numpy()], source.table["group"][rows].to_numpy(), folds,
                                           config.seed)
        fold_of.append(f)
    checkpoints = tuple(e for e in EPOCH_CHECKPOINTS if e <= config.epochs) or (config.epochs,)
    results, oof = {}, {}
    for pooling in spec.recipe.cell_poolings:
        predictions = {e: [np.zeros((len(s.table), len(spec.labels)), np.float32) for s in sources] for e in checkpoints}
        curves = []
        for fold in range(folds):
            fit = _fit_arrays(sources, spec, [(f >= 0) & (f != fold) for f in fold_of])
            held_rows = [f == fold for f in fold_of]
            views = [np.concatenate([s.features[r] for s, r in zip(sources, held_rows)])]
            views += [np.concatenate([s.flipped[v][r] for s, r in zip(sources, held_rows)])
                      for v in range(len(spec.recipe.test_time_flips))]
            held = (views, np.concatenate([set_targets(s.table["label"][r], spec) for s, r in zip(sources, held_rows)]))
            _, history, scored = fit_head(spec, config, arch, pooling, fit, held=held, checkpoints=checkpoints,
                                          lesion_first=lesion_first_epochs(config, spec, arch))
            curves.append(history[list(HELD_OUT_CURVES)].to_numpy())
            for epoch, p in scored.items():
                start = 0
                for s, rows in enumerate(held_rows):
                    predictions[epoch][s][rows] = p[start:start + rows.sum()]
                    start += rows.sum()
        for epoch in checkpoints:
            per_source, per_fold = {}, {}
            for source, f, p in zip(sources, fold_of, predictions[epoch]):
                rows = f >= 0
                positive = (source.table["label"] == spec.positive_label).to_numpy(int)
                per_source[source.name] = _binary_auc(p[rows, spec.positive_index], positive[rows])
                folds_auc = [_binary_auc(p[f == k, spec.positive_index], positive[f == k]) for k in range(folds)]
                defined = [v for v in folds_auc if v is not None]
                per_fold[source.name] = float(np.mean(defined)) if defined else None
            key = f"{arch} {pooling}@{epoch}"
            # pooled: the folds' outputs ranked together (the rule); per fold: each model on its own patients,
            # free of any scale difference between the fold models (reported beside it, not used to choose)
            results[key] = {"architecture": arch, "pooling": pooling, "epochs": epoch, "roc_auc": per_source,
                            "mean_roc_auc": float(np.mean([v for v in per_source.values() if v is not None])),
                            "fold_mean_roc_auc": per_fold}
            oof[key] = predictions[epoch]
            log.info(f"  CV {key}: " + ", ".join(f"{k} {v:.3f}" for k, v in per_source.items() if v is not None)
                  + f" -> mean {results[key]['mean_roc_auc']:.3f}")
        mean_curves = np.nanmean(curves, axis=0)
        for epoch in checkpoints:
            results[f"{arch} {pooling}@{epoch}"]["held_out_by_epoch"] = {
                name: [round(float(v), 4) for v in mean_curves[:, i]] for i, name in enumerate(HELD_OUT_CURVES)}
    chosen = max(results, key=lambda k: (results[k]["mean_roc_auc"], -results[k]["epochs"]))
    return PoolingCV(n_splits=folds, candidates=results, chosen=chosen, fold_of=fold_of, oof=oof[chosen],
                     n_patients={s.name: int(s.table.loc[s.table["split"] != "test", "group"].nunique())
                                 for s in sources})


def _trunk_id(arch: str, params, seed: int) -> str:
    """What names a trunk's frozen part in the feature cache: its pinned wheel's sha256 (and Lite0's split), or the seed of a random one."""
    from bcc_model.models.pretrained import wheel_for

    split = f"-to{params['tuned_from']}" if "tuned_from" in params else ""
    if not params.get("pretrained"):
        return f"random-{arch}-{seed}{split}"
    return wheel_for(arch).sha256 + split


def train_mil(config: TrainConfig, spec: ModalitySpec) -> Path:
    """The whole run: data, features, CV, operating point, final head, test, bundle; the bundle's folder.

    Raises:
        TrainingError: unknown trunks or poolings, missing pretrained weights.
        DataError: an unreadable data folder.
    """
    from bcc_model.models.architectures import build_model
    from bcc_model.modalities.mammography.mil import transfer_head, trunk_model
    from bcc_model.models.pretrained import PretrainedMissing
    from bcc_model.training.fit import configure_determinism
    from bcc_model.modalities.mammography.scoring import test_metrics
    from bcc_model.modalities.mammography.failure_cases import failure_case_pictures
    from bcc_model.training.writer import add_evaluations, write_bundle

    started = time.time()
    configure_determinism(config.seed)
    spec = replace(spec, input_size=config.image_size) if config.image_size else spec
    archs = tuple(config.arch or spec.recipe.arch_params)
    check_architectures(spec, archs)
    unknown = sorted(set(config.candidates or ()) - set(spec.recipe.cell_poolings))
    if unknown:  # refused before any image is read
        raise TrainingError(f"pooling(s) {unknown} not configured for {spec.key}; "
                            f"valid: {', '.join(spec.recipe.cell_poolings)}")
    spec = spec.with_recipe(cell_poolings=tuple(config.candidates or spec.recipe.cell_poolings))
    work = Path(config.work_dir or Path("runs") / spec.key)
    folds = config.cv_folds or 5
    indexed = index_folders(config, spec)
    runs = {}
    for arch in archs:  # every trunk meets the same patients and folds
        try:
            model = build_model(arch, spec.input_shape, len(spec.labels), **spec.recipe.arch_params[arch])
        except PretrainedMissing as err:
            raise TrainingError(str(err)) from err
        sources = load_sources(indexed, spec, trunk_model(model), _trunk_id(arch, spec.recipe.arch_params[arch], config.seed),
                               work / "features", config.seed)
        log.info(f"Cross-validating {arch}: {len(spec.recipe.cell_poolings)} poolings over {folds} patient folds ...")
        runs[arch] = (sources, cross_validate_poolings(sources, spec, config, folds, arch))
    arch = max(runs, key=lambda a: runs[a][1].best["mean_roc_auc"])
    sources, cv = runs[arch]
    chosen = cv.best
    log.info(f"Chosen: {cv.chosen} (mean out-of-fold ROC AUC {chosen['mean_roc_auc']:.3f})")
    choice = operating_point(sources, cv, spec)
    choice["patient_pooling"] = patient_pooling(sources, cv, spec)
    final_config = replace(config, epochs=chosen["epochs"])
    head, history, _ = fit_head(spec, final_config, arch, chosen["pooling"],
                                _fit_arrays(sources, spec, [(s.table["split"] != "test").to_numpy() for s in sources]),
                                lesion_first=lesion_first_epochs(config, spec, arch))
    params = {**spec.recipe.arch_params[arch], "pooling": chosen["pooling"]}
    spec = spec.with_recipe(default_arch=arch, arch_params={arch: params})
    model = transfer_head(head, build_model(arch, spec.input_shape, len(spec.labels), **params))
    for name, curve in chosen["held_out_by_epoch"].items():  # validation curves: the folds' mean
        history[name] = curve[:len(history)]
    metrics, cases = test_metrics(model, head, sources, spec, choice, config)
    manifest = pd.concat([s.table.assign(file=s.name + "/" + s.table["file"], group=s.name + ":" + s.table["group"])
                          for s in sources], ignore_index=True)
    results = {arch: {"model": model, "history": history, "validation": choice, "metrics": metrics,
                      "lesion_map": head, "config": final_config}}
    lesion_images = {s.name: int((s.cells == 1).any(axis=1).sum()) for s in sources}
    record = cv.record({key: c for _, run in runs.values() for key, c in run.candidates.items()})
    extra = {"pooling_cross_validation": record,
             "lesion_supervision": {"loss_weight": spec.recipe.lesion_loss_weight, "images_with_geometry": lesion_images,
                                    "cells": "lesion cells of annotated lesions against tissue cells of normal breasts"},
             "data_sets": {s.name: {"images": int(len(s.table)), "patients": int(s.table["group"].nunique()),
                                    "labels": sorted(set(s.table["label"]))} for s in sources}}
    out_dir = config.out or spec.bundle_dir
    write_bundle(spec, final_config, arch, results, manifest, " + ".join(s.name for s in sources), out_dir,
                 time.time() - started, extra=extra)
    records, files = failure_case_pictures(cases, {s.name: s.data_dir for s in sources}, spec, choice["threshold"])
    add_evaluations(out_dir, {"failure_cases": records}, files)
    log.info(f"Bundle written to {out_dir}")
    return Path(out_dir)
