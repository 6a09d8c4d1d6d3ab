"""Train a tabular modality's classifier (cytology: WDBC features) and write its bundle.

Run through the common command line: ``python -m bcc_model.train --modality cytology``.

What happens, in order:
1. Cases are read from ``--data`` (default ``sklearn:wdbc``, scikit-learn's copy of WDBC; or a
   CSV with the 30 feature columns, ``label`` and optionally ``group``). Each case is its own
   group unless the CSV says otherwise. A seeded split stratified by label gives train /
   validation / test = 60 / 20 / 20 %, and the manifest records each case with a sha256 of its
   feature values and label (:func:`bcc_model.modalities.cytology.cases.row_sha256`).
2. Repeated cross-validation on train + validation (the test split is never touched) compares
   every configured network with logistic regression: 5 stratified group folds x 5 repeats, each
   repeat reshuffled with its own seed, and mean ± sd of accuracy and ROC AUC over all 25 fold
   fits. Every model sees the same folds. Inside each training fold, a quarter is held out for
   early stopping, so each network is trained exactly as the final one is; an architecture with
   candidates in :data:`TUNING_GRID` trains each candidate and keeps the one with the lowest log
   loss on that held-out quarter, as the bundle does on the validation split, and logistic
   regression chooses its regularisation C by log loss over inner folds of the training fold.
   Every choice is thus nested inside its fold: the cases a fold scores never influence it.
3. The bundled network (``--arch``, default the registry's ``conv1d``) is trained on the train
   split with early stopping on validation, once per candidate, keeping the candidate with the
   lowest validation log loss; deterministically (seeds and ``enable_op_determinism``);
   checkpoints in ``--work-dir`` allow ``--resume``.
4. On validation cases only: temperature scaling, the decision threshold and the indeterminate
   band. The test split is scored once (bootstrap CIs resample cases), and the bundle is written
   atomically with the image modalities' writer, plus ``feature_names``, ``feature_ranges``
   (train split), the ``cross_validation`` block and the ``tuning`` choice in model.json.

Example (reproduces the shipped cytology bundle):
    python -m bcc_model.train --modality cytology --verbose 0
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

import numpy as np
import pandas as pd

from bcc_model.registry import ModalitySpec
from bcc_model.training.config import TrainConfig

log = logging.getLogger(__name__)

__all__ = ["CVPlan", "CV_PLAN", "TUNING_GRID", "LOGISTIC_REGRESSION", "split_cases", "repeated_folds",
           "candidate_params", "cross_validate", "train_tabular"]


@dataclass(frozen=True)
class CVPlan:
    """Shape of the cross-validation. The bundle uses :data:`CV_PLAN`; tests pass a smaller plan.

    Attributes:
        folds: stratified group folds per repeat.
        repeats: partitions, repeat ``r`` shuffled with seed ``--seed + r``. With 91 cases a fold,
            one case moves a fold's accuracy by 0.011, so a single partition's mean depends on
            which cases happen to share a fold; repeats average that out.
    """

    folds: int = 5
    repeats: int = 5

    @property
    def fits(self) -> int:
        return self.folds * self.repeats


CV_PLAN = CVPlan()
TEST_FRACTION = 0.2
VALIDATION_FRACTION = 0.2
EARLY_STOPPING_FOLDS = 4
"""Inside a cross-validation training fold, 1/4 is held out for early stopping: fold-train :
early-stopping = 60 : 20 of train + validation, the proportions of the final train : validation."""

LOGISTIC_REGRESSION = "logistic_regression"

TUNING_GRID: Mapping[str, tuple[Mapping[str, object], ...]] = MappingProxyType({
    "conv1d": (MappingProxyType({}),
               MappingProxyType({"filters": (16, 32), "dense_units": 32, "dropout": 0.5})),
})
"""Declared hyperparameter candidates per architecture, as overrides of the registry's
``arch_params`` (``{}`` is the registry's own setting: for conv1d the seed system's design).
Architectures not listed are not tuned. The narrower, more regularised conv1d variant was
proposed after an earlier, non-nested 5-fold CV on these cases: choosing inside every fold makes
the choice between the two honest, not the proposal of the variant."""

TUNING_CRITERION = ("lowest log loss of the uncalibrated probabilities on the early-stopping cases (the validation "
                    "split for the bundle, the held-out quarter of the training fold in cross-validation); ties go "
                    "to the earlier candidate")


def split_cases(cases: pd.DataFrame, source: str, *, seed: int, cv_folds: int = CV_PLAN.folds) -> pd.DataFrame:
    """The manifest: one row per case with ``file, label, group, split, sha256``.

    ``file`` is ``<source>#<row>`` (scikit-learn's row index, or the line in the CSV file), the
    split is stratified by label and keeps groups whole (:func:`bcc_model.data.split_by_group`).

    Raises:
        DataError: too few cases, or a split or cross-validation fold would lack a class.
    """
    from bcc_model.datasets.folders import DataError
    from bcc_model.datasets.splits import split_by_group
    from bcc_model.modalities.cytology.cases import FEATURE_NAMES, row_sha256

    table = pd.DataFrame({"file": [f"{source}#{i}" for i in cases.index], "label": cases["label"].to_numpy(),
                          "group": cases["group"].to_numpy()})
    manifest = split_by_group(table, seed=seed, test_fraction=TEST_FRACTION, validation_fraction=VALIDATION_FRACTION)
    for split, part in manifest.groupby("split"):
        if part["label"].nunique() < 2:
            raise DataError(f"the {split} split holds only {part['label'].iloc[0]!r} cases; add cases of every class")
    fitting = manifest[manifest["split"] != "test"]
    too_few = fitting.groupby("label")["group"].nunique().loc[lambda n: n < cv_folds]
    if len(too_few):
        raise DataError(f"{cv_folds}-fold cross-validation needs at least {cv_folds} groups per class in train + "
                        f"validation; found {too_few.to_dict()}")
    values = cases[list(FEATURE_NAMES)].to_numpy(dtype=np.float64)
    return manifest.assign(sha256=[row_sha256(row, label) for row, label in zip(values, manifest["label"])])


def _network(arch: str, params: Mapping[str, object], spec: ModalitySpec, x_train: np.ndarray):
    """Uncompiled network ``arch`` with ``params``, standardising with the statistics of ``x_train``."""
    from bcc_model.modalities.cytology.models import build_tabular_model

    return build_tabular_model(arch, x_train.shape[1], len(spec.labels), mean=x_train.mean(axis=0),
                               variance=x_train.var(axis=0), **dict(params))


def _label_indices(manifest: pd.DataFrame, spec: ModalitySpec) -> np.ndarray:
    return manifest["label"].map({label: i for i, label in enumerate(spec.labels)}).to_numpy()


def _log_loss(model, x: np.ndarray, y: np.ndarray, spec: ModalitySpec) -> float:
    """Log loss of ``model``'s uncalibrated probabilities: the score that chooses among candidates.

    A proper score that, unlike accuracy on about 100 cases, does not move in steps of one case.
    """
    from sklearn.metrics import log_loss

    from bcc_model.analysis.predictions import raw_probabilities

    return float(log_loss(y, raw_probabilities(model, x.astype(np.float32)), labels=list(range(len(spec.labels)))))


def repeated_folds(y: np.ndarray, groups: pd.Series, *, folds: int, repeats: int,
                   seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(fit, held)`` index pairs of ``repeats`` stratified group k-fold partitions, repeat by repeat.

    Repeat ``r`` shuffles with ``seed + r``, so the partitions differ but are reproducible; each
    one holds every case out exactly once and keeps every group whole.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    return [pair for r in range(repeats)
            for pair in StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed + r).split(y, y, groups)]


def candidate_params(arch: str, spec: ModalitySpec) -> list[dict]:
    """The registry's ``arch_params[arch]`` with each override of :data:`TUNING_GRID` (itself alone if untuned)."""
    base = dict(spec.recipe.arch_params[arch])
    return [{**base, **override} for override in TUNING_GRID.get(arch, ({},))]


def _fit_network(name: str, params: Mapping[str, object], spec: ModalitySpec, fit: pd.DataFrame, x_fit: np.ndarray,
                 y_fit: np.ndarray, config: TrainConfig) -> tuple[object, float]:
    """Train network ``name`` on a training fold as in the final run; the model and its
    :func:`_log_loss` on the fold's held-out early-stopping quarter."""
    from bcc_model.datasets.splits import pick_fold
    from bcc_model.training.tfdata import class_weights, make_dataset
    from bcc_model.training.fit import compile_model, configure_determinism, schedule_callbacks

    stopping = pick_fold(fit.reset_index(drop=True), EARLY_STOPPING_FOLDS, config.seed)

    def dataset(mask: np.ndarray, training: bool):
        return make_dataset(x_fit[mask], y_fit[mask], spec, batch_size=config.batch_size, training=training,
                            seed=config.seed)

    configure_determinism(config.seed)
    model = compile_model(_network(name, params, spec, x_fit[~stopping]), config.lr)
    model.fit(dataset(~stopping, True), validation_data=dataset(stopping, False), epochs=config.epochs,
              class_weight=class_weights(y_fit[~stopping], len(spec.labels)), callbacks=schedule_callbacks(config),
              verbose=0)
    return model, _log_loss(model, x_fit[stopping], y_fit[stopping], spec)


def _fold_probabilities(name: str, spec: ModalitySpec, fit: pd.DataFrame, x_fit: np.ndarray, y_fit: np.ndarray,
                        x_held: np.ndarray, config: TrainConfig) -> tuple[np.ndarray, int]:
    """Train model ``name`` on one training fold: (N, K) probabilities of the held-out fold, and
    which of :func:`candidate_params` was kept (0 for untuned models)."""
    from bcc_model.analysis.predictions import raw_probabilities
    from bcc_model.modalities.cytology.models import build_logistic_regression

    if name == LOGISTIC_REGRESSION:
        inner = repeated_folds(y_fit, fit["group"], folds=EARLY_STOPPING_FOLDS, repeats=1, seed=config.seed)
        model = build_logistic_regression(config.seed, inner).fit(x_fit, y_fit)
        probs = np.zeros((len(x_held), len(spec.labels)))
        probs[:, model.classes_] = model.predict_proba(x_held)
        return probs, int(model.best_index_)
    fitted = [_fit_network(name, params, spec, fit, x_fit, y_fit, config) for params in candidate_params(name, spec)]
    chosen = int(np.argmin([loss for _, loss in fitted]))
    return raw_probabilities(fitted[chosen][0], x_held.astype(np.float32)), chosen


def _mean_sd(values: list[float], repeats: int) -> dict:
    """``{"mean", "sd", "folds", "repeat_means"}`` over all fold fits (sd with ddof = 1).

    ``repeat_means`` is what a single k-fold CV would have reported for each partition.
    """
    return {"mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1)), "folds": [float(v) for v in values],
            "repeat_means": [float(m) for m in np.reshape(values, (repeats, -1)).mean(axis=1)]}


def _model_entry(name: str, spec: ModalitySpec, scores: dict, chosen: list[int], repeats: int) -> dict:
    """One model of the ``cross_validation`` block: its settings and its scores over the fits."""
    from bcc_model.modalities.cytology.models import LOGISTIC_C_GRID

    if name == LOGISTIC_REGRESSION:
        settings = {"params": {"scaler": "StandardScaler", "class_weight": "balanced",
                               "C": f"chosen by log loss over {EARLY_STOPPING_FOLDS} inner folds of each training fold"},
                    "candidates": [{"C": c} for c in LOGISTIC_C_GRID], "chosen_per_fit": chosen}
    elif name in TUNING_GRID:
        settings = {"candidates": candidate_params(name, spec), "chosen_per_fit": chosen}
    else:
        settings = {"params": dict(spec.recipe.arch_params[name])}
    return {"name": name, **settings, "accuracy": _mean_sd(scores["accuracy"], repeats),
            "roc_auc": _mean_sd(scores["roc_auc"], repeats), "bundled": False}


def cross_validate(x: np.ndarray, manifest: pd.DataFrame, spec: ModalitySpec, config: TrainConfig,
                   plan: CVPlan = CV_PLAN) -> dict:
    """Repeated stratified group k-fold comparison of every configured network and logistic regression.

    Every model sees the same folds. The networks are trained as in the final run (class
    weights, early stopping on a held-out quarter of the training fold, the same learning-rate
    schedule and seed); a tuned architecture trains each candidate and keeps the one with the
    lowest log loss on that quarter, so hyperparameters are chosen inside the training fold,
    never on the cases it is scored on. Logistic regression trains on the whole training fold and
    chooses its C by log loss over inner folds of it.
    Accuracy uses the default decision (most probable class, uncalibrated): temperature,
    threshold and band are fitted only for the bundled model, on the validation split.

    Args:
        x: (N, F) float64 raw features of the train and validation cases.
        manifest: their manifest rows (``label`` and ``group``), aligned with ``x``.
        spec: the tabular modality.
        config: parsed command line (epochs, batch size, learning rate, patience, seed).
        plan: folds and repeats.

    Returns:
        The model.json ``cross_validation`` block; each model's ``bundled`` is False until the
        caller marks the architecture it bundles.
    """
    from sklearn.metrics import accuracy_score, roc_auc_score

    y = _label_indices(manifest, spec)
    names = [*spec.recipe.arch_params, LOGISTIC_REGRESSION]
    scores = {name: {"accuracy": [], "roc_auc": []} for name in names}
    chosen = {name: [] for name in names}
    folds = repeated_folds(y, manifest["group"], folds=plan.folds, repeats=plan.repeats, seed=config.seed)
    for k, (fit, held) in enumerate(folds):
        for name in names:
            probs, candidate = _fold_probabilities(name, spec, manifest.iloc[fit], x[fit], y[fit], x[held], config)
            chosen[name].append(candidate)
            scores[name]["accuracy"].append(accuracy_score(y[held], probs.argmax(axis=1)))
            scores[name]["roc_auc"].append(roc_auc_score(y[held] == spec.positive_index, probs[:, spec.positive_index]))
        log.info(f"[cv] repeat {k // plan.folds + 1}/{plan.repeats} fold {k % plan.folds + 1}/{plan.folds}: " + ", ".join(
            f"{n} acc {scores[n]['accuracy'][-1]:.3f} auc {scores[n]['roc_auc'][-1]:.3f}" for n in names))
    tuned = [name for name in names if name in TUNING_GRID] + [f"{LOGISTIC_REGRESSION} (C)"]
    return {
        "method": f"repeated stratified group k-fold cross-validation (StratifiedGroupKFold, {plan.folds} folds x "
                  f"{plan.repeats} repeats, repeat r shuffled with seed {config.seed} + r; mean ± sd over all "
                  f"{plan.fits} fold fits) on the train and validation splits, the test split unused; "
                  + f"hyperparameters of {', '.join(tuned)} chosen inside each training fold (nested)",
        "n_splits": plan.folds,
        "n_repeats": plan.repeats,
        "n_fits": plan.fits,
        "seed": config.seed,
        "n_cases": int(len(x)),
        "decision": "most probable class (uncalibrated); ROC AUC for the positive label",
        "early_stopping": f"networks: 1/{EARLY_STOPPING_FOLDS} of each training fold held out for early stopping",
        "tuning_criterion": TUNING_CRITERION,
        "sd": "sample standard deviation over all fold fits (ddof = 1); fits share cases, so it describes the "
              "fold-to-fold spread, not the uncertainty of the mean",
        "models": [_model_entry(name, spec, scores[name], chosen[name], plan.repeats) for name in names],
    }


def _format_cv(cv: dict) -> str:
    lines = [f"Cross-validation ({cv['n_splits']} folds x {cv['n_repeats']} repeats = {cv['n_fits']} fits, "
             f"{cv['n_cases']} cases; mean ± sd over fits):", f"{'model':<22}{'accuracy':<18}ROC AUC"]
    for entry in cv["models"]:
        acc, auc = entry["accuracy"], entry["roc_auc"]
        lines.append(f"{entry['name']:<22}{acc['mean']:.3f} ± {acc['sd']:.3f}     "
                     f"{auc['mean']:.3f} ± {auc['sd']:.3f}")
    return "\n".join(lines)


def _train_tuned(arch: str, spec: ModalitySpec, arrays: dict, x_train: np.ndarray, config: TrainConfig,
                 work: Path) -> tuple[object, pd.DataFrame, dict]:
    """Train every candidate of ``arch`` on the train split and keep the lowest validation log loss.

    The same rule every cross-validation fold applies to its held-out quarter, so the CV
    estimates this procedure, choice included, rather than a configuration picked afterwards.

    Returns:
        The kept model, its history and ``{"candidates", "validation_log_loss", "chosen"}``.
    """
    from bcc_model.training.fit import configure_determinism, train_one

    candidates = candidate_params(arch, spec)
    runs = []
    for i, params in enumerate(candidates):
        configure_determinism(config.seed)
        runs.append(train_one(arch, spec, arrays, config, work / f"candidate{i}" if len(candidates) > 1 else work,
                               build=lambda params=params: _network(arch, params, spec, x_train)))
    losses = [_log_loss(model, *arrays["validation"], spec) for model, _ in runs]
    chosen = int(np.argmin(losses))
    log.info(f"[{arch}] validation log loss per candidate: " + ", ".join(f"{loss:.4f}" for loss in losses)
          + f"; kept {candidates[chosen]}")
    return *runs[chosen], {"candidates": candidates, "validation_log_loss": losses, "chosen": chosen}


def train_tabular(config: TrainConfig, spec: ModalitySpec, plan: CVPlan = CV_PLAN) -> Path:
    """Run steps 1-4 of the module docstring for ``spec``; returns the bundle's folder.

    Args:
        config: the options of :func:`bcc_model.train.parse_args` (``--image-size`` is refused).
        spec: a registry entry of kind ``"tabular"``.
        plan: the cross-validation's folds and repeats (tests pass a smaller one).

    Raises:
        TrainingError: ``--image-size`` given, or an unknown architecture.
        DataError: unreadable cases, a bad row, missing or unknown labels.
    """
    from bcc_model.evaluation.metrics import format_metrics_table
    from bcc_model.modalities.cytology.cases import FEATURE_NAMES, WDBC_SOURCE, feature_ranges, load_cases
    from bcc_model.training.config import TrainingError, check_architectures
    from bcc_model.training.selection import choose_and_test, select_architecture
    from bcc_model.training.writer import write_bundle

    if config.image_size:
        raise TrainingError(f"--image-size does not apply to tabular modality {spec.key!r}")
    archs = config.arch or [spec.recipe.default_arch]
    check_architectures(spec, archs)
    source = str(config.data) if config.data else WDBC_SOURCE
    source_name = source if source == WDBC_SOURCE else Path(source).name
    cases = load_cases(source, spec.labels)
    manifest = split_cases(cases, source_name, seed=config.seed, cv_folds=plan.folds)
    started = time.time()
    x_all = cases[list(FEATURE_NAMES)].to_numpy(dtype=np.float64)
    y_all = _label_indices(manifest, spec)
    masks = {split: (manifest["split"] == split).to_numpy() for split in ("train", "validation", "test")}
    counts = ", ".join(f"{split} {int(mask.sum())}" for split, mask in masks.items())
    log.info(f"{len(cases)} cases from {source}: {counts}")

    fitting = ~masks["test"]
    cv = cross_validate(x_all[fitting], manifest[fitting], spec, config, plan)
    log.info(_format_cv(cv) + "\n")

    arrays = {split: (x_all[mask].astype(np.float32), y_all[mask]) for split, mask in masks.items()}
    arrays["validation_groups"] = manifest.loc[masks["validation"], "group"].to_numpy()  # conformal sets, one per case
    work_root = config.work_dir or Path("runs") / spec.key
    results, tuning, kept = {}, {}, {}
    for arch in archs:
        model, history, tuning[arch] = _train_tuned(arch, spec, arrays, x_all[masks["train"]], config, work_root / arch)
        kept[arch] = MappingProxyType(tuning[arch]["candidates"][tuning[arch]["chosen"]])
        choice, metrics = choose_and_test(model, arrays, manifest.loc[masks["test"], "group"].tolist(), spec, config)
        results[arch] = {"model": model, "history": history, "validation": choice, "metrics": metrics}
        log.info(f"[{arch}] validation: ROC AUC {choice['roc_auc']:.3f}, balanced accuracy "
              f"{choice['balanced_accuracy']:.3f}\n[{arch}] test (held-out cases):\n{format_metrics_table(metrics)}\n")
    selected = select_architecture(results)
    for entry in cv["models"]:
        entry["bundled"] = entry["name"] == selected
    extra = {"feature_names": list(FEATURE_NAMES), "feature_ranges": feature_ranges(cases[masks["train"]]),
             "cross_validation": cv,
             "tuning": {"method": "each candidate trained on the train split with early stopping on validation, as "
                                  "inside every cross-validation fold; the test split is not used",
                        "criterion": TUNING_CRITERION, "architectures": tuning}}
    out_dir = config.out or spec.bundle_dir
    # model.json records the parameters the bundled network was built with: the kept candidate's.
    kept_spec = spec.with_recipe(arch_params=MappingProxyType({**spec.recipe.arch_params, **kept}))
    write_bundle(kept_spec, config, selected, results, manifest, source_name, out_dir, time.time() - started,
                  extra=extra)
    log.info(f"Selected {selected}; bundle written to {out_dir}")
    return Path(out_dir)
