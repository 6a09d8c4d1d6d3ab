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

from bcc_model.registry import ModalitySpec
from bcc_model.models.spec import ArchitectureRecord, BundleSpec, Calibration, DecisionRule
from bcc_model.training.config import TrainConfig

__all__ = ["write_bundle", "add_evaluations", "initial_weights", "HISTORY_COLUMNS", "MANIFEST_COLUMNS"]

MANIFEST_COLUMNS = ["file", "label", "group", "split", "sha256"]

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


def initial_weights(params: Mapping[str, object], arch: str = "") -> dict | str:
    """model.json ``architecture.initial_weights``: what training started from, pinned like the data."""
    if params.get("pretrained"):
        from bcc_model.models.pretrained import wheel_for

        return wheel_for(arch).record()
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
        config: the run's settings (recorded with the command that reproduces it).
        selected: key of ``results`` to bundle; every entry goes into ``comparison``.
        results: architecture -> ``{"model", "history", "validation", "metrics"}``.
        manifest: one row per training item with ``file, label, group, split, sha256``.
        source: data source recorded in model.json (folder name, CSV name or ``sklearn:wdbc``).
        out_dir: the bundle folder to replace.
        duration_s: wall-clock training time.
        extra: modality-specific model.json entries (``BundleSpec.extras``).
    """
    from bcc_model.models.bundle import file_sha256, install_bundle, save_model, staging_dir, write_json
    from bcc_model.models.lesion_head import LESION_MAP_FILE, lesion_head_only
    from bcc_model.reporting.model_card import render_model_card

    chosen = results[selected]
    staging = staging_dir(Path(out_dir))
    try:
        save_model(chosen["model"], staging / "model.keras")
        _history_table(chosen["history"]).to_csv(staging / "history.csv", index=False)
        manifest[MANIFEST_COLUMNS].to_csv(staging / "manifest.csv", index=False, lineterminator="\n")
        extras = dict(extra or {})
        if chosen.get("lesion_map") is not None:
            save_model(lesion_head_only(chosen["lesion_map"]), staging / LESION_MAP_FILE)
            extras["lesion_supervision"] = {**extras.get("lesion_supervision", {}), "map_file": LESION_MAP_FILE,
                                            "map_sha256": file_sha256(staging / LESION_MAP_FILE)}
        if spec.kind == "image" and config.onnx:
            extras["runtime"] = _onnx_runtime(chosen["model"], staging)
        if chosen["validation"].get("conformal") is not None:
            extras["conformal"] = chosen["validation"]["conformal"].to_json()
        if chosen["validation"].get("patient_pooling"):  # how a breast's views combine (analysis/breasts.py)
            extras["view_pooling"] = chosen["validation"]["patient_pooling"]
        meta = _bundle_spec(spec, config, selected, results, manifest, source, duration_s,
                            model_sha256=file_sha256(staging / "model.keras"), extras=extras)
        meta.write(staging / "model.json")
        write_json(staging / "metrics.json", chosen["metrics"])
        (staging / "MODEL_CARD.md").write_text(render_model_card(meta.to_json(), chosen["metrics"]), encoding="utf-8")
        install_bundle(staging, Path(out_dir))
    except BaseException:
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
        raise


def _onnx_runtime(model, staging: Path) -> dict:
    """Write ``model.onnx`` beside ``model.keras`` and return its model.json ``runtime`` record."""
    from bcc_model.models.bundle import file_sha256
    from bcc_model.models.onnx_path import ONNX_FILE, export_onnx, runtime_record

    export_onnx(model, staging / ONNX_FILE)
    return runtime_record(model, staging / ONNX_FILE, file_sha256(staging / ONNX_FILE))


def add_evaluations(out_dir: Path, blocks: dict, files: Mapping[str, bytes], settings: Mapping | None = None) -> None:
    """Add evaluations that need the installed bundle (region mode on whole slides) to it, atomically.

    ``blocks`` join metrics.json, ``settings`` join model.json (what those evaluations chose,
    e.g. the slide context), ``files`` (name -> bytes, e.g. slide pictures) are written beside
    it, and the model card is rendered again; the amended copy replaces the bundle only when
    complete, like :func:`write_bundle`.
    """
    import json
    import shutil

    from bcc_model.models.bundle import install_bundle, staging_dir, write_json
    from bcc_model.reporting.model_card import render_model_card

    out_dir = Path(out_dir)
    staging = staging_dir(out_dir)
    try:
        shutil.copytree(out_dir, staging, dirs_exist_ok=True)
        metrics = {**json.loads((staging / "metrics.json").read_text(encoding="utf-8")), **blocks}
        write_json(staging / "metrics.json", metrics)
        for name, data in files.items():
            (staging / name).write_bytes(data)
        info = {**json.loads((staging / "model.json").read_text(encoding="utf-8")), **(settings or {})}
        write_json(staging / "model.json", info)
        (staging / "MODEL_CARD.md").write_text(render_model_card(info, metrics), encoding="utf-8")
        install_bundle(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _bundle_spec(spec: ModalitySpec, config: TrainConfig, selected: str, results: dict, manifest: pd.DataFrame,
                 source: str, duration_s: float, *, model_sha256: str, extras: dict) -> BundleSpec:
    """The bundle's ``model.json``: what was trained, on what, how it was chosen and calibrated."""
    from bcc_model.datasets.manifest import manifest_sha256
    from bcc_model.training.distribute import describe as describe_strategy
    from bcc_model.training.selection import case_weighting

    chosen = results[selected]
    model, history, choice = chosen["model"], chosen["history"], chosen["validation"]
    splits, groups = _split_summary(manifest, spec)
    best_epoch = int(history.loc[history["val_loss"].idxmin(), "epoch"]) + 1 if len(history) else None
    training = {"epochs_max": config.epochs, "epochs_run": int(len(history)), "best_epoch": best_epoch,
                "batch_size": config.batch_size, "lr": config.lr, "optimizer": "AdamW (weight decay 1e-4)",
                "loss": ("patient- and class-weighted" if config.patient_weighting and spec.kind == "image" else
                         "class-weighted") + " categorical cross-entropy"
                        + (" with prevalence weights" if config.loss_prevalence and spec.recipe.sampled_fraction
                           and config.patient_weighting else ""),
                "early_stopping_patience": config.patience,
                "seed": config.seed, **({"image_size": spec.input_size} if spec.kind == "image" else {}),
                "duration_s": round(duration_s, 1), "resumed": bool(config.resume),
                "training_seconds": _training_seconds(results), "command": config.command,
                **({} if config.strategy == "default" else {"distribution": describe_strategy(config.strategy)})}
    data = {"source": source, "citation": spec.citation, "manifest_file": "manifest.csv",
            "manifest_sha256": manifest_sha256(manifest[MANIFEST_COLUMNS]), "splits": splits, "groups": groups}
    comparison = [
        {"architecture": arch, "n_parameters": int(results[arch]["model"].count_params()),
         "validation": {k: results[arch]["validation"][k] for k in ("roc_auc", "balanced_accuracy", "loss")},
         "test": results[arch]["metrics"]["headline"], "selected": arch == selected}
        for arch in results
    ]
    return BundleSpec.from_json(BundleSpec(
        modality=spec.key, name=_bundle_name(selected, spec), labels=spec.labels, positive_label=spec.positive_label,
        input_shape=tuple(spec.input_shape), mpp=spec.model_mpp, magnification=spec.magnification,
        preprocessing=tuple(spec.preprocessing), augmentation=tuple(spec.recipe.augmentation),
        test_time_flips=tuple(spec.recipe.test_time_flips),
        architecture=ArchitectureRecord(name=selected, params=spec.recipe.arch_params[selected],
                                        n_parameters=int(model.count_params()), cam_layer=spec.cam_layer,
                                        initial_weights=initial_weights(spec.recipe.arch_params[selected], selected)),
        training=training, data=data,
        calibration=Calibration(temperature=choice["temperature"], fitted_on=choice.get("fitted_on", "validation")),
        decision=DecisionRule(threshold=choice["threshold"], indeterminate_band=tuple(choice["band"]),
                              chosen_on=choice.get("fitted_on", "validation"),
                              validation_accuracy_outside_band=choice["accuracy_outside_band"],
                              validation_fraction_indeterminate=choice["fraction_indeterminate"],
                              rule=choice.get("rule"), weighting=case_weighting(spec)),
        comparison=tuple(comparison), versions=_versions(), model_sha256=model_sha256,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"), extras=extras,
    ).to_json())


def _training_seconds(results: dict) -> dict[str, float | None]:
    """Summed epoch times per architecture from history.csv (None for runs without a timer)."""
    seconds = {}
    for arch, result in results.items():
        history = result["history"]
        timed = "epoch_seconds" in history and history["epoch_seconds"].notna().all() and len(history)
        seconds[arch] = round(float(history["epoch_seconds"].sum()), 1) if timed else None
    return seconds
