"""Prevalence and patient weights: the H&E data's under-sampled negatives count as the tissue had them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bcc_model.datasets.folders import discover
from bcc_model.datasets.weights import case_weights, prevalence_weights
from bcc_model.registry import get_modality
from bcc_model.training.tfdata import patient_weights
from tests.conftest import ROOT

SHARED_DATA = ROOT.parent / "shared" / "data"


def test_every_patient_weighs_the_same_and_prevalence_spreads_it_within():
    groups = np.array(["a", "a", "a", "b"])
    w = case_weights(groups, [1.0, 1.0, 2.0, 1.0])
    assert w.mean() == pytest.approx(1.0)
    assert w[:3].sum() == pytest.approx(w[3])  # patient a (3 patches) weighs what patient b (1 patch) does
    assert w[2] == pytest.approx(2 * w[0])  # within a, the under-sampled patch counts twice


def test_prevalence_weights_keep_ratios_and_refuse_nonsense():
    assert prevalence_weights(None) is None
    w = prevalence_weights([1.0, 3.0])
    assert w.tolist() == pytest.approx([0.5, 1.5])
    with pytest.raises(ValueError):
        prevalence_weights([1.0, 0.0])
    with pytest.raises(ValueError):
        case_weights(["a", "b"], [1.0])


def test_loss_weights_balance_the_classes_after_the_patients():
    y = np.array([0, 0, 1, 1, 1])
    w = patient_weights(y, ["a", "a", "a", "b", "b"], 2, [3.0, 3.0, 1.0, 1.0, 1.0])
    assert w.mean() == pytest.approx(1.0)
    assert w[y == 0].sum() == pytest.approx(w[y == 1].sum())
    assert w[0] == pytest.approx(w[1])


@pytest.mark.skipif(not (SHARED_DATA / "histopathology" / "labels.csv").is_file(), reason="needs ../shared/data")
def test_the_h_and_e_recipe_weights_exactly_the_under_sampled_negatives():
    table = discover(SHARED_DATA / "histopathology", get_modality("histopathology"))
    labels = pd.read_csv(SHARED_DATA / "histopathology" / "labels.csv", dtype=str).set_index("file")
    coverage = labels.loc[table["file"], "coverage"].to_numpy()
    heavy = table["prevalence_weight"].to_numpy() > 1
    assert np.array_equal(heavy, (coverage == "all-idc") & (table["label"] == "benign").to_numpy())
    assert table.loc[heavy, "prevalence_weight"].unique() == pytest.approx([1 / 0.271])
    assert "prevalence_weight" not in discover(SHARED_DATA / "ultrasound", get_modality("ultrasound")).columns
