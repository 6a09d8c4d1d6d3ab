"""Patient-grouped k-fold cross-validation of image architectures: choose on many patients, not one split.

One small validation split mostly measures the split (the H&E model's validation balanced
accuracy was 0.90, its unseen-patient figure 0.75). Here the patients outside the test split are
cut into ``k`` stratified group folds (``datasets.splits``); every candidate (an architecture, or a
recipe of the registry's ``cv_candidates``: stain normalisation, stronger stain augmentation) is
trained ``k`` times, each time on ``k - 1`` folds (one fold of those patients held out again
for early stopping) and scored on the fold it never saw. The out-of-fold predictions give each
candidate's mean ± sd over folds and the spread over patients, the candidate is chosen by mean
out-of-fold ROC AUC, and its out-of-fold predictions (every patient scored by a model that never
saw them) fix the bundle's temperature, threshold and indeterminate band. The test patients
take no part.

The result has the ``cross_validation`` schema of ``model.json`` that the model card renders
(also written by the cytology path).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from bcc_model.datasets.splits import patient_folds
from bcc_model.datasets.weights import prevalence_weights
from bcc_model.registry import ModalitySpec
from bcc_model.training.config import TrainConfig

log = logging.getLogger(__name__)

__all__ = ["CrossValidation", "cross_validate_images"]

_EARLY_STOPPING_FOLDS = 4


@dataclass(frozen=True)
class CrossValidation:
    """What patient-grouped cross-validation of the image candidates found.

    Attributes:
        record: the ``cross_validation`` block of ``model.json`` (plain JSON types; the model card
            renders it): method, folds, every candidate's mean ± sd and per-patient spread.
        chosen: the candidate with the best mean out-of-fold ROC AUC (a recipe or an architecture).
        oof: (N, K) the chosen candidate's out-of-fold raw probabilities: every non-test patient
            scored by a model that never saw them; the operating point is fitted on them.
        y: (N,) class indices of those images, in the same order.
        fold_models: the chosen candidate's fold checkpoints (the teacher ensemble).
        best_epochs: the chosen candidate's best epoch in every fold (``None`` where a fold never ran).
        weights: (N,) prevalence weights of those images (``datasets.weights.prevalence_weights``),
            or ``None``; the operating point is fitted with them.
        groups: (N,) patient of each image (the conformal calibration keeps one per patient and class).
    """

    record: dict
    chosen: str
    oof: np.ndarray
    y: np.ndarray
    fold_models: tuple[Path, ...]
    best_epochs: tuple[int | None, ...]
    weights: np.ndarray | None = None
    groups: np.ndarray | None = None

    @property
    def n_splits(self) -> int:
        return int(self.record["n_splits"])

    @property
    def n_patients(self) -> int:
        return int(self.record["n_patients"])


def _mean_sd(values: list[float]) -> dict:
    finite = [v for v in values if v is not None and np.isfinite(v)]
    return {"mean": float(np.mean(finite)) if finite else None,
            "sd": float(np.std(finite, ddof=1)) if len(finite) > 1 else None, "values": values}


def _fold_scores(y: np.ndarray, probs: np.ndarray, positive: int) -> tuple[float, float | None, float]:
    predicted = probs.argmax(axis=1)
    is_positive = (y == positive).astype(int)
    auc = float(roc_auc_score(is_positive, probs[:, positive])) if len(set(is_positive.tolist())) == 2 else None
    return float(np.mean(predicted == y)), auc, float(balanced_accuracy_score(y, predicted))


def _per_patient(y: np.ndarray, probs: np.ndarray, groups: np.ndarray) -> dict:
    """Out-of-fold accuracy per patient: its minimum, quartiles and the number of patients below 0.8."""
    correct = probs.argmax(axis=1) == y
    accuracy = {g: float(correct[groups == g].mean()) for g in np.unique(groups)}
    values = np.array(list(accuracy.values()))
    return {"n_patients": int(len(values)), "min": float(values.min()),
            "quartiles": [float(q) for q in np.percentile(values, [25, 50, 75])],
            "below_0.80": int((values < 0.80).sum())}


def cross_validate_images(spec: ModalitySpec, config: TrainConfig, inputs, y: np.ndarray, groups: np.ndarray,
                          candidates: list[str], work_root: Path, folds: int,
                          prevalence: np.ndarray | None = None) -> CrossValidation:
    """Out-of-fold scores of every candidate over ``folds`` patient folds of the non-test patients.

    Args:
        spec: the modality (labels, positive class, candidates' recipes: ``ModalitySpec.candidate``).
        config: the run's settings (each architecture's ``arch_training`` applies).
        inputs: ``inputs(candidate_spec)`` -> uint8 model inputs (N, H, W, C) of those patients,
            preprocessed as that candidate's recipe says (a Macenko candidate gets normalised pixels).
        y: (N,) class indices; ``groups``: (N,) patient of each image.
        candidates: names of ``cv_candidates`` recipes or architectures.
        work_root: checkpoints go to ``work_root/cv/<candidate>/fold<k>`` (``--resume`` reuses finished folds).
        folds: number of patient folds (``k``).
        prevalence: (N,) ``1 / sampled fraction`` of each image (``datasets.weights``), or ``None``.

    Returns:
        ``CrossValidation``: the ``cross_validation`` block (per-candidate mean ± sd of accuracy,
        balanced accuracy and ROC AUC over folds, out-of-fold per-patient spread, best epochs), the
        chosen candidate (best mean ROC AUC), its out-of-fold probabilities and fold checkpoints.
    """
    fold_of = patient_folds(y, groups, folds, config.seed)
    models, oofs = [], {}
    for name in candidates:
        arch, candidate_spec = spec.candidate(name)
        entry, oofs[name] = _cross_validate_one(name, arch, candidate_spec, config, inputs(candidate_spec), y, groups,
                                                fold_of, work_root / "cv" / name, prevalence)
        models.append(entry)
    chosen = max(models, key=lambda m: (m["roc_auc"]["mean"] or 0.0, m["balanced_accuracy"]["mean"] or 0.0))["name"]
    for model in models:
        model["bundled"] = model["name"] == chosen
    record = {
        "method": f"patient-grouped stratified {folds}-fold cross-validation (StratifiedGroupKFold) over the "
                  f"{len(np.unique(groups))} patients outside the test split",
        "n_cases": int(len(y)), "n_patients": int(len(np.unique(groups))), "n_splits": folds, "n_repeats": 1,
        "n_fits": folds * len(candidates),
        "sd": "sample standard deviation over folds (ddof = 1)",
        "decision": "most probable class (uncalibrated); the candidate with the best mean out-of-fold ROC AUC "
                    "is bundled",
        "early_stopping": f"1/{_EARLY_STOPPING_FOLDS} of each fold's training patients held out for early stopping",
        "patient_weighting": bool(config.patient_weighting),
        "models": models,
        "chosen": chosen,
    }
    return CrossValidation(record=record, chosen=chosen, oof=oofs[chosen], y=y,
                           fold_models=tuple(work_root / "cv" / chosen / f"fold{fold}" / "best.keras"
                                             for fold in range(folds)),
                           best_epochs=tuple(next(m["best_epochs"] for m in models if m["name"] == chosen)),
                           weights=prevalence_weights(prevalence), groups=np.asarray(groups))


def _cross_validate_one(name: str, arch: str, spec: ModalitySpec, config: TrainConfig, x: np.ndarray, y: np.ndarray,
                        groups: np.ndarray, fold_of: np.ndarray, work: Path,
                        prevalence: np.ndarray | None) -> tuple[dict, np.ndarray]:
    """One candidate's fold fits: its ``models`` entry and its out-of-fold raw probabilities."""
    import pandas as pd

    from bcc_model.analysis.predictions import raw_probabilities
    from bcc_model.datasets.splits import pick_fold
    from bcc_model.training.fit import configure_determinism, train_one

    arch_config = config.for_arch(spec, arch)
    folds = int(fold_of.max()) + 1
    oof = np.zeros((len(y), len(spec.labels)), np.float32)
    scores, best_epochs = [], []
    for fold in range(folds):
        fit, held = fold_of != fold, fold_of == fold
        inner = pick_fold(pd.DataFrame({"label": y[fit], "group": groups[fit]}), _EARLY_STOPPING_FOLDS, config.seed)
        fit_idx = np.flatnonzero(fit)
        train_idx, stop_idx = fit_idx[~inner], fit_idx[inner]
        configure_determinism(config.seed + fold)
        model, history = train_one(arch, spec, {"train": (x[train_idx], y[train_idx]),
                                                "validation": (x[stop_idx], y[stop_idx]),
                                                "train_groups": groups[train_idx],
                                                **({} if prevalence is None else
                                                   {"train_prevalence": prevalence[train_idx]})},
                                   arch_config, work / f"fold{fold}")
        oof[held] = raw_probabilities(model, x[held].astype(np.float32))
        scores.append(_fold_scores(y[held], oof[held], spec.positive_index))
        best_epochs.append(int(history.loc[history["val_loss"].idxmin(), "epoch"]) + 1 if len(history) else None)
        log.info(f"[cv {name}] fold {fold + 1}/{folds}: accuracy {scores[-1][0]:.3f}, balanced accuracy "
              f"{scores[-1][2]:.3f}, ROC AUC {scores[-1][1] if scores[-1][1] is None else round(scores[-1][1], 3)}")
    accuracy, auc, balanced = (list(values) for values in zip(*scores))
    entry = {"name": name, "architecture": arch, "preprocessing": list(spec.preprocessing),
             "augmentation": list(spec.recipe.augmentation), "accuracy": _mean_sd(accuracy),
             "balanced_accuracy": _mean_sd(balanced), "roc_auc": _mean_sd(auc),
             "per_patient": _per_patient(y, oof, groups), "best_epochs": best_epochs}
    return entry, oof
