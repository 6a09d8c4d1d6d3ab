"""Refitting a bundle's conformal sets and band on its own validation patients, weights untouched.

Why: the sets promise coverage for the network that made the calibration scores. Bundles whose
sets came from cross-validation's fold models (or that had none) get them from the shipped
network's validation patients, which it never trained on, read back from the bundle's
``manifest.csv``; the test patients in the same manifest are scored once to check them. Only the
operating point's sets, band and the figures that depend on them change: ``model.json``
``decision`` and ``conformal``, ``metrics.json`` ``indeterminate_band``, ``indeterminate`` and
``conformal``, and the card. Training does the same for every new bundle
(``selection.with_conformal``), so this is how a bundle trained before that catches up.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from bcc_model.models.bundle import Bundle
from bcc_model.models.spec import DecisionRule
from bcc_model.registry import ModalitySpec, modality_hook
from bcc_model.training.recalibrate import install_refitted
from bcc_model.training.selection import OPERATING_RULE, case_weighting, with_conformal

log = logging.getLogger(__name__)

__all__ = ["check_refittable", "refit_own_sets"]


def _split_probabilities(bundle: Bundle, data_dir: Path, manifest: pd.DataFrame) -> np.ndarray:
    """The bundle's calibrated probabilities of every manifest row: images relative to ``data_dir``, or the
    modality's own ``manifest_probabilities`` hook (tabular cases)."""
    from bcc_model.analysis.predictions import calibrated_probabilities

    spec = bundle.spec
    hook = modality_hook(spec.key, "manifest_probabilities")
    if hook is not None:
        return hook(bundle, data_dir, manifest)
    if spec.kind != "image":
        raise ValueError(f"{spec.key} has no manifest_probabilities hook to score its cases")
    from bcc_model.datasets.folders import load_images

    return calibrated_probabilities(bundle, load_images(manifest, data_dir, spec).astype(np.float32))


def _prevalence(bundle: Bundle, data_dir: Path, manifest: pd.DataFrame) -> np.ndarray | None:
    """Prevalence weights of the manifest's rows where the modality's recipe asks for them."""
    if bundle.spec.recipe.sampled_fraction is None:
        return None
    from bcc_model.datasets.folders import discover
    from bcc_model.datasets.weights import prevalence_weights

    table = discover(data_dir, bundle.spec).set_index("file")
    return prevalence_weights(table.loc[manifest["file"], "prevalence_weight"].to_numpy(np.float64))


def check_refittable(spec: ModalitySpec) -> None:
    """``ValueError`` when ``spec``'s bundles have no validation patients of their own (checked before loading one)."""
    if spec.recipe.cell_poolings:
        raise ValueError(f"the {spec.key} bundle's final head trained on its validation patients too (cell-pooling "
                         "recipe): they are not held out; its sets come from out-of-fold predictions at training")


def refit_own_sets(bundle: Bundle, data_dir: str | Path, out_dir: str | Path, *, n_resamples: int = 1000,
                   seed: int = 42) -> Path:
    """Write ``out_dir``: ``bundle`` with sets and band fitted on its validation patients, checked on its test patients.

    Args:
        bundle: a loaded bundle whose ``manifest.csv`` has validation and test rows.
        data_dir: the folder the manifest's ``file`` paths are relative to (ignored for scikit-learn's WDBC).
        out_dir: where the bundle goes (may be the bundle's own folder: it is replaced as a whole).
    """
    from bcc_model.evaluation.calibration import band_summary
    from bcc_model.evaluation.conformal import conformal_report
    from bcc_model.models.conformal import level_text
    from bcc_model.models.decision import OperatingPoint

    spec, meta, data_dir = bundle.spec, bundle.meta, Path(data_dir)
    check_refittable(spec)
    manifest = pd.read_csv(bundle.path / "manifest.csv", dtype=str, keep_default_na=False)
    if spec.kind == "image":  # only the held-out rows are scored; tabular cases are read (and scored) as a whole
        manifest = manifest[manifest["split"].isin(["validation", "test"])].reset_index(drop=True)
    probs = _split_probabilities(bundle, data_dir, manifest)
    weights = _prevalence(bundle, data_dir, manifest)
    index = {label: k for k, label in enumerate(spec.labels)}
    known = manifest["label"].isin(index).to_numpy()  # e.g. RSNA's "negative" is none of a 3-class model's labels
    y = manifest["label"].map(index).fillna(-1).to_numpy(int)
    rows = {split: (manifest["split"] == split).to_numpy() & known for split in ("validation", "test")}
    val, test = rows["validation"], rows["test"]
    groups = manifest["group"].to_numpy()
    n_val = len(set(groups[val]))
    # Temperature and threshold stay where they were fitted (calibration.fitted_on): refitting twice changes nothing.
    choice = {"fitted_on": meta.calibration.fitted_on, "threshold": meta.decision.threshold,
              "band": list(meta.decision.indeterminate_band)}
    choice = with_conformal(choice, probs[val], y[val], groups[val], spec,
                            f"the validation patients of this network ({n_val})",
                            None if weights is None else weights[val])
    if choice["conformal"] is None:
        raise ValueError("a class has no validation case: no set can be fitted")
    point = OperatingPoint(spec.labels, spec.positive_index, meta.decision.threshold, tuple(choice["band"]),
                           meta.calibration.temperature, choice["conformal"])
    metrics = dict(bundle.metrics)
    metrics["conformal"] = conformal_report(choice["conformal"], probs[test], y[test], groups[test],
                                            n_resamples=n_resamples, seed=seed)
    if (manifest["split"] == "test").sum() == test.sum():  # every test row has one of the labels: redo the block
        _, undecided = point.decide(probs[test])
        metrics["indeterminate_band"] = list(choice["band"])
        metrics["indeterminate"] = {**band_summary(probs[test], y[test], spec.positive_index, point.threshold,
                                                   point.band, None if weights is None else weights[test], undecided),
                                    "rule": f"conformal set at {level_text(point.level)} is not exactly the predicted class"}
    decision = DecisionRule(threshold=meta.decision.threshold, indeterminate_band=tuple(choice["band"]),
                            chosen_on=choice["fitted_on"],
                            validation_accuracy_outside_band=choice["accuracy_outside_band"],
                            validation_fraction_indeterminate=choice["fraction_indeterminate"],
                            rule=OPERATING_RULE, weighting=case_weighting(spec) if weights is not None else None)
    new_meta = replace(meta, decision=decision, extras={**meta.extras, "conformal": choice["conformal"].to_json()})
    install_refitted(Path(out_dir), new_meta, metrics,
                     lambda staging: shutil.copytree(bundle.path, staging, dirs_exist_ok=True))
    log.info("Sets refitted on %d validation patients; band %s", n_val, choice["band"])
    return out_dir
