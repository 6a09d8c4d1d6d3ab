"""Choosing on validation data only, then testing once: operating point, test metrics, architecture.

Temperature, threshold and indeterminate band are fitted on the validation split, or, after
cross-validation, on the out-of-fold predictions of every non-test patient; the test
split is scored once per architecture with them; the architecture is chosen by validation ROC
AUC alone, so no test figure ever feeds a choice.
"""

from __future__ import annotations

import numpy as np

from bcc_model.registry import ModalitySpec
from bcc_model.training.config import TrainConfig

__all__ = ["OPERATING_RULE", "case_weighting", "split_weights", "operating_choice", "with_conformal", "validation_choice",
           "choose_and_test", "select_architecture"]


def validation_choice(model, x_val: np.ndarray, y_val: np.ndarray, spec: ModalitySpec,
                      weights: np.ndarray | None = None, groups: np.ndarray | None = None) -> dict:
    """Temperature, threshold, sets and band chosen on validation data, with validation scores."""
    from bcc_model.analysis.predictions import raw_probabilities

    return operating_choice(raw_probabilities(model, x_val.astype(np.float32)), y_val, spec, "validation", weights,
                            groups)


OPERATING_RULE = ("temperature: weighted negative log-likelihood; threshold: best weighted balanced accuracy "
                  "(Youden's J); conformal sets: class-conditional LAC scores of the network's own held-out "
                  "patients, each patient weighing the same; indeterminate: the 90 % set is not exactly the "
                  "predicted class (two classes: the P(positive) band where that happens)")
"""The rule that fixes every bundle's operating point, stated before any fit (model.json ``decision.rule``)."""


def case_weighting(spec: ModalitySpec) -> str | None:
    """What the case weights of fits and metrics mean, in words, or ``None`` when images count once each."""
    if spec.recipe.sampled_fraction is None:
        return None
    column, value, label, fraction = spec.recipe.sampled_fraction
    return (f"{label} images of {column} = {value} weigh 1 / {fraction} (only that fraction of them was kept), so "
            "each patient counts in its tissue's real mix; every other image once")


def split_weights(arrays: dict, split: str) -> np.ndarray | None:
    """Prevalence weights (``datasets.weights.prevalence_weights``) of one split's images, or ``None``."""
    from bcc_model.datasets.weights import prevalence_weights

    return prevalence_weights(arrays.get(f"{split}_prevalence"))


def operating_choice(raw: np.ndarray, y_val: np.ndarray, spec: ModalitySpec, fitted_on: str,
                     weights: np.ndarray | None = None, groups: np.ndarray | None = None) -> dict:
    """Temperature, threshold and band fitted on held-out raw probabilities ``raw`` (N, K), with their scores.

    ``raw`` comes from whole patients the model(s) never trained on: the validation split, or
    the out-of-fold predictions of cross-validation (``fitted_on`` says which, for model.json).
    ``weights`` (N,) are prevalence weights (``split_weights``): the fit and its scores then see
    each patient's tissue in its real mix instead of the training data's. With ``groups`` (each
    case's patient) the conformal sets and the band are fitted on the same cases
    (:func:`with_conformal`): only right when ``raw`` comes from the network that ships.
    The band by the accuracy rule stays where no set can be fitted.
    """
    from sklearn.metrics import balanced_accuracy_score, log_loss, roc_auc_score

    from bcc_model.models.decision import apply_temperature, decide
    from bcc_model.evaluation.calibration import choose_band, choose_threshold, fit_temperature

    temperature = fit_temperature(raw, y_val, weights=weights)
    probs = apply_temperature(raw, temperature)
    positive = spec.positive_index
    is_positive = (y_val == positive).astype(int)
    threshold = choose_threshold(probs[:, positive], is_positive, weights)
    band = choose_band(probs[:, positive], is_positive, threshold, weights=weights)
    predicted, indeterminate = decide(probs, positive, threshold, band)
    outside = ~indeterminate
    w = np.ones(len(y_val)) if weights is None else np.asarray(weights, dtype=np.float64)
    choice = {
        "fitted_on": fitted_on,
        "rule": OPERATING_RULE,
        "temperature": float(temperature),
        "threshold": float(threshold),
        "band": [float(band[0]), float(band[1])],
        "roc_auc": float(roc_auc_score(is_positive, probs[:, positive], sample_weight=w)),
        "balanced_accuracy": float(balanced_accuracy_score(y_val, predicted, sample_weight=w)),
        "loss": float(log_loss(y_val, probs, labels=list(range(len(spec.labels))), sample_weight=w)),
        "accuracy_outside_band": (float(np.average(predicted[outside] == y_val[outside], weights=w[outside]))
                                  if outside.any() else None),
        "fraction_indeterminate": float(np.average(indeterminate, weights=w)),
    }
    return choice if groups is None else with_conformal(choice, probs, y_val, groups, spec, fitted_on, weights)


def with_conformal(choice: dict, probs: np.ndarray, y: np.ndarray, groups: np.ndarray, spec: ModalitySpec,
                   fitted_on: str, weights: np.ndarray | None = None) -> dict:
    """``choice`` with conformal sets fitted on the shipped network's held-out ``probs`` (calibrated), and the band they imply.

    Why the network's own patients: sets calibrated on cross-validation's fold models promise
    coverage for those models; the shipped network is another one (on the H&E test patients the
    fold calibration covered 80 % of IDC-negative patches at a promised 90 %). For two classes the
    band becomes the P(positive) interval where the 90 % set is not one class, so band and set are
    one concept; the share indeterminate and the accuracy outside are measured on these cases.
    Unchanged (``conformal: None``) when a class has no case.
    """
    from bcc_model.evaluation.conformal import fit_conformal
    from bcc_model.models.conformal import DEFAULT_LEVEL, undecided_band
    from bcc_model.models.decision import OperatingPoint

    y = np.asarray(y)
    try:
        calibration = fit_conformal(probs, y, groups, spec.labels, score="lac", fitted_on=fitted_on)
    except ValueError:
        return {**choice, "conformal": None}
    band = (undecided_band(calibration, spec.positive_index, choice["threshold"], DEFAULT_LEVEL)
            or tuple(choice["band"]))
    point = OperatingPoint(spec.labels, spec.positive_index, choice["threshold"], band, 1.0, calibration,
                           DEFAULT_LEVEL)
    predicted, indeterminate = point.decide(probs)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
    outside = ~indeterminate
    where = (fitted_on if fitted_on == choice["fitted_on"] else
             f"{choice['fitted_on']} (temperature, threshold); {fitted_on} (conformal sets, band)")
    return {**choice, "fitted_on": where, "conformal": calibration, "band": [float(band[0]), float(band[1])],
            "accuracy_outside_band": (float(np.average(predicted[outside] == y[outside], weights=w[outside]))
                                      if outside.any() else None),
            "fraction_indeterminate": float(np.average(indeterminate, weights=w))}


def choose_and_test(model, arrays: dict, test_groups: list[str], spec: ModalitySpec,
                     config: TrainConfig, choice: dict | None = None) -> tuple[dict, dict]:
    """Fix the operating point on validation data (unless ``choice`` gives one), then score the test split once with it.

    Args:
        model: the trained network (softmax outputs).
        arrays: split name -> ``(x, y)``; uses ``validation`` and ``test``.
        test_groups: group (patient) of each test item, for the bootstrap.
        spec: the modality (labels, positive label, extra binary tasks).
        config: parsed command line (``bootstrap``, ``seed``).
        choice: an :func:`operating_choice` fitted elsewhere (cross-validation's out-of-fold predictions).

    Returns:
        ``(choice, metrics)``: :func:`validation_choice` and the test metrics.json dictionary.
    """
    from bcc_model.models.decision import OperatingPoint, apply_temperature
    from bcc_model.evaluation.metrics import compute_metrics
    from bcc_model.evaluation.robustness import compression_robustness
    from bcc_model.analysis.predictions import raw_probabilities

    if choice is None:
        choice = validation_choice(model, *arrays["validation"], spec, split_weights(arrays, "validation"),
                                   arrays.get("validation_groups"))
    elif arrays.get("validation_groups") is not None:  # fitted on fold models: the sets come from this network
        x_val, y_val = arrays["validation"]
        val_probs = apply_temperature(raw_probabilities(model, x_val.astype(np.float32)), choice["temperature"])
        choice = with_conformal(choice, val_probs, y_val, arrays["validation_groups"], spec,
                                f"the validation patients of this network ({len(set(arrays['validation_groups']))})",
                                split_weights(arrays, "validation"))
    x_test, y_test = arrays["test"]
    test_probs = apply_temperature(raw_probabilities(model, x_test.astype(np.float32)), choice["temperature"])
    point = OperatingPoint(spec.labels, spec.positive_index, choice["threshold"], tuple(choice["band"]),
                           choice["temperature"], choice.get("conformal"))
    metrics = compute_metrics(
        test_probs, y_test, test_groups, point, split="test", n_resamples=config.bootstrap, seed=config.seed,
        binary_tasks=spec.recipe.extra_binary_tasks or None,
        weights=split_weights(arrays, "test"), weighting=case_weighting(spec),
    )
    if choice.get("conformal") is not None:
        from bcc_model.evaluation.conformal import conformal_report

        metrics["conformal"] = conformal_report(choice["conformal"], test_probs, y_test, test_groups,
                                                n_resamples=config.bootstrap, seed=config.seed)
    if spec.kind == "image":
        metrics["robustness"] = compression_robustness(
            lambda batch: apply_temperature(raw_probabilities(model, batch), choice["temperature"]), x_test, y_test, point)
    return choice, metrics


def select_architecture(results: dict) -> str:
    """The architecture with the best validation ROC AUC (lower validation loss breaks ties)."""
    return max(results, key=lambda a: (results[a]["validation"]["roc_auc"], -results[a]["validation"]["loss"]))
