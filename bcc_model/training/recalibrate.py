"""Recalibrating a bundle for a new site: same weights, a new temperature, operating point and conformal sets.

Why: stain, scanner and case mix move a model's probabilities from one laboratory to the next
more often than they move its ranking. A site with a labelled folder of its own patients can
refit what sits on top of the network, by the same rule training uses
(``selection.OPERATING_RULE``), and check it on patients the refit never saw: the folder's
patients are split in two by whole patient (stratified, seeded), the first half calibrates, the
second is scored once. The result is a new bundle beside the old one: the same weight files
(their hashes unchanged), a name that says it was recalibrated and when, ``recalibration`` in
``model.json`` recording where it came from and on what, and its own metrics and model card. It
is not the shipped bundle, so the app runs it only when unverified bundles are allowed.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from bcc_model.datasets.folders import discover, load_images
from bcc_model.datasets.manifest import add_hashes, manifest_sha256
from bcc_model.datasets.splits import pick_fold
from bcc_model.datasets.weights import prevalence_weights
from bcc_model.models.bundle import Bundle
from bcc_model.models.spec import BundleSpec, Calibration, DecisionRule
from bcc_model.training.config import TrainingError
from bcc_model.training.selection import case_weighting, operating_choice

log = logging.getLogger(__name__)

__all__ = ["recalibrate", "install_refitted"]

MANIFEST_FILE = "recalibration_manifest.csv"


def recalibrate(bundle: Bundle, data_dir: str | Path, out_dir: str | Path, *, check_fraction: float = 0.5,
                seed: int = 42, n_resamples: int = 1000, command: str = "python -m bcc_model.recalibrate") -> Path:
    """Write ``out_dir``: ``bundle`` recalibrated on half the patients of ``data_dir``, checked on the other half.

    Raises:
        TrainingError: a tabular bundle, too few patients, or a half without both classes.
        DataError: an unreadable data folder.
    """
    from bcc_model.analysis.predictions import calibrated_probabilities
    from bcc_model.evaluation.conformal import conformal_report
    from bcc_model.evaluation.metrics import compute_metrics
    from bcc_model.models.decision import OperatingPoint, apply_temperature

    spec = bundle.spec
    if spec.kind != "image":
        raise TrainingError(f"recalibration reads image folders; {spec.key} is not an image modality")
    if not 0 < check_fraction < 1:
        raise TrainingError(f"check_fraction must be in (0, 1), got {check_fraction}")
    table = add_hashes(discover(data_dir, spec), data_dir)
    if table["group"].nunique() < 4:
        raise TrainingError(f"need at least 4 patients to calibrate on some and check on others, "
                            f"found {table['group'].nunique()}")
    check = pick_fold(table, max(2, round(1 / check_fraction)), seed)
    table = table.assign(split=np.where(check, "test", "calibration"))
    y = table["label"].map({label: i for i, label in enumerate(spec.labels)}).to_numpy()
    for split in ("calibration", "test"):
        present = set(y[(table["split"] == split).to_numpy()].tolist())
        if present != set(range(len(spec.labels))):
            raise TrainingError(f"the {split} half of the patients lacks class(es) "
                                f"{[spec.labels[k] for k in set(range(len(spec.labels))) - present]}; add patients")
    log.info("Scoring %d images of %d patients ...", len(table), table["group"].nunique())
    # The bundle's own probabilities: a temperature fitted on them composes with the bundle's.
    probs = calibrated_probabilities(bundle, load_images(table, data_dir, spec).astype(np.float32))
    weights = prevalence_weights(table["prevalence_weight"]) if "prevalence_weight" in table else None
    fit, held = (table["split"] == "calibration").to_numpy(), (table["split"] == "test").to_numpy()
    source = Path(data_dir).name
    fitted_on = f"{table.loc[fit, 'group'].nunique()} patients of {source} (recalibration)"
    choice = operating_choice(probs[fit], y[fit], spec, fitted_on, None if weights is None else weights[fit],
                              table.loc[fit, "group"].to_numpy())
    temperature = bundle.temperature * choice["temperature"]
    point = OperatingPoint(spec.labels, spec.positive_index, choice["threshold"], tuple(choice["band"]), temperature,
                           choice.get("conformal"))
    checked = apply_temperature(probs[held], choice["temperature"])
    metrics = compute_metrics(checked, y[held], table.loc[held, "group"].tolist(), point, split="test",
                              n_resamples=n_resamples, seed=seed,
                              weights=None if weights is None else weights[held],
                              weighting=case_weighting(spec) if weights is not None else None)
    if choice.get("conformal") is not None:
        metrics["conformal"] = conformal_report(choice["conformal"], checked, y[held],
                                                table.loc[held, "group"].tolist(), n_resamples=n_resamples, seed=seed)
    created = datetime.now(timezone.utc)
    meta = bundle.meta
    record = {"from_bundle": {"name": meta.name, "model_sha256": meta.model_sha256, "created": meta.created},
              "source": source, "manifest_file": MANIFEST_FILE, "manifest_sha256": manifest_sha256(table[["file", "label", "group", "split", "sha256"]]),
              "patients": {split: int(table.loc[table["split"] == split, "group"].nunique())
                           for split in ("calibration", "test")},
              "images": {split: int((table["split"] == split).sum()) for split in ("calibration", "test")},
              "method": f"temperature, threshold, band and conformal sets refitted on the calibration patients "
                        f"({choice['rule']}); the test patients scored once",
              "seed": seed, "command": command}
    extras = {key: value for key, value in meta.extras.items() if key != "conformal"}
    extras["recalibration"] = record
    if choice.get("conformal") is not None:
        extras["conformal"] = choice["conformal"].to_json()
    new_meta = replace(
        meta, name=f"{meta.name}-recalibrated-{created:%Y%m%d}", created=created.isoformat(timespec="seconds"),
        calibration=Calibration(temperature=temperature, fitted_on=fitted_on),
        decision=DecisionRule(threshold=choice["threshold"], indeterminate_band=tuple(choice["band"]),
                              chosen_on=fitted_on, validation_accuracy_outside_band=choice["accuracy_outside_band"],
                              validation_fraction_indeterminate=choice["fraction_indeterminate"], rule=choice["rule"],
                              weighting=case_weighting(spec) if weights is not None else None),
        extras=extras)
    def fill(staging: Path) -> None:
        for name in _weight_files(bundle):
            shutil.copy2(bundle.path / name, staging / name)
        table[["file", "label", "group", "split", "sha256"]].to_csv(staging / MANIFEST_FILE, index=False,
                                                                    lineterminator="\n")

    install_refitted(Path(out_dir), new_meta, metrics, fill)
    log.info("Recalibrated bundle written to %s (temperature %.3f, threshold %.3f)", out_dir, temperature,
             choice["threshold"])
    return out_dir


def install_refitted(out_dir: Path, meta: BundleSpec, metrics: dict, fill: Callable[[Path], None]) -> None:
    """Write a refitted bundle atomically: ``fill`` puts the carried-over files into the staging folder,
    then its model.json, metrics.json and card are written and the folder replaces ``out_dir``."""
    from bcc_model.models.bundle import install_bundle, staging_dir, write_json
    from bcc_model.reporting.model_card import render_model_card

    staging = staging_dir(out_dir)
    try:
        fill(staging)
        meta.write(staging / "model.json")
        write_json(staging / "metrics.json", metrics)
        (staging / "MODEL_CARD.md").write_text(render_model_card(meta.to_json(), metrics), encoding="utf-8")
        install_bundle(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _weight_files(bundle: Bundle) -> list[str]:
    """The files that carry the network and its training record: classifier, history, training manifest,
    ONNX twin and lesion map, where shipped."""
    names = ["model.keras", "history.csv", "manifest.csv",
             *(name for name in ("model.onnx",) if (bundle.path / name).is_file())]
    lesion = bundle.meta.extras.get("lesion_supervision") or {}
    return names + ([lesion["map_file"]] if lesion.get("map_file") else [])
