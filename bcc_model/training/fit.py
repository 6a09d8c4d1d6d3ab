"""The fit loop shared by every network: determinism, optimiser, callbacks, one architecture's run.

Why one module: image and tabular training must compile, schedule and checkpoint the same way,
so a change to the optimiser or early stopping reaches both (the cytology path imports these,
and nothing here imports it).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

import pandas as pd

from bcc_model.registry import ModalitySpec
from bcc_model.training.config import TrainConfig

log = logging.getLogger(__name__)

__all__ = ["configure_determinism", "compile_model", "schedule_callbacks", "train_one"]


def configure_determinism(seed: int) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def compile_model(model, lr: float, lesion_weight: float | None = None):
    """AdamW, cross-entropy on one-hot targets, accuracy and ROC AUC: the same for every model.

    With ``lesion_weight`` the model has a lesion head (``lesion_head.add_lesion_head``): its
    map adds a binary cross-entropy of that weight, and the class metrics watch the class output.
    """
    import keras

    from bcc_model.models.lesion_head import CLASS_OUTPUT, LESION_OUTPUT

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


def schedule_callbacks(config: TrainConfig, monitor: str = "val_loss") -> list:
    """Halve the learning rate on a validation-loss plateau; stop early, restoring the best weights.

    The plateau patience is a third of the early-stopping patience (at least 2 epochs), so the
    rate can drop a few times before training stops. ``monitor`` is the validation class loss.
    """
    import keras

    return [
        keras.callbacks.ReduceLROnPlateau(monitor=monitor, mode="min", factor=0.5, patience=max(2, config.patience // 3),
                                          min_lr=1e-5),
        keras.callbacks.EarlyStopping(monitor=monitor, mode="min", patience=config.patience,
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


def _callbacks(work: Path, config: TrainConfig, best_so_far: float | None, monitor: str) -> list:
    import keras

    return [
        _epoch_timer(),
        keras.callbacks.ModelCheckpoint(work / "last.keras"),
        keras.callbacks.ModelCheckpoint(work / "best.keras", monitor=monitor, mode="min", save_best_only=True,
                                        initial_value_threshold=best_so_far),
        *schedule_callbacks(config, monitor),
        keras.callbacks.CSVLogger(work / "history.csv", append=True),
        keras.callbacks.TensorBoard(log_dir=str(work / "logs"), histogram_freq=0, write_graph=False),
    ]


def train_one(arch: str, spec: ModalitySpec, arrays: dict, config: TrainConfig, work: Path,
               build: Callable[[], object] | None = None, lesion: dict | None = None):
    """Train (or resume, or reuse a finished run of) one architecture; returns model and history.

    ``build`` returns the uncompiled model; by default the image architecture ``arch`` from the
    registry's parameters (tabular models need the training split's statistics, so their
    caller passes its own). ``lesion`` (``{"train": masks, "validation": masks, "weight": w}``,
    masks as from ``lesions.model_space_masks``) adds the lesion-map head for training
    (``models/lesion_head.py``); the returned model then keeps that head (``lesion_head.classifier_only``
    gives the classifier) and the history uses single-output column names.
    """
    import keras

    from bcc_model.models.architectures import build_model
    from bcc_model.training.distribute import strategy_scope
    from bcc_model.training.tfdata import LesionTargets, class_weights, make_dataset, patient_weights
    from bcc_model.models.lesion_head import CLASS_OUTPUT, add_lesion_head, canonical_history, lesion_grid

    work.mkdir(parents=True, exist_ok=True)
    done_marker = work / "DONE"
    log_path = work / "history.csv"
    if not config.resume:
        for stale in (done_marker, log_path, work / "last.keras", work / "best.keras"):
            stale.unlink(missing_ok=True)

    def read_history() -> pd.DataFrame:
        logged = log_path.is_file() and log_path.stat().st_size
        return canonical_history(pd.read_csv(log_path)) if logged else pd.DataFrame()

    history = read_history()
    if config.resume and done_marker.is_file():
        log.info(f"[{arch}] finished earlier; reusing {work / 'best.keras'}")
        # compile=False: the shipped file carries weights only, not the optimizer state (a third of the size).
        return keras.models.load_model(work / "best.keras", compile=False), history

    initial_epoch, best_so_far = 0, None
    with strategy_scope(config.strategy):  # variables live on the strategy's devices (training/distribute.py)
        if config.resume and (work / "last.keras").is_file() and not history.empty:
            model = keras.models.load_model(work / "last.keras")
            initial_epoch = int(history["epoch"].max()) + 1
            best_so_far = float(history["val_loss"].min())
            log.info(f"[{arch}] resuming after epoch {initial_epoch}")
        else:
            model = build() if build else build_model(arch, spec.input_shape, len(spec.labels),
                                                      **dict(spec.recipe.arch_params[arch]))
            if lesion is None:
                compile_model(model, config.lr)
            else:
                model = compile_model(add_lesion_head(model, spec.cam_layer), config.lr, lesion["weight"])
    x_train, y_train = arrays["train"]
    x_val, y_val = arrays["validation"]
    targets = {split: None if lesion is None else
               LesionTargets.from_masks(lesion[split], spec.input_size, lesion_grid(model, spec.cam_layer))
               for split in ("train", "validation")}
    prevalence = arrays.get("train_prevalence") if config.loss_prevalence else None
    weights = (patient_weights(y_train, arrays["train_groups"], len(spec.labels), prevalence)
               if config.patient_weighting and lesion is None and "train_groups" in arrays else None)
    train_ds = make_dataset(x_train, y_train, spec, batch_size=config.batch_size, training=True, seed=config.seed,
                            sample_weights=weights,
                            lesion=targets["train"])
    val_ds = make_dataset(x_val, y_val, spec, batch_size=config.batch_size, training=False, seed=config.seed,
                          lesion=targets["validation"])
    if initial_epoch < config.epochs:
        # With a lesion head the class weights travel as sample weights in the dataset.
        model.fit(train_ds, validation_data=val_ds, epochs=config.epochs, initial_epoch=initial_epoch,
                  class_weight=class_weights(y_train, len(spec.labels)) if lesion is None and weights is None else None,
                  callbacks=_callbacks(work, config, best_so_far,
                                       "val_loss" if lesion is None else f"val_{CLASS_OUTPUT}_loss"),
                  verbose=config.verbose)
    if (work / "best.keras").is_file():
        model = keras.models.load_model(work / "best.keras", compile=False)
    done_marker.write_text("done\n")
    return model, read_history()
