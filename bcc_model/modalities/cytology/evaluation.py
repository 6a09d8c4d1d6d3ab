"""Evaluating a tabular bundle on a CSV of cases: every row is test data (``registry.Modality`` hook)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["evaluate_cases"]


def evaluate_cases(bundle, csv_path: str | Path, *, n_resamples: int = 1000, seed: int = 0) -> dict:
    """Metrics (metrics.json schema, ``split="external"``) of a tabular ``bundle`` on every row of a CSV.

    Rows are read as in training (:func:`bcc_model.modalities.cytology.cases.load_cases`): any bad row is an error,
    because silently dropped cases would change what the figures describe. Without a ``group``
    column each row is its own group (one case per patient).

    Raises:
        DataError: unreadable file, a bad row, or missing or unknown labels.
    """
    from bcc_model.models.decision import OperatingPoint
    from bcc_model.evaluation.metrics import compute_metrics
    from bcc_model.analysis.predictions import calibrated_probabilities
    from bcc_model.modalities.cytology.cases import cases_matrix, load_cases

    spec = bundle.spec
    cases = load_cases(csv_path, spec.labels)
    probs = calibrated_probabilities(bundle, cases_matrix(cases))
    y = cases["label"].map({label: i for i, label in enumerate(spec.labels)}).to_numpy()
    return compute_metrics(probs, y, cases["group"].tolist(), OperatingPoint.of(bundle), split="external",
                           n_resamples=n_resamples, seed=seed)
