"""Image training, start to end: data, split, each architecture, choice, bundle.

What happens, in order:
1. Seeds and deterministic ops are fixed, so the same data and arguments give the same weights.
2. The data folder is indexed and split into train / validation / test by whole groups
   (patients); every file's sha256 goes into the manifest saved beside the weights.
3. Each requested architecture is trained on the same split with the same seed: class-weighted
   loss, augmentation from the registry, ReduceLROnPlateau, EarlyStopping on validation loss
   with the best weights restored, a checkpoint every epoch (``--resume`` continues a killed
   run) and TensorBoard logs in ``--work-dir``. Modalities with lesion geometry and a
   ``patch_fraction`` (mammography, ultrasound) first pre-train the same network on lesion and
   tissue patches of the training split (``training/patches.py``), then train on whole images; with a
   ``lesion_loss_weight`` an auxiliary head also learns the lesion masks during training
   (``models/lesion_head.py``), and only the plain classifier is bundled.
4. On validation data only: temperature scaling, the decision threshold and the indeterminate
   band; the architecture with the best validation ROC AUC is selected.
5. The held-out test patients are scored once per architecture (metrics with patient-level
   bootstrap CIs, the registry's extra binary tasks, and, with lesion geometry, the Grad-CAM
   pointing game / energy inside the lesion, ``evaluation/localisation.py``); the bundle is assembled in a temporary folder and moved into place only when
   complete.

"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from bcc_model.datasets.folders import discover, load_images
from bcc_model.datasets.manifest import add_hashes
from bcc_model.datasets.splits import SPLITS, split_by_group
from bcc_model.registry import ModalitySpec
from bcc_model.training.config import TrainConfig, TrainingError, check_architectures
from bcc_model.training.cv import CrossValidation, cross_validate_images
from bcc_model.training.fit import compile_model, configure_determinism, train_one
from bcc_model.training.selection import choose_and_test, select_architecture
from bcc_model.training.writer import write_bundle

log = logging.getLogger(__name__)

__all__ = ["train_images"]


def train_images(config: TrainConfig, base_spec: ModalitySpec) -> Path:
    """Train every requested architecture of an image modality and bundle the best; the bundle's folder.

    Raises:
        TrainingError: unknown architectures or recipes, missing pretrained weights, an empty split.
        DataError: an unreadable data folder.
    """
    spec = replace(base_spec, input_size=config.image_size) if config.image_size else base_spec
    archs = list(config.arch or spec.recipe.arch_params)
    check_architectures(spec, archs)
    try:  # an unknown recipe fails here, not after the data are loaded
        for name in config.candidates or ():
            spec.candidate(name)
    except KeyError as err:
        raise TrainingError(err.args[0]) from None
    data_dir = config.data or spec.default_data_dir
    manifest = add_hashes(split_by_group(discover(data_dir, spec), seed=config.seed), data_dir)
    configure_determinism(config.seed)
    started = time.time()
    log.info("Loading %d images from %s ...", len(manifest), data_dir)
    arrays = _split_arrays(manifest, load_images(manifest, data_dir, spec), spec)
    empty = [split for split in SPLITS if len(arrays[split][0]) == 0]
    if empty:
        raise TrainingError(f"the {empty[0]} split is empty; add more groups (patients)")
    masks = _lesion_masks(manifest, data_dir, spec)
    patches = _pretraining_patches(spec, arrays, masks, manifest, config)
    lesion = _lesion_supervision(spec, masks, manifest, config)
    work_root = config.work_dir or Path("runs") / spec.key
    cv, choice, work = None, None, {arch: work_root / arch for arch in archs}
    if config.cv_folds:
        inputs = _inputs_by_recipe(manifest, data_dir, spec, arrays)
        cv = _cross_validation(spec, config, inputs, manifest, archs, work_root)
        # Chosen on many patient folds: only the chosen recipe is trained on the train split, for
        # no more epochs than its folds needed, and its operating point comes from the
        # out-of-fold predictions of every non-test patient instead of the validation split alone.
        arch, spec = spec.candidate(cv.chosen)
        arrays = _split_arrays(manifest, inputs(spec, all_rows=True), spec)
        config = replace(config, epochs=min(config.epochs, max(e for e in cv.best_epochs if e)))
        choice = _oof_choice(cv, spec)
        archs, work = [arch], {arch: work_root / "chosen" / cv.chosen}
    results = {arch: _train_architecture(arch, spec, config, arrays, manifest, masks, patches, lesion, work[arch],
                                         choice=choice)
               for arch in archs}
    selected = select_architecture(results)
    log.info("Selected %s (best validation ROC AUC)", selected)
    kept = results[selected]
    extra = {**({} if kept["patches"] is None else {"pretraining": _pretraining_record(kept["patches"], spec, config)}),
             **({} if lesion is None else {"lesion_supervision": _lesion_supervision_record(lesion, kept)}),
             **({} if cv is None else {"cross_validation": cv.record,
                                       "teacher": _teacher_comparison(cv, kept, arrays, manifest, spec, config)})}
    out_dir = config.out or spec.bundle_dir
    write_bundle(spec, kept["config"], selected, results, manifest, Path(data_dir).name, out_dir, time.time() - started,
                 extra=extra or None)
    if spec.recipe.test_always:
        _validate_slides(spec, manifest, data_dir, out_dir)
    log.info("Bundle written to %s", out_dir)
    return Path(out_dir)


def _validate_slides(spec: ModalitySpec, manifest: pd.DataFrame, data_dir: Path, out_dir: Path) -> None:
    """Region mode of the written bundle on the complete slides of its test patients, added to the bundle.

    The registry's ``test_always`` put those patients in the test split, so the slides were seen
    by nothing in training, calibration or the choice of the network. They choose the slide
    context (leave-one-slide-out, ``evaluation.slides``), which ``model.json`` then records.
    """
    from bcc_model.datasets.slides import complete_patients
    from bcc_model.evaluation.slides import validate_slides
    from bcc_model.models.bundle import load_bundle
    from bcc_model.training.writer import add_evaluations

    table = pd.read_csv(Path(data_dir) / "labels.csv", dtype=str, keep_default_na=False)
    test = set(manifest.loc[manifest["split"] == "test", "group"])
    patients = [p for p in complete_patients(table) if p in test]
    if not patients:
        return
    log.info(f"Slide validation: region mode on {len(patients)} complete test slides ...")
    block, pictures, context = validate_slides(load_bundle(spec, out_dir, allow_unverified=True), table, data_dir, patients)
    files = {f"slide_{patient}.png": png for patient, png in pictures}
    for row in block["slides"]:
        row["picture"] = f"slide_{row['patient']}.png"
    add_evaluations(out_dir, {"slides": block}, files, {"region_context": block["summary"]["context"]})
    summary = block["summary"]
    log.info(f"Slides: mean tile ROC AUC {summary['mean_roc_auc']} with context chosen on the other slides "
          f"({summary['mean_roc_auc_patch_only']} patch alone), mean |IDC share error| "
          f"{summary['mean_abs_share_error']}; bundled context: {context.describe()}")


def _inputs_by_recipe(manifest: pd.DataFrame, data_dir: Path, spec: ModalitySpec, arrays: dict):
    """``inputs(candidate_spec, all_rows=False)``: model inputs as a candidate's preprocessing makes them.

    Non-test rows by default (what cross-validation sees), every row with ``all_rows``. Images
    are decoded again only for a recipe whose preprocessing differs (stain normalisation), once.
    """
    in_manifest_order = np.empty((len(manifest), *spec.input_shape), np.uint8)
    for split in SPLITS:
        in_manifest_order[(manifest["split"] == split).to_numpy()] = arrays[split][0]
    cache = {tuple(spec.preprocessing): in_manifest_order}
    non_test = (manifest["split"] != "test").to_numpy()

    def inputs(candidate: ModalitySpec, all_rows: bool = False) -> np.ndarray:
        key = tuple(candidate.preprocessing)
        if key not in cache:
            log.info(f"Preprocessing {len(manifest)} images with {' -> '.join(key)} ...")
            cache[key] = load_images(manifest, data_dir, candidate)
        return cache[key] if all_rows else cache[key][non_test]

    return inputs


def _cross_validation(spec: ModalitySpec, config: TrainConfig, inputs, manifest: pd.DataFrame, archs: list[str],
                      work_root: Path) -> CrossValidation:
    """Patient-grouped CV over the train and validation patients (``training/cv.py``); the test split stays out.

    The candidates are ``--candidates``, else the registry's ``cv_candidates`` recipes, or the
    architectures when it has none or ``--arch`` names them.
    """
    candidates = (list(config.candidates) if config.candidates else
                  list(spec.recipe.cv_candidates) if spec.recipe.cv_candidates and config.arch is None else archs)
    non_test = manifest[manifest["split"] != "test"]
    y = non_test["label"].map({label: i for i, label in enumerate(spec.labels)}).to_numpy()
    groups = non_test["group"].to_numpy()
    prevalence = non_test["prevalence_weight"].to_numpy(np.float64) if "prevalence_weight" in non_test else None
    cv = cross_validate_images(spec, config, inputs, y, groups, candidates, work_root, config.cv_folds,
                               prevalence=prevalence)
    # Kept beside the checkpoints: post-hoc calibration and conformal studies rerun on them without a GPU-hour.
    np.savez_compressed(work_root / "cv" / "oof.npz", oof=cv.oof, y=cv.y, groups=groups.astype(str),
                        files=non_test["file"].to_numpy().astype(str),
                        weights=np.ones(len(y)) if cv.weights is None else cv.weights)
    log.info(f"Cross-validation chose {cv.chosen} (best mean out-of-fold ROC AUC)")
    return cv


def _oof_choice(cv: CrossValidation, spec: ModalitySpec) -> dict:
    """The operating point fitted on the chosen candidate's out-of-fold predictions (all non-test patients)."""
    from bcc_model.training.selection import operating_choice

    fitted_on = (f"out-of-fold predictions of {cv.n_splits}-fold patient-grouped cross-validation "
                 f"({cv.n_patients} patients)")
    return operating_choice(cv.oof, cv.y, spec, fitted_on, cv.weights)  # sets: from the final network (choose_and_test)


def _teacher_comparison(cv: CrossValidation, kept: dict, arrays: dict, manifest: pd.DataFrame, spec: ModalitySpec,
                        config: TrainConfig) -> dict:
    """The chosen candidate's fold models as one averaged ensemble (the teacher) against the bundled model.

    Both are scored on the same test patients with the bundle's operating point, and timed on
    the same batch: an ensemble of k models costs k times the compute of the one it is compared with.
    """
    import keras

    from bcc_model.analysis.predictions import raw_probabilities
    from bcc_model.models.decision import OperatingPoint, apply_temperature
    from bcc_model.evaluation.metrics import compute_metrics
    from bcc_model.training.selection import case_weighting, split_weights

    x_test, y_test = arrays["test"]
    x_test = x_test.astype(np.float32)
    groups = manifest.loc[(manifest["split"] == "test").to_numpy(), "group"].tolist()
    choice = kept["validation"]
    point = OperatingPoint(spec.labels, spec.positive_index, choice["threshold"], tuple(choice["band"]),
                           choice["temperature"])
    folds = [keras.models.load_model(path, compile=False) for path in cv.fold_models]

    def scored(models: list) -> dict:
        start = time.perf_counter()
        raw = np.mean([raw_probabilities(m, x_test) for m in models], axis=0)
        seconds = time.perf_counter() - start
        per_patch_ms = seconds * 1000 / max(1, len(x_test))
        metrics = compute_metrics(apply_temperature(raw, choice["temperature"]), y_test, groups, point, split="test",
                                  n_resamples=config.bootstrap, seed=config.seed,
                                  weights=split_weights(arrays, "test"), weighting=case_weighting(spec))
        return {"n_models": len(models), "ms_per_patch": round(per_patch_ms, 3),
                "n_parameters": int(sum(m.count_params() for m in models)),
                "headline": {k: metrics["headline"][k] for k in ("balanced_accuracy", "roc_auc", "f1", "ece")}}

    return {"method": f"teacher: the {len(folds)} cross-validation fold models of {cv.chosen}, probabilities "
                      "averaged; student: the bundled model (one network). Same test patients and operating point; "
                      "time per patch measured on this machine over the whole test split.",
            "teacher": scored(folds), "student": scored([kept["model"]])}


def _split_arrays(manifest: pd.DataFrame, images: np.ndarray, spec: ModalitySpec) -> dict:
    """split name -> ``(x uint8 (N, H, W, C), y int (N,))`` in manifest order; ``<split>_groups`` -> patients."""
    label_index = {label: i for i, label in enumerate(spec.labels)}
    y_all = manifest["label"].map(label_index).to_numpy()
    member = {split: (manifest["split"] == split).to_numpy() for split in SPLITS}
    arrays = {split: (images[member[split]], y_all[member[split]]) for split in SPLITS}
    for split in SPLITS:  # patient weighting and cross-validation need each image's patient (and prevalence)
        arrays[f"{split}_groups"] = manifest.loc[member[split], "group"].to_numpy()
        if "prevalence_weight" in manifest.columns:
            arrays[f"{split}_prevalence"] = manifest.loc[member[split], "prevalence_weight"].to_numpy(np.float64)
    return arrays


def _train_architecture(arch: str, spec: ModalitySpec, config: TrainConfig, arrays: dict, manifest: pd.DataFrame,
                        masks: list | None, patches: dict | None, lesion: dict | None, work: Path,
                        choice: dict | None = None) -> dict:
    """Train one architecture, fix its operating point (on validation unless ``choice`` gives it), score the test split once."""
    from bcc_model.evaluation.metrics import format_metrics_table
    from bcc_model.models.lesion_head import classifier_only, lesion_map_model

    arch_config = config.for_arch(spec, arch)
    arch_patches = None if arch_config.patch_pretrain is False else patches
    configure_determinism(config.seed)
    build = None if arch_patches is None else _patch_pretrained(arch, spec, arch_patches, arch_config)
    trained, history = train_one(arch, spec, arrays, arch_config, work, build=build, lesion=lesion)
    model = classifier_only(trained)
    map_model = None if lesion is None else lesion_map_model(trained)
    test_mask = (manifest["split"] == "test").to_numpy()
    test_groups = manifest.loc[test_mask, "group"].tolist()
    choice, metrics = choose_and_test(model, arrays, test_groups, spec, config, choice)
    if masks is not None:
        metrics |= _localisation(model, map_model, arrays["test"], [m for m, t in zip(masks, test_mask) if t],
                                 test_groups, spec, config)
    log.info(f"\n[{arch}] validation: ROC AUC {choice['roc_auc']:.3f}, balanced accuracy "
          f"{choice['balanced_accuracy']:.3f}\n[{arch}] test (whole held-out groups):\n"
          f"{format_metrics_table(metrics)}\n")
    return {"model": model, "history": history, "validation": choice, "metrics": metrics,
            "lesion_map": map_model, "config": arch_config, "patches": arch_patches}


def _localisation(model, map_model, test: tuple[np.ndarray, np.ndarray], test_masks: list, test_groups: list[str],
                  spec: ModalitySpec, config: TrainConfig) -> dict:
    """Grad-CAM (and lesion-map) localisation scores on the test lesions."""
    from bcc_model.evaluation.localisation import explain_and_score
    from bcc_model.evaluation.localisation import lesion_map_localisation

    x_test, y_test = test
    scores = {"localisation": explain_and_score(model, x_test, y_test, test_masks, test_groups, spec,
                                                n_resamples=config.bootstrap, seed=config.seed)}
    if map_model is not None:
        scores["lesion_map_localisation"] = lesion_map_localisation(
            map_model, x_test.astype(np.float32), y_test, test_masks, test_groups, spec,
            n_resamples=config.bootstrap, seed=config.seed)
    return scores


def _lesion_masks(manifest: pd.DataFrame, data_dir: Path, spec: ModalitySpec) -> list | None:
    """Model-space lesion masks of every manifest row (``None`` entries: unknown geometry), or
    ``None`` when the modality has no lesion geometry."""
    if spec.recipe.lesion_source is None:
        return None
    from bcc_model.datasets.lesions import model_space_masks

    return model_space_masks(manifest, data_dir, spec)


def _lesion_supervision(spec: ModalitySpec, masks: list | None, manifest: pd.DataFrame,
                        config: TrainConfig) -> dict | None:
    """Training and validation masks for the lesion-map head, or ``None`` when it is off.

    Test masks never reach training: they only score localisation after it.
    """
    weight = config.lesion_weight if config.lesion_weight is not None else spec.recipe.lesion_loss_weight
    if not weight:
        return None
    if masks is None:
        log.warning(f"{spec.key} has no lesion geometry; the lesion-map head is off")
        return None
    split = manifest["split"].to_numpy()
    return {"weight": float(weight),
            **{name: [m for m, s in zip(masks, split) if s == name] for name in ("train", "validation")}}


def _lesion_supervision_record(lesion: dict, result: dict) -> dict:
    """model.json ``lesion_supervision``: how the auxiliary lesion-map head was trained."""
    history = result["history"]
    best = history.loc[history["val_loss"].idxmin()] if len(history) and "val_lesion_loss" in history else None
    return {"method": "auxiliary lesion-map head on the Grad-CAM layer (binary cross-entropy per grid cell, "
                      "mask max-pooled to the grid); the classifier (model.keras) does not contain it",
            "loss_weight": lesion["weight"],
            "images_with_geometry": {name: int(sum(m is not None for m in lesion[name])) for name in ("train", "validation")},
            "validation_lesion_loss_at_best_epoch": None if best is None else float(best["val_lesion_loss"])}


def _pretraining_patches(spec: ModalitySpec, arrays: dict, masks: list | None, manifest: pd.DataFrame,
                         config: TrainConfig) -> dict | None:
    """Lesion / tissue patches for patch pre-training, or ``None`` when off.

    ``{"train": (x, y), "validation": (x, y)}``: training patches shape the weights, validation
    patches only stop the patch training early; test images are never cut.
    """
    wanted = config.patch_pretrain if config.patch_pretrain is not None else spec.recipe.patch_fraction is not None
    if not wanted or masks is None or spec.recipe.patch_fraction is None:
        if config.patch_pretrain:
            log.warning(f"{spec.key} has no lesion geometry or patch_fraction; patch pre-training skipped")
        return None
    from bcc_model.training.patches import extract_patches

    patches = {}
    for split in ("train", "validation"):
        member = (manifest["split"] == split).to_numpy()
        patches[split] = extract_patches(arrays[split][0], [m for m, t in zip(masks, member) if t], arrays[split][1],
                                         spec, seed=config.seed)
    log.info(f"Patch pre-training on {len(patches['train'][0])} patches of {spec.patch_size} px (per class "
          f"{np.bincount(patches['train'][1], minlength=len(spec.labels)).tolist()}), "
          f"{len(patches['validation'][0])} validation patches")
    return patches if len(patches["train"][0]) else None


def _patch_pretrained(arch: str, spec: ModalitySpec, patches: dict, config: TrainConfig):
    """``build`` for ``_train_one``: the whole-image model initialised by patch pre-training."""
    from bcc_model.training.patches import pretrained_model

    def build():
        log.info(f"[{arch}] patch pre-training for {config.patch_epochs} epochs")
        return pretrained_model(arch, spec, *patches["train"], compile_fn=compile_model, epochs=config.patch_epochs,
                                batch_size=config.batch_size, lr=config.lr, seed=config.seed, verbose=config.verbose,
                                validation=patches["validation"])

    return build


def _pretraining_record(patches: dict, spec: ModalitySpec, config: TrainConfig) -> dict:
    """model.json ``pretraining``: what the whole-image training started from."""
    counts = np.bincount(patches["train"][1], minlength=len(spec.labels)).tolist()
    return {"method": "lesion patches (training split; validation patches for early stopping)",
            "patch_size": spec.patch_size, "epochs_max": config.patch_epochs,
            "patches_per_class": dict(zip(spec.labels, counts)), "validation_patches": int(len(patches["validation"][0]))}
