"""Writing a bundle: weights, history, manifest, ``model.json`` (through ``BundleSpec``), metrics and card.

Everything is assembled in a staging folder beside the target and swapped in only when
complete (``models.bundle.install_bundle``), so an interrupted run never damages the shipped
weights.
"""

from __future__ import annotations

import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from bcc_model.modalities import ModalitySpec
from bcc_model.training.config import TrainConfig

__all__ = ["write_bundle", "initial_weights", "HISTORY_COLUMNS"]

HISTORY_COLUMNS = ["epoch", "loss", "accuracy", "auc", "val_loss", "val_accuracy", "val_auc", "learning_rate",
                   "epoch_seconds", "lesion_loss", "val_lesion_loss"]

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


def initial_weights(params: Mapping[str, object]) -> dict | str:
    """model.json ``architecture.initial_weights``: what training started from, pinned like the data."""
    if params.get("pretrained"):
        from bcc_model.models.pretrained import source_record

        return source_record()
    return "random (seeded)"


def _bundle_name(arch: str, spec: ModalitySpec) -> str:
    """arch-size-data, e.g. ``seresnet-50px-histopathology`` or ``conv1d-30features-cytology``."""
    size = f"{spec.input_size}px" if spec.kind == "image" else f"{spec.input_size}features"
    return f"{arch.replace('_', '')}-{size}-{spec.key}"


def write_bundle(spec: ModalitySpec, config: TrainConfig, selected: str, results: dict,
                  manifest: pd.DataFrame, source: str, out_dir: Path, duration_s: float, *,
                  extra: dict | None = None) -> None:
    """Assemble the bundle in a staging folder and swap it into ``out_dir`` only when complete.

    Args:
        spec: the modality trained.
        config: parsed command line (training settings and command are recorded).
        selected: key of ``results`` to bundle; every entry goes into ``comparison``.
        results: architecture -> ``{"model", "history", "validation", "metrics"}``.
        manifest: one row per training item with ``file, label, group, split, sha256``.
        source: data source recorded in model.json (folder name, CSV name or ``sklearn:wdbc``).
        out_dir: the bundle folder to replace.
        duration_s: wall-clock training time.
        extra: modality-specific model.json entries, added or replacing the common ones.
    """
    from bcc_model.models.bundle import file_sha256, install_bundle, save_model, staging_dir, write_json
    from bcc_model.datasets.manifest import manifest_sha256
    from bcc_model.models.lesion_head import LESION_MAP_FILE, lesion_head_only
    from bcc_model.reporting.model_card import render_model_card

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
                             "initial_weights": initial_weights(spec.arch_params[selected])},
            "training": {"epochs_max": config.epochs, "epochs_run": int(len(history)), "best_epoch": best_epoch,
                         "batch_size": config.batch_size, "lr": config.lr, "optimizer": "AdamW (weight decay 1e-4)",
                         "loss": "class-weighted categorical cross-entropy", "early_stopping_patience": config.patience,
                         "seed": config.seed, **({"image_size": spec.input_size} if spec.kind == "image" else {}),
                         "duration_s": round(duration_s, 1), "resumed": bool(config.resume),
                         "training_seconds": _training_seconds(results),
                         "command": config.command},
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
