"""Tiny real cytology training runs on WDBC: bundle schema, manifest, determinism, evaluate CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from bcc_model.bundle import BUNDLE_FILES, file_sha256, load_bundle, read_bundle_info
from bcc_model.data import manifest_sha256
from bcc_model.modalities import get_modality
from bcc_model.tabular import FEATURE_NAMES, load_wdbc, predict_cases, row_sha256
from bcc_model.train import main as train_main

from .conftest import ROOT
from .test_train import HEADLINE, METRIC_KEYS, MODEL_KEYS

TINY_ARGS = ["--modality", "cytology", "--epochs", "2", "--bootstrap", "50", "--verbose", "0"]


def _run_cli(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=600, env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"})


@pytest.fixture(scope="module")
def cytology_spec():
    return get_modality("cytology")


@pytest.fixture(scope="module")
def tiny_cytology(tmp_path_factory):
    """A real bundle from the command line: 2 epochs per network, every CV fold, WDBC from scikit-learn."""
    root = tmp_path_factory.mktemp("cytology")
    result = _run_cli("bcc_model.train", *TINY_ARGS, "--out", str(root / "bundle"), "--work-dir", str(root / "runs"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Cross-validation (5 folds" in result.stdout
    return root / "bundle"


def test_tiny_run_writes_a_schema_valid_tabular_bundle(tiny_cytology, cytology_spec):
    assert all((tiny_cytology / name).is_file() for name in BUNDLE_FILES)
    info, metrics = read_bundle_info(tiny_cytology)
    assert MODEL_KEYS <= set(info) and METRIC_KEYS <= set(metrics) and HEADLINE <= set(metrics["headline"])
    assert info["modality"] == "cytology" and info["name"] == "conv1d-30features-cytology"
    assert info["input_shape"] == [30] and info["mpp"] is None and "image_size" not in info["training"]
    assert info["feature_names"] == list(FEATURE_NAMES) and list(info["feature_ranges"]) == list(FEATURE_NAMES)
    assert info["architecture"]["name"] == "conv1d" and info["data"]["source"] == "sklearn:wdbc"
    assert info["model_sha256"] == file_sha256(tiny_cytology / "model.keras")
    low, high = info["decision"]["indeterminate_band"]
    assert 0 <= low <= info["decision"]["threshold"] <= high <= 1

    cv = info["cross_validation"]
    assert [m["name"] for m in cv["models"]] == ["conv1d", "dense", "logistic_regression"]
    assert cv["n_splits"] == 5 and cv["n_cases"] == 455
    for model in cv["models"]:
        for key in ("accuracy", "roc_auc"):
            assert len(model[key]["folds"]) == 5 and 0 <= model[key]["mean"] <= 1 and model[key]["sd"] >= 0
            assert model[key]["mean"] == pytest.approx(np.mean(model[key]["folds"]))
    assert [m["bundled"] for m in cv["models"]] == [True, False, False]

    history = pd.read_csv(tiny_cytology / "history.csv")
    assert list(history["epoch"]) == [1, 2]
    card = (tiny_cytology / "MODEL_CARD.md").read_text()
    assert "## Cross-validation comparison" in card and "| logistic_regression |" in card
    assert "Whole-slide" not in card and "IDC" not in card and "Research use only" in card


def test_manifest_hashes_every_case_with_its_split(tiny_cytology):
    info, metrics = read_bundle_info(tiny_cytology)
    manifest = pd.read_csv(tiny_cytology / "manifest.csv", dtype=str, keep_default_na=False)
    assert list(manifest.columns) == ["file", "label", "group", "split", "sha256"]
    wdbc = load_wdbc()
    assert list(manifest["file"]) == [f"sklearn:wdbc#{i}" for i in range(569)]
    assert list(manifest["label"]) == list(wdbc["label"]) and list(manifest["group"]) == list(wdbc["group"])
    values = wdbc[list(FEATURE_NAMES)].to_numpy()
    assert list(manifest["sha256"]) == [row_sha256(v, label) for v, label in zip(values, wdbc["label"])]
    assert info["data"]["manifest_sha256"] == manifest_sha256(manifest)
    counts = manifest["split"].value_counts().to_dict()
    assert counts == {"train": 341, "validation": 114, "test": 114}
    for split, part in manifest.groupby("split"):  # stratified: the malignant share of WDBC (37%) everywhere
        assert abs((part["label"] == "malignant").mean() - 212 / 569) < 0.02, split
    assert metrics["n_images"] == 114
    assert set(metrics["per_group"]) == set(manifest.loc[manifest["split"] == "test", "group"])


def test_bundle_loads_and_predicts_raw_feature_rows(tiny_cytology, cytology_spec):
    bundle = load_bundle(cytology_spec, tiny_cytology)
    predictions = predict_cases(bundle, load_wdbc().iloc[:5])
    assert len(predictions) == 5
    for p in predictions:
        assert set(p.probabilities) == {"benign", "malignant"}
        assert sum(p.probabilities.values()) == pytest.approx(1, abs=1e-5)


def test_evaluate_cli_on_a_csv(tiny_cytology, tmp_path):
    manifest = pd.read_csv(tiny_cytology / "manifest.csv")
    test_rows = load_wdbc()[(manifest["split"] == "test").to_numpy()]
    csv_path = tmp_path / "test.csv"
    test_rows.to_csv(csv_path, index=False)
    out = tmp_path / "metrics.json"
    result = _run_cli("bcc_model.evaluate", "--modality", "cytology", "--data", str(csv_path), "--weights",
                      str(tiny_cytology), "--json", str(out), "--bootstrap", "50")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads(out.read_text())
    assert metrics["split"] == "external" and metrics["n_images"] == 114 and metrics["n_groups"] == 114
    stored = json.loads((tiny_cytology / "metrics.json").read_text())
    assert metrics["confusion_matrix"] == stored["confusion_matrix"]  # same cases, same decision rule

    test_rows.assign(**{"mean radius": "wide"}).iloc[:2].to_csv(csv_path, index=False)
    result = _run_cli("bcc_model.evaluate", "--modality", "cytology", "--data", str(csv_path), "--weights",
                      str(tiny_cytology))
    assert result.returncode == 2 and "'wide' is not a number for 'mean radius'" in result.stderr


def test_identical_runs_give_identical_weights(tiny_cytology, tmp_path):
    import keras

    out = tmp_path / "again"
    assert train_main([*TINY_ARGS, "--out", str(out), "--work-dir", str(tmp_path / "runs")]) == 0
    first = keras.models.load_model(tiny_cytology / "model.keras", compile=False).get_weights()
    second = keras.models.load_model(out / "model.keras", compile=False).get_weights()
    assert len(first) == len(second)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    info_a, _ = read_bundle_info(tiny_cytology)
    info_b, _ = read_bundle_info(out)
    assert info_a["cross_validation"]["models"] == info_b["cross_validation"]["models"]
    assert info_a["data"]["manifest_sha256"] == info_b["data"]["manifest_sha256"]


def test_bad_arguments_and_data_leave_the_bundle_untouched(tiny_cytology, tmp_path):
    target = tmp_path / "weights"
    shutil.copytree(tiny_cytology, target)
    before = {name: file_sha256(target / name) for name in BUNDLE_FILES}
    bad = tmp_path / "bad.csv"
    bad.write_text("mean radius,label\n1,benign\n")
    for extra in (["--image-size", "64"], ["--arch", "se_resnet"], ["--data", str(bad)],
                  ["--data", str(tmp_path / "missing.csv")]):
        assert train_main([*TINY_ARGS, "--out", str(target), *extra]) == 2, extra
    assert {name: file_sha256(target / name) for name in BUNDLE_FILES} == before
