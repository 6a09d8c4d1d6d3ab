"""Train a modality's classifier and write its bundle to ``weights/<modality>/``.

What happens, in order:
1. Seeds and deterministic ops are fixed, so the same data and arguments give the same weights.
2. The data folder is indexed and split into train / validation / test by whole groups
   (patients); every file's sha256 goes into the manifest saved beside the weights.
3. Each requested architecture is trained on the same split with the same seed: class-weighted
   loss, augmentation from the registry, ReduceLROnPlateau, EarlyStopping on validation loss
   with the best weights restored, a checkpoint every epoch (``--resume`` continues a killed
   run) and TensorBoard logs in ``--work-dir``. Modalities with lesion geometry and a
   ``patch_fraction`` (mammography, ultrasound) first pre-train the same network on lesion and
   tissue patches of the training split (``patches.py``), then train on whole images; with a
   ``lesion_loss_weight`` an auxiliary head also learns the lesion masks during training
   (``lesion_head.py``), and only the plain classifier is bundled.
4. On validation data only: temperature scaling, the decision threshold and the indeterminate
   band; the architecture with the best validation ROC AUC is selected.
5. The held-out test patients are scored once per architecture (metrics with patient-level
   bootstrap CIs, the registry's extra binary tasks, and, with lesion geometry, the Grad-CAM
   pointing game / energy inside the lesion, ``localisation.py``); the bundle is assembled in a temporary folder and moved into place only when
   complete.

Example (reproduces the shipped histopathology bundle):
    python -m bcc_model.train --modality histopathology --data ../shared/data/histopathology
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from .modalities import ModalitySpec, get_modality, modality_keys

__all__ = ["main", "parse_args"]

HISTORY_COLUMNS = ["epoch", "loss", "accuracy", "auc", "val_loss", "val_accuracy", "val_auc", "learning_rate",
                   "epoch_seconds", "lesion_loss", "val_lesion_loss"]

# Small tables train in milliseconds per epoch but their validation loss is noisy, so tabular
# modalities get more epochs, smaller batches and more patience than image patches.
TRAINING_DEFAULTS = {"image": {"epochs": 25, "batch_size": 64, "patience": 5},
                     "tabular": {"epochs": 300, "batch_size": 32, "patience": 30}}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bcc_model.train",
        description=__doc__ + "\nResearch use only: not for diagnostic use.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--modality", default="histopathology", choices=modality_keys(),
                        help="which modality to train (default: %(default)s)")
    parser.add_argument("--data", type=Path, default=None,
                        help="images: data folder with <label>/<image> and optional labels.csv (default: "
                             "data/<modality>); tabular: a CSV with the feature columns, label [and group], or "
                             "sklearn:wdbc (the default for cytology)")
    parser.add_argument("--arch", nargs="+", default=None,
                        help="architecture(s) to train on the same split; the best by validation ROC AUC is "
                             "bundled (default: every architecture configured for the modality)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="maximum epochs; early stopping may end sooner (default: 25 for images, 300 for tabular)")
    parser.add_argument("--batch-size", type=int, default=None, help="batch size (default: 64 for images, 32 for tabular)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="model input side in px (default: the modality's input size)")
    parser.add_argument("--lr", type=float, default=1e-3,
                        help="initial learning rate of AdamW (default: %(default)s; an architecture with its own in the "
                             "registry's arch_training, such as the pretrained VGG16, uses that)")
    parser.add_argument("--patience", type=int, default=None,
                        help="early-stopping patience in epochs (default: 5 for images, 30 for tabular)")
    parser.add_argument("--seed", type=int, default=42, help="seed for split, initialisation and augmentation (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=None, help="bundle folder to write (default: weights/<modality>)")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="checkpoints and TensorBoard logs (default: runs/<modality>)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoints in --work-dir")
    parser.add_argument("--patch-pretrain", action=argparse.BooleanOptionalAction, default=None,
                        help="pre-train on lesion / tissue patches before whole images (default: on when the "
                             "modality configures patch_fraction and has lesion geometry; never for an architecture "
                             "whose arch_training turns it off)")
    parser.add_argument("--patch-epochs", type=int, default=15, help="epochs of patch pre-training (default: %(default)s)")
    parser.add_argument("--lesion-weight", type=float, default=None,
                        help="weight of the lesion-map loss of the auxiliary head trained on the lesion masks "
                             "(lesion_head.py); 0 turns it off (default: the modality's lesion_loss_weight)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the CIs (default: %(default)s)")
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2), help="Keras progress output (default: %(default)s)")
    args = parser.parse_args(argv)
    spec = get_modality(args.modality)
    for name, value in {**TRAINING_DEFAULTS[spec.kind], **spec.training_defaults}.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def _configure_determinism(seed: int) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def _architectures_configured(spec: ModalitySpec, archs: Sequence[str]) -> bool:
    """True when every name in ``archs`` is configured for ``spec``; otherwise say so on stderr."""
    unknown = [a for a in archs if a not in spec.arch_params]
    if unknown:
        print(f"error: architecture(s) {unknown} not configured for {spec.key}; valid: {', '.join(spec.arch_params)}",
              file=sys.stderr)
        return False
    return _pretrained_weights_present(spec, archs)


def _pretrained_weights_present(spec: ModalitySpec, archs: Sequence[str]) -> bool:
    """Check the pinned pretrained weights before any data is loaded, not after an hour of other architectures."""
    if not any(spec.arch_params[a].get("pretrained") for a in archs):
        return True
    from .pretrained import PretrainedMissing, wheel_path

    try:
        wheel_path()
    except PretrainedMissing as err:
        print(f"error: {err}", file=sys.stderr)
        return False
    return True


def _compile(model, lr: float, lesion_weight: float | None = None):
    """AdamW, cross-entropy on one-hot targets, accuracy and ROC AUC: the same for every model.

    With ``lesion_weight`` the model has a lesion head (``lesion_head.add_lesion_head``): its
    map adds a binary cross-entropy of that weight, and the class metrics watch the class output.
    """
    import keras

    from .lesion_head import CLASS_OUTPUT, LESION_OUTPUT

    class_loss = keras.losses.CategoricalCrossentropy()
    class_metrics = [keras.metrics.CategoricalAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")]
    if lesion_weight is None:
        losses, weights, metrics = class_loss, None, class_metrics
    else:
        losses = {CLASS_OUTPUT: class_loss, LESION_OUTPUT: keras.losses.BinaryCrossentropy()}
        weights = {CLASS_OUTPUT: 1.0, LESION_OUTPUT: float(lesion_weight)}
        metrics = {CLASS_OUTPUT: class_metrics}
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=lr, weight_decay=1e-4), loss=losses,
                  loss_weights=weights, metrics=metrics)
    return model


def _schedule_callbacks(args: argparse.Namespace, monitor: str = "val_loss") -> list:
    """Halve the learning rate on a validation-loss plateau; stop early, restoring the best weights.

    The plateau patience is a third of the early-stopping patience (at least 2 epochs), so the
    rate can drop a few times before training stops. ``monitor`` is the validation class loss.
    """
    import keras

    return [
        keras.callbacks.ReduceLROnPlateau(monitor=monitor, mode="min", factor=0.5, patience=max(2, args.patience // 3),
                                          min_lr=1e-5),
        keras.callbacks.EarlyStopping(monitor=monitor, mode="min", patience=args.patience,
                                      restore_best_weights=True),
    ]


def _epoch_timer():
    """Adds ``epoch_seconds`` to the epoch logs, so history.csv records training time even across resumes."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                logs["epoch_seconds"] = time.perf_counter() - self._start

    return EpochTimer()


def _callbacks(work: Path, args: argparse.Namespace, best_so_far: float | None, monitor: str) -> list:
    import keras

    return [
        _epoch_timer(),
        keras.callbacks.ModelCheckpoint(work / "last.keras"),
        keras.callbacks.ModelCheckpoint(work / "best.keras", monitor=monitor, mode="min", save_best_only=True,
                                        initial_value_threshold=best_so_far),
        *_schedule_callbacks(args, monitor),
        keras.callbacks.CSVLogger(work / "history.csv", append=True),
        keras.callbacks.TensorBoard(log_dir=str(work / "logs"), histogram_freq=0, write_graph=False),
    ]


def _train_one(arch: str, spec: ModalitySpec, arrays: dict, args: argparse.Namespace, work: Path,
               build: Callable[[], object] | None = None, lesion: dict | None = None):
    """Train (or resume, or reuse a finished run of) one architecture; returns model and history.

    ``build`` returns the uncompiled model; by default the image architecture ``arch`` from the
    registry's parameters (tabular models need the training split's statistics, so their
    caller passes its own). ``lesion`` (``{"train": masks, "validation": masks, "weight": w}``,
    masks as from ``lesions.model_space_masks``) adds the lesion-map head for training
    (``lesion_head.py``); the returned model then keeps that head (``lesion_head.classifier_only``
    gives the classifier) and the history uses single-output column names.
    """
    import keras

    from .architectures import build_model
    from .data import LesionTargets, class_weights, make_dataset
    from .lesion_head import CLASS_OUTPUT, add_lesion_head, canonical_history, lesion_grid

    work.mkdir(parents=True, exist_ok=True)
    done_marker = work / "DONE"
    log_path = work / "history.csv"
    if not args.resume:
        for stale in (done_marker, log_path, work / "last.keras", work / "best.keras"):
            stale.unlink(missing_ok=True)

    def read_history() -> pd.DataFrame:
        logged = log_path.is_file() and log_path.stat().st_size
        return canonical_history(pd.read_csv(log_path)) if logged else pd.DataFrame()

    history = read_history()
    if args.resume and done_marker.is_file():
        print(f"[{arch}] finished earlier; reusing {work / 'best.keras'}", flush=True)
        # compile=False: the shipped file carries weights only, not the optimizer state (a third of the size).
        return keras.models.load_model(work / "best.keras", compile=False), history

    initial_epoch, best_so_far = 0, None
    if args.resume and (work / "last.keras").is_file() and not history.empty:
        model = keras.models.load_model(work / "last.keras")
        initial_epoch = int(history["epoch"].max()) + 1
        best_so_far = float(history["val_loss"].min())
        print(f"[{arch}] resuming after epoch {initial_epoch}", flush=True)
    else:
        model = build() if build else build_model(arch, spec.input_shape, len(spec.labels), **dict(spec.arch_params[arch]))
        if lesion is None:
            _compile(model, args.lr)
        else:
            model = _compile(add_lesion_head(model, spec.cam_layer), args.lr, lesion["weight"])
    x_train, y_train = arrays["train"]
    x_val, y_val = arrays["validation"]
    targets = {split: None if lesion is None else
               LesionTargets.from_masks(lesion[split], spec.input_size, lesion_grid(model, spec.cam_layer))
               for split in ("train", "validation")}
    train_ds = make_dataset(x_train, y_train, spec, batch_size=args.batch_size, training=True, seed=args.seed,
                            lesion=targets["train"])
    val_ds = make_dataset(x_val, y_val, spec, batch_size=args.batch_size, training=False, seed=args.seed,
                          lesion=targets["validation"])
    if initial_epoch < args.epochs:
        # With a lesion head the class weights travel as sample weights in the dataset.
        model.fit(train_ds, validation_data=val_ds, epochs=args.epochs, initial_epoch=initial_epoch,
                  class_weight=class_weights(y_train, len(spec.labels)) if lesion is None else None,
                  callbacks=_callbacks(work, args, best_so_far,
                                       "val_loss" if lesion is None else f"val_{CLASS_OUTPUT}_loss"),
                  verbose=args.verbose)
    if (work / "best.keras").is_file():
        model = keras.models.load_model(work / "best.keras", compile=False)
    done_marker.write_text("done\n")
    return model, read_history()


def _validation_choice(model, x_val: np.ndarray, y_val: np.ndarray, spec: ModalitySpec) -> dict:
    """Temperature, threshold and band chosen on validation data, with validation scores."""
    from sklearn.metrics import balanced_accuracy_score, log_loss, roc_auc_score

    from .calibration import apply_temperature, choose_band, choose_threshold, decide, fit_temperature
    from .predict import raw_probabilities

    raw = raw_probabilities(model, x_val.astype(np.float32))
    temperature = fit_temperature(raw, y_val)
    probs = apply_temperature(raw, temperature)
    positive = spec.positive_index
    is_positive = (y_val == positive).astype(int)
    threshold = choose_threshold(probs[:, positive], is_positive)
    band = choose_band(probs[:, positive], is_positive, threshold)
    predicted, indeterminate = decide(probs, positive, threshold, band)
    outside = ~indeterminate
    return {
        "temperature": float(temperature),
        "threshold": float(threshold),
        "band": [float(band[0]), float(band[1])],
        "roc_auc": float(roc_auc_score(is_positive, probs[:, positive])),
        "balanced_accuracy": float(balanced_accuracy_score(y_val, predicted)),
        "loss": float(log_loss(y_val, probs, labels=list(range(len(spec.labels))))),
        "accuracy_outside_band": float((predicted[outside] == y_val[outside]).mean()) if outside.any() else None,
        "fraction_indeterminate": float(indeterminate.mean()),
    }


def _choose_and_test(model, arrays: dict, test_groups: list[str], spec: ModalitySpec,
                     args: argparse.Namespace) -> tuple[dict, dict]:
    """Fix the operating point on validation data, then score the test split once with it.

    Args:
        model: the trained network (softmax outputs).
        arrays: split name -> ``(x, y)``; uses ``validation`` and ``test``.
        test_groups: group (patient) of each test item, for the bootstrap.
        spec: the modality (labels, positive label, extra binary tasks).
        args: parsed command line (``bootstrap``, ``seed``).

    Returns:
        ``(choice, metrics)``: :func:`_validation_choice` and the test metrics.json dictionary.
    """
    from .calibration import apply_temperature
    from .metrics import compute_metrics
    from .predict import raw_probabilities

    choice = _validation_choice(model, *arrays["validation"], spec)
    x_test, y_test = arrays["test"]
    test_probs = apply_temperature(raw_probabilities(model, x_test.astype(np.float32)), choice["temperature"])
    metrics = compute_metrics(
        test_probs, y_test, test_groups, spec.labels, spec.positive_index, choice["threshold"], tuple(choice["band"]),
        choice["temperature"], split="test", n_resamples=args.bootstrap, seed=args.seed,
        binary_tasks=spec.extra_binary_tasks or None,
    )
    return choice, metrics


def _history_table(history: pd.DataFrame) -> pd.DataFrame:
    table = history.copy()
    table["epoch"] = table["epoch"].astype(int) + 1
    if "learning_rate" not in table and "lr" in table:
        table["learning_rate"] = table.pop("lr")
    return table[[c for c in HISTORY_COLUMNS if c in table.columns]].drop_duplicates("epoch", keep="last")


def _split_summary(manifest: pd.DataFrame, spec: ModalitySpec) -> tuple[dict, dict]:
    splits, groups = {}, {}
    for split in ("train", "validation", "test"):
        part = manifest[manifest["split"] == split]
        splits[split] = {
            "images": int(len(part)),
            "groups": int(part["group"].nunique()),
            "per_class": {label: int((part["label"] == label).sum()) for label in spec.labels},
        }
        groups[split] = sorted(part["group"].unique().tolist())
    return splits, groups


def _versions() -> dict:
    import keras
    import sklearn
    import tensorflow as tf

    return {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "scikit-learn": sklearn.__version__}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # The command that reproduces the bundle: --resume only continues the same run, so it is left out.
    given = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--resume"]
    args.command = "python -m bcc_model.train " + shlex.join(given)
    base_spec = get_modality(args.modality)
    if base_spec.kind == "tabular":
        from .train_tabular import train_tabular

        return train_tabular(args, base_spec)
    spec = replace(base_spec, input_size=args.image_size) if args.image_size else base_spec
    archs = args.arch or list(spec.arch_params)
    if not _architectures_configured(spec, archs):
        return 2
    data_dir = args.data or spec.default_data_dir
    out_dir = args.out or spec.bundle_dir
    work_root = args.work_dir or Path("runs") / spec.key

    from .data import DataError, add_hashes, discover, load_images, split_by_group

    try:
        table = discover(data_dir, spec)
        manifest = add_hashes(split_by_group(table, seed=args.seed), data_dir)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    _configure_determinism(args.seed)
    started = time.time()
    print(f"Loading {len(manifest)} images from {data_dir} ...", flush=True)
    images = load_images(manifest, data_dir, spec)
    label_index = {label: i for i, label in enumerate(spec.labels)}
    y_all = manifest["label"].map(label_index).to_numpy()
    arrays = {split: (images[(manifest["split"] == split).to_numpy()], y_all[(manifest["split"] == split).to_numpy()])
              for split in ("train", "validation", "test")}
    for split, (x, _) in arrays.items():
        if len(x) == 0:
            print(f"error: the {split} split is empty; add more groups (patients)", file=sys.stderr)
            return 2

    from .lesion_head import classifier_only, lesion_map_localisation, lesion_map_model
    from .metrics import format_metrics_table

    test_mask = (manifest["split"] == "test").to_numpy()
    masks = _lesion_masks(manifest, data_dir, spec)
    patches = _pretraining_patches(spec, arrays, masks, manifest, args)
    lesion = _lesion_supervision(spec, masks, manifest, args)
    results = {}
    for arch in archs:
        arch_args = _arch_args(args, spec, arch)
        arch_patches = None if arch_args.patch_pretrain is False else patches
        _configure_determinism(args.seed)
        trained, history = _train_one(arch, spec, arrays, arch_args, work_root / arch,
                                      build=None if arch_patches is None else _patch_pretrained(arch, spec, arch_patches,
                                                                                                arch_args),
                                      lesion=lesion)
        model = classifier_only(trained)
        map_model = None if lesion is None else lesion_map_model(trained)
        test_groups = manifest.loc[test_mask, "group"].tolist()
        choice, metrics = _choose_and_test(model, arrays, test_groups, spec, args)
        x_test, y_test = arrays["test"]
        if masks is not None:
            from .localisation import explain_and_score

            test_masks = [m for m, t in zip(masks, test_mask) if t]
            metrics["localisation"] = explain_and_score(model, x_test, y_test, test_masks, test_groups, spec,
                                                        n_resamples=args.bootstrap, seed=args.seed)
            if map_model is not None:
                metrics["lesion_map_localisation"] = lesion_map_localisation(
                    map_model, x_test.astype(np.float32), y_test, test_masks, test_groups, spec,
                    n_resamples=args.bootstrap, seed=args.seed)
        results[arch] = {"model": model, "history": history, "validation": choice, "metrics": metrics,
                         "lesion_map": map_model, "args": arch_args, "patches": arch_patches}
        print(f"\n[{arch}] validation: ROC AUC {choice['roc_auc']:.3f}, balanced accuracy "
              f"{choice['balanced_accuracy']:.3f}\n[{arch}] test (whole held-out groups):\n"
              f"{format_metrics_table(metrics)}\n", flush=True)

    selected = _select_architecture(results)
    print(f"Selected {selected} (best validation ROC AUC)", flush=True)
    kept = results[selected]
    extra = {**({} if kept["patches"] is None else {"pretraining": _pretraining_record(kept["patches"], spec, args)}),
             **({} if lesion is None else {"lesion_supervision": _lesion_supervision_record(lesion, kept)})}
    _write_bundle(spec, kept["args"], selected, results, manifest, Path(data_dir).name, out_dir, time.time() - started,
                  extra=extra or None)
    print(f"Bundle written to {out_dir}", flush=True)
    return 0


def _arch_args(args: argparse.Namespace, spec: ModalitySpec, arch: str) -> argparse.Namespace:
    """The options ``arch`` trains with: the command line's, with the registry's ``arch_training`` over them."""
    return argparse.Namespace(**{**vars(args), **spec.arch_training.get(arch, {})})


def _lesion_masks(manifest: pd.DataFrame, data_dir: Path, spec: ModalitySpec) -> list | None:
    """Model-space lesion masks of every manifest row (``None`` entries: unknown geometry), or
    ``None`` when the modality has no lesion geometry."""
    if spec.lesion_source is None:
        return None
    from .lesions import model_space_masks

    return model_space_masks(manifest, data_dir, spec)


def _lesion_supervision(spec: ModalitySpec, masks: list | None, manifest: pd.DataFrame,
                        args: argparse.Namespace) -> dict | None:
    """Training and validation masks for the lesion-map head, or ``None`` when it is off.

    Test masks never reach training: they only score localisation after it.
    """
    weight = args.lesion_weight if args.lesion_weight is not None else spec.lesion_loss_weight
    if not weight:
        return None
    if masks is None:
        print(f"note: {spec.key} has no lesion geometry; the lesion-map head is off", file=sys.stderr)
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
                         args: argparse.Namespace) -> dict | None:
    """Lesion / tissue patches for patch pre-training, or ``None`` when off.

    ``{"train": (x, y), "validation": (x, y)}``: training patches shape the weights, validation
    patches only stop the patch training early; test images are never cut.
    """
    wanted = args.patch_pretrain if args.patch_pretrain is not None else spec.patch_fraction is not None
    if not wanted or masks is None or spec.patch_fraction is None:
        if args.patch_pretrain:
            print(f"note: {spec.key} has no lesion geometry or patch_fraction; patch pre-training skipped",
                  file=sys.stderr)
        return None
    from .patches import extract_patches

    patches = {}
    for split in ("train", "validation"):
        member = (manifest["split"] == split).to_numpy()
        patches[split] = extract_patches(arrays[split][0], [m for m, t in zip(masks, member) if t], arrays[split][1],
                                         spec, seed=args.seed)
    print(f"Patch pre-training on {len(patches['train'][0])} patches of {spec.patch_size} px (per class "
          f"{np.bincount(patches['train'][1], minlength=len(spec.labels)).tolist()}), "
          f"{len(patches['validation'][0])} validation patches", flush=True)
    return patches if len(patches["train"][0]) else None


def _patch_pretrained(arch: str, spec: ModalitySpec, patches: dict, args: argparse.Namespace):
    """``build`` for ``_train_one``: the whole-image model initialised by patch pre-training."""
    from .patches import pretrained_model

    def build():
        print(f"[{arch}] patch pre-training for {args.patch_epochs} epochs", flush=True)
        return pretrained_model(arch, spec, *patches["train"], compile_fn=_compile, epochs=args.patch_epochs,
                                batch_size=args.batch_size, lr=args.lr, seed=args.seed, verbose=args.verbose,
                                validation=patches["validation"])

    return build


def _pretraining_record(patches: dict, spec: ModalitySpec, args: argparse.Namespace) -> dict:
    """model.json ``pretraining``: what the whole-image training started from."""
    counts = np.bincount(patches["train"][1], minlength=len(spec.labels)).tolist()
    return {"method": "lesion patches (training split; validation patches for early stopping)",
            "patch_size": spec.patch_size, "epochs_max": args.patch_epochs,
            "patches_per_class": dict(zip(spec.labels, counts)), "validation_patches": int(len(patches["validation"][0]))}


def _initial_weights(params: Mapping[str, object]) -> dict | str:
    """model.json ``architecture.initial_weights``: what training started from, pinned like the data."""
    if params.get("pretrained"):
        from .pretrained import source_record

        return source_record()
    return "random (seeded)"


def _select_architecture(results: dict) -> str:
    """The architecture with the best validation ROC AUC (lower validation loss breaks ties)."""
    return max(results, key=lambda a: (results[a]["validation"]["roc_auc"], -results[a]["validation"]["loss"]))


def _bundle_name(arch: str, spec: ModalitySpec) -> str:
    """arch-size-data, e.g. ``seresnet-50px-histopathology`` or ``conv1d-30features-cytology``."""
    size = f"{spec.input_size}px" if spec.kind == "image" else f"{spec.input_size}features"
    return f"{arch.replace('_', '')}-{size}-{spec.key}"


def _write_bundle(spec: ModalitySpec, args: argparse.Namespace, selected: str, results: dict,
                  manifest: pd.DataFrame, source: str, out_dir: Path, duration_s: float, *,
                  extra: dict | None = None) -> None:
    """Assemble the bundle in a staging folder and swap it into ``out_dir`` only when complete.

    Args:
        spec: the modality trained.
        args: parsed command line (training settings and command are recorded).
        selected: key of ``results`` to bundle; every entry goes into ``comparison``.
        results: architecture -> ``{"model", "history", "validation", "metrics"}``.
        manifest: one row per training item with ``file, label, group, split, sha256``.
        source: data source recorded in model.json (folder name, CSV name or ``sklearn:wdbc``).
        out_dir: the bundle folder to replace.
        duration_s: wall-clock training time.
        extra: modality-specific model.json entries, added or replacing the common ones.
    """
    from .bundle import file_sha256, install_bundle, save_model, staging_dir, write_json
    from .data import manifest_sha256
    from .lesion_head import LESION_MAP_FILE, lesion_head_only
    from .model_card import render_model_card

    chosen = results[selected]
    model, history, choice, metrics = chosen["model"], chosen["history"], chosen["validation"], chosen["metrics"]
    staging = staging_dir(Path(out_dir))
    try:
        save_model(model, staging / "model.keras")
        _history_table(history).to_csv(staging / "history.csv", index=False)
        manifest[["file", "label", "group", "split", "sha256"]].to_csv(staging / "manifest.csv", index=False,
                                                                         lineterminator="\n")
        splits, groups = _split_summary(manifest, spec)
        best_epoch = int(history.loc[history["val_loss"].idxmin(), "epoch"]) + 1 if len(history) else None
        info = {
            "format_version": 1,
            "modality": spec.key,
            "name": _bundle_name(selected, spec),
            "labels": list(spec.labels),
            "positive_label": spec.positive_label,
            "input_shape": list(spec.input_shape),
            "mpp": spec.model_mpp,
            "magnification": spec.magnification,
            "preprocessing": list(spec.preprocessing),
            "augmentation": list(spec.augmentation),
            "architecture": {"name": selected, "params": _jsonable(dict(spec.arch_params[selected])),
                             "n_parameters": int(model.count_params()), "cam_layer": spec.cam_layer,
                             "initial_weights": _initial_weights(spec.arch_params[selected])},
            "training": {"epochs_max": args.epochs, "epochs_run": int(len(history)), "best_epoch": best_epoch,
                         "batch_size": args.batch_size, "lr": args.lr, "optimizer": "AdamW (weight decay 1e-4)",
                         "loss": "class-weighted categorical cross-entropy", "early_stopping_patience": args.patience,
                         "seed": args.seed, **({"image_size": spec.input_size} if spec.kind == "image" else {}),
                         "duration_s": round(duration_s, 1), "resumed": bool(args.resume),
                         "training_seconds": _training_seconds(results),
                         "command": args.command},
            "data": {"source": source, "citation": spec.citation, "manifest_file": "manifest.csv",
                     "manifest_sha256": manifest_sha256(manifest[["file", "label", "group", "split", "sha256"]]),
                     "splits": splits, "groups": groups},
            "calibration": {"method": "temperature", "temperature": choice["temperature"], "fitted_on": "validation"},
            "decision": {"threshold": choice["threshold"], "indeterminate_band": choice["band"],
                         "chosen_on": "validation",
                         "validation_accuracy_outside_band": choice["accuracy_outside_band"],
                         "validation_fraction_indeterminate": choice["fraction_indeterminate"]},
            "comparison": [
                {"architecture": arch, "n_parameters": int(results[arch]["model"].count_params()),
                 "validation": {k: results[arch]["validation"][k] for k in ("roc_auc", "balanced_accuracy", "loss")},
                 "test": results[arch]["metrics"]["headline"], "selected": arch == selected}
                for arch in results
            ],
            "versions": _versions(),
            "model_sha256": file_sha256(staging / "model.keras"),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        } | (extra or {})
        if chosen.get("lesion_map") is not None:
            save_model(lesion_head_only(chosen["lesion_map"]), staging / LESION_MAP_FILE)
            info["lesion_supervision"] = {**info.get("lesion_supervision", {}), "map_file": LESION_MAP_FILE,
                                          "map_sha256": file_sha256(staging / LESION_MAP_FILE)}
        write_json(staging / "model.json", info)
        write_json(staging / "metrics.json", metrics)
        (staging / "MODEL_CARD.md").write_text(render_model_card(info, metrics), encoding="utf-8")
        install_bundle(staging, Path(out_dir))
    except BaseException:
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
        raise


def _training_seconds(results: dict) -> dict[str, float | None]:
    """Summed epoch times per architecture from history.csv (None for runs without a timer)."""
    seconds = {}
    for arch, result in results.items():
        history = result["history"]
        timed = "epoch_seconds" in history and history["epoch_seconds"].notna().all() and len(history)
        seconds[arch] = round(float(history["epoch_seconds"].sum()), 1) if timed else None
    return seconds


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return value


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
