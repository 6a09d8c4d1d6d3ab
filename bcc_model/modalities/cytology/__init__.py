"""Cytology, the tabular path: fine-needle-aspirate cases described by the 30 WDBC nuclear features.

- ``cases.py``: the features, reading cases (CSV, scikit-learn's WDBC) and predicting them.
- ``attributions.py``: integrated gradients per feature.
- ``models.py``: Conv1D, dense and logistic-regression models.
- ``training.py``: nested, case-grouped cross-validation and the bundle (the ``train`` hook).
- ``evaluation.py``: a bundle on a CSV of cases (the ``evaluate_external`` hook).
- ``figures.py``: the attribution chart.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

from bcc_model.registry import ModalitySpec, TrainingRecipe

__all__ = ["SPEC", "CARD_TEMPLATE", "train", "evaluate_external"]

CARD_TEMPLATE = Path(__file__).with_name("card.md.j2")
"""This modality's model-card sections (factors)."""

SPEC = ModalitySpec(
    key="cytology",
    title="Cytology (fine-needle aspirate features, WDBC)",
    kind="tabular",
    labels=("benign", "malignant"),
    positive_label="malignant",
    input_size=30,
    channels=0,
    # Standardisation is a Normalization layer inside the model, adapted on training rows only.
    preprocessing=("standardize",),
    cam_layer="",
    citation=(
        "Wisconsin Diagnostic Breast Cancer (WDBC): W.N. Street, W.H. Wolberg, O.L. Mangasarian, "
        "Proc. SPIE 1905:861-870 (1993), doi:10.1117/12.148698; UCI Machine Learning Repository, "
        "doi:10.24432/C5DW2B; as shipped in scikit-learn (sklearn.datasets.load_breast_cancer)."
    ),
    shipped_files=MappingProxyType({
        "model.keras": "f66ee365ab13cc2b4fb892ea1e8adcb3feabdda874bea70cfcbdd08481263140",
        "model.json": "43347c80ca9a2cdb8edce642fb1873a3a265b826db57a9f39d1ff2cd80df52ca",
        "metrics.json": "c926d68d56f24e168f56a4943f826cc01ac0652858d24249b30047ee133b6877",
    }),
    recipe=TrainingRecipe(
        default_arch="conv1d",
        # The seed system's design; training.TUNING_GRID adds one narrower, more regularised variant
        # and keeps the one with the lower log loss on its early-stopping cases (never the test
        # split). Nested 5 x 5 CV: accuracy 0.963 ± 0.020, ROC AUC 0.993 ± 0.007 (docs/results.md).
        arch_params=MappingProxyType({
            "conv1d": MappingProxyType({"filters": (32, 64), "kernel_size": 3, "dense_units": 64, "dropout": 0.3}),
            "dense": MappingProxyType({"units": (64, 32), "dropout": 0.3}),
        }),
    ),
)


def train(config, spec: ModalitySpec) -> Path:
    """The ``train`` hook: nested cross-validation, then the bundle (``training.train_tabular``); its folder."""
    from bcc_model.modalities.cytology.training import train_tabular

    return train_tabular(config, spec)


def evaluate_external(bundle, data, **options) -> dict:
    """The ``evaluate_external`` hook: every row of a CSV is a test case (``evaluation.evaluate_cases``)."""
    from bcc_model.modalities.cytology.evaluation import evaluate_cases

    return evaluate_cases(bundle, data, **options)


def manifest_probabilities(bundle, data, manifest):
    """The ``manifest_probabilities`` hook: calibrated probabilities (N, K) of every case a bundle's manifest lists.

    ``data`` is the cases' CSV, or anything else for scikit-learn's WDBC (the manifest says which);
    used by ``training.own_sets`` to refit a bundle's conformal sets on its own validation cases.
    """
    from bcc_model.analysis.predictions import calibrated_probabilities
    from bcc_model.modalities.cytology.cases import WDBC_SOURCE, cases_matrix, load_cases

    source = WDBC_SOURCE if str(manifest["file"].iloc[0]).startswith(WDBC_SOURCE) else data
    cases = load_cases(source, bundle.spec.labels)
    if len(cases) != len(manifest):
        raise ValueError(f"the manifest lists {len(manifest)} cases, {source} has {len(cases)}")
    return calibrated_probabilities(bundle, cases_matrix(cases).astype("float32"))
