"""Evaluate a bundle on any folder of labelled images: every image is treated as test data.

This is how anyone checks a shipped model on patients it has never seen. Probabilities are
calibrated and decided exactly as in the app (the bundle's temperature, threshold and band),
and confidence intervals resample whole groups (patients) from ``labels.csv``.

A modality whose cases are not images brings its own ``evaluate_external`` hook
(``registry.Modality``; the tabular path reads a CSV). The command line is ``bcc_model/evaluate.py``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["evaluate_folder"]


def evaluate_folder(bundle, data_dir: str | Path, *, n_resamples: int = 1000, seed: int = 0) -> dict:
    """Metrics (metrics.json schema, ``split="external"``) of ``bundle`` on every image of ``data_dir``.

    Modalities with extra binary tasks report them; those with lesion geometry also report
    localisation scores on the images whose geometry the folder provides (``datasets/lesions.py``), for
    Grad-CAM and, when the bundle ships one, the lesion map. A folder with one of the registry's
    ``negative_labels`` (RSNA's ``negative/`` beside ``malignant/``) is scored as the positive
    class against the rest only (P(positive) against the label), and mammography folders also get
    the histogram-only baseline (``evaluation.baseline``) beside the model, and screening mammograms
    a per-patient ROC AUC (views pooled by the bundle's ``view_pooling`` rule). A bundle whose
    operating point was fitted with prevalence weights (``decision.weighting``) is scored with the
    same weights where the folder's ``labels.csv`` carries them, and ``pooled`` gives every image once.
    """
    import numpy as np

    from bcc_model.datasets.folders import discover, load_images
    from bcc_model.models.decision import OperatingPoint
    from bcc_model.evaluation.metrics import compute_metrics
    from bcc_model.evaluation.robustness import compression_robustness
    from bcc_model.analysis.predictions import calibrated_probabilities

    spec = bundle.spec
    table = discover(data_dir, spec, negatives=True)
    images = load_images(table, data_dir, spec)
    point = OperatingPoint.of(bundle)
    binary = bool(set(table["label"]) & set(spec.recipe.negative_labels))
    if binary:
        point = OperatingPoint((f"not {spec.positive_label}", spec.positive_label), 1, point.threshold, point.band,
                               point.temperature)

        def score(batch):
            p = calibrated_probabilities(bundle, batch)[:, spec.positive_index]
            return np.stack([1 - p, p], axis=1)

        y = (table["label"] == spec.positive_label).to_numpy(int)
    else:
        def score(batch):
            return calibrated_probabilities(bundle, batch)

        y = table["label"].map({label: i for i, label in enumerate(spec.labels)}).to_numpy()
    weighting = bundle.meta.decision.weighting
    weights = None
    if weighting and "prevalence_weight" in table:  # judged as it was fitted: each patient's tissue in its real mix
        from bcc_model.datasets.weights import prevalence_weights

        weights = prevalence_weights(table["prevalence_weight"])
    probs = score(images.astype("float32"))
    metrics = compute_metrics(probs, y, table["group"].tolist(), point, split="external",
                              n_resamples=n_resamples, seed=seed,
                              binary_tasks=None if binary else spec.recipe.extra_binary_tasks or None,
                              weights=weights, weighting=weighting)
    if binary:
        metrics["label_mapping"] = {label: point.labels[0] for label in sorted(set(table["label"]) - {spec.positive_label})}
        if spec.breast_views:  # screening is read per woman: her views pooled by the bundle's own rule
            from bcc_model.analysis.breasts import pooling_rule
            from bcc_model.evaluation.grouped import group_roc_auc

            metrics["patient_level"] = group_roc_auc(probs[:, 1], y, table["group"].astype(str).tolist(),
                                                     pooling_rule(bundle)[0], n_resamples=n_resamples, seed=seed)
    if bundle.conformal is not None and not binary:
        from bcc_model.evaluation.conformal import conformal_report

        metrics["conformal"] = conformal_report(bundle.conformal, probs, y, table["group"].tolist(),
                                                n_resamples=n_resamples, seed=seed)
    metrics["robustness"] = compression_robustness(score, images, y, point)
    if spec.appearance == "mammogram":
        from bcc_model.evaluation.baseline import histogram_baseline

        metrics["histogram_baseline"] = histogram_baseline(data_dir, table, spec.positive_label,
                                                           n_resamples=n_resamples, seed=seed)
    if spec.recipe.lesion_source is not None and not binary:
        from bcc_model.datasets.lesions import model_space_masks
        from bcc_model.evaluation.localisation import explain_and_score

        masks, groups = model_space_masks(table, data_dir, spec), table["group"].tolist()
        metrics["localisation"] = explain_and_score(bundle.model, images, y, masks, groups, spec,
                                                    n_resamples=n_resamples, seed=seed)
        if bundle.lesion_map is not None:
            from bcc_model.evaluation.localisation import lesion_map_localisation

            metrics["lesion_map_localisation"] = lesion_map_localisation(
                bundle.lesion_map, images, y, masks, groups, spec, n_resamples=n_resamples, seed=seed)
    return metrics
