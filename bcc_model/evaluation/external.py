"""Evaluate a bundle on any folder of labelled images: every image is treated as test data.

This is how anyone checks a shipped model on patients it has never seen. Probabilities are
calibrated and decided exactly as in the app (the bundle's temperature, threshold and band),
and confidence intervals resample whole groups (patients) from ``labels.csv``.

Tabular modalities read a CSV instead of a folder: every row (30 feature columns, ``label``,
optional ``group``) is a test case. The command line is ``bcc_model/evaluate.py``.
"""

from __future__ import annotations

from pathlib import Path


__all__ = ["evaluate_folder", "evaluate_cases"]


def evaluate_folder(bundle, data_dir: str | Path, *, n_resamples: int = 1000, seed: int = 0) -> dict:
    """Metrics (metrics.json schema, ``split="external"``) of ``bundle`` on every image of ``data_dir``.

    Modalities with extra binary tasks report them; those with lesion geometry also report
    localisation scores on the images whose geometry the folder provides (``datasets/lesions.py``), for
    Grad-CAM and, when the bundle ships one, the lesion map.
    """
    from bcc_model.datasets.folders import discover, load_images
    from bcc_model.evaluation.calibration import OperatingPoint
    from bcc_model.evaluation.metrics import compute_metrics
    from bcc_model.evaluation.robustness import compression_robustness
    from bcc_model.analysis.predictions import calibrated_probabilities

    spec = bundle.spec
    table = discover(data_dir, spec)
    images = load_images(table, data_dir, spec)
    probs = calibrated_probabilities(bundle, images.astype("float32"))
    y = table["label"].map({label: i for i, label in enumerate(spec.labels)}).to_numpy()
    metrics = compute_metrics(probs, y, table["group"].tolist(), OperatingPoint.of(bundle), split="external",
                              n_resamples=n_resamples, seed=seed,
                              binary_tasks=spec.extra_binary_tasks or None)
    metrics["robustness"] = compression_robustness(lambda batch: calibrated_probabilities(bundle, batch), images, y,
                                                   OperatingPoint.of(bundle))
    if spec.lesion_source is not None:
        from bcc_model.datasets.lesions import model_space_masks
        from bcc_model.evaluation.localisation import explain_and_score

        masks, groups = model_space_masks(table, data_dir, spec), table["group"].tolist()
        metrics["localisation"] = explain_and_score(bundle.model, images, y, masks, groups, spec,
                                                    n_resamples=n_resamples, seed=seed)
        if bundle.lesion_map is not None:
            from bcc_model.models.lesion_head import lesion_map_localisation

            metrics["lesion_map_localisation"] = lesion_map_localisation(
                bundle.lesion_map, images, y, masks, groups, spec, n_resamples=n_resamples, seed=seed)
    return metrics


def evaluate_cases(bundle, csv_path: str | Path, *, n_resamples: int = 1000, seed: int = 0) -> dict:
    """Metrics (metrics.json schema, ``split="external"``) of a tabular ``bundle`` on every row of a CSV.

    Rows are read as in training (:func:`bcc_model.cytology.cases.load_cases`): any bad row is an error,
    because silently dropped cases would change what the figures describe. Without a ``group``
    column each row is its own group (one case per patient).

    Raises:
        DataError: unreadable file, a bad row, or missing or unknown labels.
    """
    from bcc_model.evaluation.calibration import OperatingPoint
    from bcc_model.evaluation.metrics import compute_metrics
    from bcc_model.analysis.predictions import calibrated_probabilities
    from bcc_model.cytology.cases import cases_matrix, load_cases

    spec = bundle.spec
    cases = load_cases(csv_path, spec.labels)
    probs = calibrated_probabilities(bundle, cases_matrix(cases))
    y = cases["label"].map({label: i for i, label in enumerate(spec.labels)}).to_numpy()
    return compute_metrics(probs, y, cases["group"].tolist(), OperatingPoint.of(bundle), split="external",
                           n_resamples=n_resamples, seed=seed)
