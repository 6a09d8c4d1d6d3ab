"""Train a tabular modality's classifier (cytology: WDBC features) and write its bundle.

Run through the common command line: ``python -m bcc_model.train --modality cytology``.

What happens, in order:
1. Cases are read from ``--data`` (default ``sklearn:wdbc``, scikit-learn's copy of WDBC; or a
   CSV with the 30 feature columns, ``label`` and optionally ``group``). Each case is its own
   group unless the CSV says otherwise. A seeded split stratified by label gives train /
   validation / test = 60 / 20 / 20 %, and the manifest records each case with a sha256 of its
   feature values and label (:func:`bcc_model.tabular.row_sha256`).
2. Stratified 5-fold cross-validation on train + validation (the test split is never touched)
   compares every configured network with logistic regression: mean ± sd of accuracy and ROC
   AUC over the folds. Inside each training fold, a quarter is held out for early stopping, so
   each network is trained exactly as the final one is.
3. The bundled network (``--arch``, default the registry's ``conv1d``) is trained on the train
   split with early stopping on validation, deterministically (seeds and
   ``enable_op_determinism``); checkpoints in ``--work-dir`` allow ``--resume``.
4. On validation cases only: temperature scaling, the decision threshold and the indeterminate
   band. The test split is scored once (bootstrap CIs resample cases), and the bundle is written
   atomically with the image modalities' writer, plus ``feature_names``, ``feature_ranges``
   (train split) and the ``cross_validation`` block in model.json.

Example (reproduces the shipped cytology bundle):
    python -m bcc_model.train --modality cytology
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .modalities import ModalitySpec

__all__ = ["CV_FOLDS", "LOGISTIC_REGRESSION", "split_cases", "cross_validate", "train_tabular"]

CV_FOLDS = 5
TEST_FRACTION = 0.2
VALIDATION_FRACTION = 0.2
EARLY_STOPPING_FOLDS = 4
"""Inside a cross-validation training fold, 1/4 is held out for early stopping: fold-train :
early-stopping = 60 : 20 of train + validation, the proportions of the final train : validation."""

LOGISTIC_REGRESSION = "logistic_regression"


def split_cases(cases: pd.DataFrame, source: str, *, seed: int) -> pd.DataFrame:
    """The manifest: one row per case with ``file, label, group, split, sha256``.

    ``file`` is ``<source>#<row>`` (scikit-learn's row index, or the line in the CSV file), the
    split is stratified by label and keeps groups whole (:func:`bcc_model.data.split_by_group`).

    Raises:
        DataError: too few cases, or a split or cross-validation fold would lack a class.
    """
    from .data import DataError, split_by_group
    from .tabular import FEATURE_NAMES, row_sha256

    table = pd.DataFrame({"file": [f"{source}#{i}" for i in cases.index], "label": cases["label"].to_numpy(),
                          "group": cases["group"].to_numpy()})
    manifest = split_by_group(table, seed=seed, test_fraction=TEST_FRACTION, validation_fraction=VALIDATION_FRACTION)
    for split, part in manifest.groupby("split"):
        if part["label"].nunique() < 2:
            raise DataError(f"the {split} split holds only {part['label'].iloc[0]!r} cases; add cases of every class")
    fitting = manifest[manifest["split"] != "test"]
    too_few = fitting.groupby("label")["group"].nunique().loc[lambda n: n < CV_FOLDS]
    if len(too_few):
        raise DataError(f"{CV_FOLDS}-fold cross-validation needs at least {CV_FOLDS} groups per class in train + "
                        f"validation; found {too_few.to_dict()}")
    values = cases[list(FEATURE_NAMES)].to_numpy(dtype=np.float64)
    return manifest.assign(sha256=[row_sha256(row, label) for row, label in zip(values, manifest["label"])])


def _network(arch: str, spec: ModalitySpec, x_train: np.ndarray):
    """Uncompiled network ``arch`` standardising with the statistics of ``x_train``."""
    from .tabular_models import build_tabular_model

    return build_tabular_model(arch, x_train.shape[1], len(spec.labels), mean=x_train.mean(axis=0),
                               variance=x_train.var(axis=0), **dict(spec.arch_params[arch]))


def _fold_probabilities(name: str, spec: ModalitySpec, fit: pd.DataFrame, x_fit: np.ndarray, y_fit: np.ndarray,
                        x_held: np.ndarray, args: argparse.Namespace) -> np.ndarray:
    """Train model ``name`` on one cross-validation training fold; (N, K) probabilities of the held-out fold."""
    from .data import _pick_fold, class_weights, make_dataset
    from .predict import raw_probabilities
    from .tabular_models import build_logistic_regression
    from .train import _compile, _configure_determinism, _schedule_callbacks

    if name == LOGISTIC_REGRESSION:
        model = build_logistic_regression(args.seed).fit(x_fit, y_fit)
        probs = np.zeros((len(x_held), len(spec.labels)))
        probs[:, model.classes_] = model.predict_proba(x_held)
        return probs
    stopping = _pick_fold(fit.reset_index(drop=True), EARLY_STOPPING_FOLDS, args.seed)

    def dataset(mask: np.ndarray, training: bool):
        return make_dataset(x_fit[mask], y_fit[mask], spec, batch_size=args.batch_size, training=training,
                            seed=args.seed)

    _configure_determinism(args.seed)
    model = _compile(_network(name, spec, x_fit[~stopping]), args.lr)
    model.fit(dataset(~stopping, True), validation_data=dataset(stopping, False), epochs=args.epochs,
              class_weight=class_weights(y_fit[~stopping], len(spec.labels)), callbacks=_schedule_callbacks(args),
              verbose=0)
    return raw_probabilities(model, x_held.astype(np.float32))


def _mean_sd(values: list[float]) -> dict:
    """``{"mean", "sd", "folds"}``; sd is the sample standard deviation (ddof = 1) over folds."""
    return {"mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1)), "folds": [float(v) for v in values]}


def cross_validate(x: np.ndarray, manifest: pd.DataFrame, spec: ModalitySpec, args: argparse.Namespace) -> dict:
    """Stratified group k-fold comparison of every configured network and logistic regression.

    Every model sees the same folds. The networks are trained as in the final run (class
    weights, early stopping on a held-out quarter of the training fold, the same learning-rate
    schedule and seed); logistic regression uses the whole training fold. Accuracy uses the
    default decision (most probable class, uncalibrated): temperature, threshold and band are
    fitted only for the bundled model, on the validation split.

    Args:
        x: (N, F) float64 raw features of the train and validation cases.
        manifest: their manifest rows (``label`` and ``group``), aligned with ``x``.
        spec: the tabular modality.
        args: parsed command line (epochs, batch size, learning rate, patience, seed).

    Returns:
        The model.json ``cross_validation`` block; each model's ``bundled`` is False until the
        caller marks the architecture it bundles.
    """
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold

    y = manifest["label"].map({label: i for i, label in enumerate(spec.labels)}).to_numpy()
    names = [*spec.arch_params, LOGISTIC_REGRESSION]
    scores = {name: {"accuracy": [], "roc_auc": []} for name in names}
    folds = StratifiedGroupKFold(n_splits=CV_FOLDS, shuffle=True, random_state=args.seed)
    for k, (fit, held) in enumerate(folds.split(x, y, manifest["group"]), start=1):
        for name in names:
            probs = _fold_probabilities(name, spec, manifest.iloc[fit], x[fit], y[fit], x[held], args)
            scores[name]["accuracy"].append(accuracy_score(y[held], probs.argmax(axis=1)))
            scores[name]["roc_auc"].append(roc_auc_score(y[held] == spec.positive_index, probs[:, spec.positive_index]))
        print(f"[cv] fold {k}/{CV_FOLDS}: " + ", ".join(
            f"{n} acc {scores[n]['accuracy'][-1]:.3f} auc {scores[n]['roc_auc'][-1]:.3f}" for n in names), flush=True)
    return {
        "method": f"stratified {CV_FOLDS}-fold cross-validation (StratifiedGroupKFold, seed {args.seed}) on the "
                  "train and validation splits; the test split is not used",
        "n_splits": CV_FOLDS,
        "seed": args.seed,
        "n_cases": int(len(x)),
        "decision": "most probable class (uncalibrated); ROC AUC for the positive label",
        "early_stopping": f"networks: 1/{EARLY_STOPPING_FOLDS} of each training fold held out for early stopping",
        "sd": "sample standard deviation over folds (ddof = 1)",
        "models": [
            {"name": name,
             "params": (dict(spec.arch_params[name]) if name in spec.arch_params
                        else {"scaler": "StandardScaler", "C": 1.0, "class_weight": "balanced"}),
             "accuracy": _mean_sd(scores[name]["accuracy"]),
             "roc_auc": _mean_sd(scores[name]["roc_auc"]),
             "bundled": False}
            for name in names
        ],
    }


def _format_cv(cv: dict) -> str:
    lines = [f"Cross-validation ({cv['n_splits']} folds, {cv['n_cases']} cases; mean ± sd):",
             f"{'model':<22}{'accuracy':<18}ROC AUC"]
    for entry in cv["models"]:
        acc, auc = entry["accuracy"], entry["roc_auc"]
        lines.append(f"{entry['name']:<22}{acc['mean']:.3f} ± {acc['sd']:.3f}     "
                     f"{auc['mean']:.3f} ± {auc['sd']:.3f}")
    return "\n".join(lines)


def train_tabular(args: argparse.Namespace, spec: ModalitySpec) -> int:
    """Run steps 1-4 of the module docstring for ``spec``; returns the process exit status.

    Args:
        args: the options of :func:`bcc_model.train.parse_args` (``--image-size`` is refused).
        spec: a registry entry of kind ``"tabular"``.

    Returns:
        0 when the bundle was written, 2 on bad arguments or data (message on stderr).
    """
    from .data import DataError
    from .metrics import format_metrics_table
    from .tabular import FEATURE_NAMES, WDBC_SOURCE, feature_ranges, load_cases
    from .train import (_architectures_configured, _choose_and_test, _configure_determinism, _select_architecture,
                        _train_one, _write_bundle)

    if args.image_size:
        print(f"error: --image-size does not apply to tabular modality {spec.key!r}", file=sys.stderr)
        return 2
    archs = args.arch or [spec.default_arch]
    if not _architectures_configured(spec, archs):
        return 2
    source = str(args.data) if args.data else WDBC_SOURCE
    source_name = source if source == WDBC_SOURCE else Path(source).name
    try:
        cases = load_cases(source, spec.labels)
        manifest = split_cases(cases, source_name, seed=args.seed)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    started = time.time()
    x_all = cases[list(FEATURE_NAMES)].to_numpy(dtype=np.float64)
    y_all = manifest["label"].map({label: i for i, label in enumerate(spec.labels)}).to_numpy()
    masks = {split: (manifest["split"] == split).to_numpy() for split in ("train", "validation", "test")}
    counts = ", ".join(f"{split} {int(mask.sum())}" for split, mask in masks.items())
    print(f"{len(cases)} cases from {source}: {counts}", flush=True)

    fitting = ~masks["test"]
    cv = cross_validate(x_all[fitting], manifest[fitting], spec, args)
    print(_format_cv(cv) + "\n", flush=True)

    arrays = {split: (x_all[mask].astype(np.float32), y_all[mask]) for split, mask in masks.items()}
    work_root = args.work_dir or Path("runs") / spec.key
    results = {}
    for arch in archs:
        _configure_determinism(args.seed)
        model, history = _train_one(arch, spec, arrays, args, work_root / arch,
                                    build=lambda arch=arch: _network(arch, spec, x_all[masks["train"]]))
        choice, metrics = _choose_and_test(model, arrays, manifest.loc[masks["test"], "group"].tolist(), spec, args)
        results[arch] = {"model": model, "history": history, "validation": choice, "metrics": metrics}
        print(f"[{arch}] validation: ROC AUC {choice['roc_auc']:.3f}, balanced accuracy "
              f"{choice['balanced_accuracy']:.3f}\n[{arch}] test (held-out cases):\n{format_metrics_table(metrics)}\n",
              flush=True)
    selected = _select_architecture(results)
    for entry in cv["models"]:
        entry["bundled"] = entry["name"] == selected
    extra = {"feature_names": list(FEATURE_NAMES), "feature_ranges": feature_ranges(cases[masks["train"]]),
             "cross_validation": cv}
    out_dir = args.out or spec.bundle_dir
    _write_bundle(spec, args, selected, results, manifest, source_name, out_dir, time.time() - started, extra=extra)
    print(f"Selected {selected}; bundle written to {out_dir}", flush=True)
    return 0
