"""A tiny real run of the whole-image pipeline for a 3-class greyscale modality (ultrasound) on the samples.

The six sample ultrasound images are too few to split into train/validation/test, so each is
copied under five pseudo-patients (30 real images, 15 groups, masks alongside). The run checks
plumbing, not accuracy: patch pre-training, whole-image training with the lesion-map head, the
``binary_tasks`` and ``localisation`` blocks, the model card sections and the evaluate CLI.
(Mammography trains the lesion-first cell model instead: ``test_train_mil.py``.)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from bcc_model.models.bundle import BUNDLE_FILES, BundleError, file_sha256, load_bundle, read_bundle_info
from bcc_model.models.lesion_head import LESION_MAP_FILE, lesion_maps
from bcc_model.registry import get_modality
from bcc_model.cli.evaluate import main as evaluate_main
from bcc_model.imaging.preprocess import to_model_batch
from bcc_model.cli.train import main as train_main

from tests.conftest import ROOT, replicate_folder
from tests.support.cli import run_main

SAMPLES = ROOT / "samples" / "ultrasound"
REPLICAS = 5
TINY_GREY_ARGS = ["--modality", "ultrasound", "--arch", "se_resnet", "--epochs", "1", "--patch-epochs", "1",
                  "--image-size", "64", "--batch-size", "8", "--bootstrap", "20", "--verbose", "0",
                  "--lesion-weight", "1"]


@pytest.fixture(scope="module")
def replicated(tmp_path_factory) -> Path:
    return replicate_folder(SAMPLES, tmp_path_factory.mktemp("us_data"), REPLICAS)


@pytest.fixture(scope="module")
def grey_bundle(replicated, tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("us_run")
    assert train_main(["--data", str(replicated), "--out", str(work / "bundle"), "--work-dir", str(work / "runs"),
                       *TINY_GREY_ARGS]) == 0
    return work / "bundle"


def test_tiny_grey_run_writes_localisation_and_binary_tasks(grey_bundle):
    assert all((grey_bundle / name).is_file() for name in BUNDLE_FILES)
    info, metrics = read_bundle_info(grey_bundle)
    info = info.to_json()
    assert info["labels"] == ["normal", "benign", "malignant"] and info["input_shape"] == [64, 64, 1]
    assert info["mpp"] is None, "BUSI has no recorded pixel spacing"
    assert info["pretraining"]["patch_size"] == round(0.5 * 64) and info["pretraining"]["epochs_max"] == 1
    assert set(info["pretraining"]["patches_per_class"]) == {"normal", "benign", "malignant"}

    task = metrics["binary_tasks"]["abnormal_vs_normal"]
    assert task["positive_labels"] == ["benign", "malignant"] and set(task["roc_auc"]) == {"value", "ci95"}
    local = metrics["localisation"]
    n_lesion_images = sum(metrics["per_class"][label]["support"] for label in ("benign", "malignant"))
    assert local["pointing_game"]["n"] + local["n_excluded"] == n_lesion_images
    assert local["n_excluded"] == 0, "every sample lesion has a mask"
    assert 0 <= local["energy_inside"]["value"] <= 1, "outlines give an energy score"
    assert local["pointing_game"]["value"] is None or 0 <= local["pointing_game"]["value"] <= 1

    lesion = info["lesion_supervision"]
    assert lesion["loss_weight"] == 1.0 and sum(lesion["images_with_geometry"].values()) > 0
    history = pd.read_csv(grey_bundle / "history.csv")
    assert {"loss", "val_loss", "lesion_loss", "val_lesion_loss"} <= set(history.columns)
    assert "total_loss" not in history.columns, "history.csv keeps the documented columns"

    card = (grey_bundle / "MODEL_CARD.md").read_text()
    assert "## Localisation" in card and "## Additional binary tasks" in card and "Pre-training" in card
    assert "Lesion supervision" in card
    assert "Stain" not in card and "Whole-slide" not in card


def test_tiny_grey_bundle_loads_and_predicts(grey_bundle):
    from bcc_model.imaging.io import read_image
    from bcc_model.analysis.predictions import predict_images

    bundle = load_bundle(get_modality("ultrasound"), grey_bundle, allow_unverified=True)
    assert bundle.spec.input_size == 64
    images = [read_image(SAMPLES / file).pixels for file in pd.read_csv(SAMPLES / "labels.csv")["file"]]
    results = predict_images(bundle, images)
    assert len(results) == 6
    for result in results:
        assert sum(result.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
        assert result.label in bundle.labels
    maps = lesion_maps(bundle.lesion_map, to_model_batch(images, bundle.spec))
    assert maps.shape == (6, 64, 64) and 0 <= maps.min() and maps.max() <= 1


def test_lesion_map_ships_with_its_checksum_and_scores(grey_bundle, tmp_path):
    info, metrics = read_bundle_info(grey_bundle)
    info = info.to_json()
    assert info["lesion_supervision"]["map_file"] == LESION_MAP_FILE
    assert info["lesion_supervision"]["map_sha256"] == file_sha256(grey_bundle / LESION_MAP_FILE)
    block = metrics["lesion_map_localisation"]
    assert block["method"] == "lesion map" and block["pointing_game"]["n"] == metrics["localisation"]["pointing_game"]["n"]
    assert "Pointing game (lesion map)" in (grey_bundle / "MODEL_CARD.md").read_text()
    copy = tmp_path / "bundle"
    shutil.copytree(grey_bundle, copy)
    (copy / LESION_MAP_FILE).write_bytes((copy / LESION_MAP_FILE).read_bytes()[:-10])
    with pytest.raises(BundleError, match="lesion_map.keras.*sha256"):
        load_bundle(get_modality("ultrasound"), copy, allow_unverified=True)


def test_evaluate_cli_scores_localisation_from_the_lesion_table(grey_bundle, tmp_path):
    out = tmp_path / "metrics.json"
    result = run_main(evaluate_main, "--modality", "ultrasound", "--data", SAMPLES, "--allow-unverified", "--weights", grey_bundle,
                      "--json", out, "--bootstrap", "20")
    assert result.returncode == 0, result.stderr
    assert "abnormal_vs_normal" in result.stdout and "pointing_game" in result.stdout
    metrics = json.loads(out.read_text())
    assert metrics["n_images"] == 6 and metrics["n_groups"] == pd.read_csv(SAMPLES / "labels.csv")["group"].nunique()
    assert metrics["localisation"]["pointing_game"]["n"] == 4 and metrics["localisation"]["n_excluded"] == 0
    assert metrics["lesion_map_localisation"]["pointing_game"]["n"] == 4 and "lesion map" in result.stdout
