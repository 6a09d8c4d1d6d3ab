"""Tiny real training runs on the sample patches: bundle schema, determinism, safety, CLIs."""

from __future__ import annotations

import json
import shutil
import zipfile
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from bcc_model.analysis.context import CONTEXT_CANDIDATES, NO_CONTEXT, bundle_context
from bcc_model.models.bundle import BUNDLE_FILES, BundleError, file_sha256, load_bundle, read_bundle_info
from bcc_model.cli.train import main as train_main
from bcc_model.cli.predict import main as predict_main
from bcc_model.registry import get_modality

from tests.conftest import ROOT, SAMPLES, TINY_TRAIN_ARGS, lay_out_slide
from tests.support.cli import run_main

MODEL_KEYS = {"format_version", "modality", "name", "labels", "positive_label", "input_shape", "mpp", "magnification",
              "preprocessing", "augmentation", "architecture", "training", "data", "calibration", "decision",
              "comparison", "versions", "model_sha256", "created"}
METRIC_KEYS = {"split", "n_images", "n_groups", "labels", "positive_label", "threshold", "indeterminate_band",
               "temperature", "headline", "per_class", "confusion_matrix", "roc_curves", "pr_curves", "calibration",
               "indeterminate", "per_group", "bootstrap"}
HEADLINE = {"accuracy", "balanced_accuracy", "roc_auc", "sensitivity", "specificity", "f1", "ece", "brier"}


def test_tiny_run_writes_a_complete_bundle(tiny_bundle, histo_spec):
    assert all((tiny_bundle / name).is_file() for name in BUNDLE_FILES)
    info, metrics = read_bundle_info(tiny_bundle)
    info = info.to_json()
    assert MODEL_KEYS <= set(info)
    assert METRIC_KEYS <= set(metrics)
    assert HEADLINE <= set(metrics["headline"])
    for entry in metrics["headline"].values():
        assert set(entry) == {"value", "ci95"}
    assert info["model_sha256"] == file_sha256(tiny_bundle / "model.keras")
    runtime = info["runtime"]  # the ONNX copy is written with the bundle and pinned like model.keras
    assert runtime["engine"] == "onnxruntime" and runtime["sha256"] == file_sha256(tiny_bundle / runtime["file"])
    assert runtime["parity_max_abs_difference"] <= 1e-4 and load_bundle(histo_spec, tiny_bundle, allow_unverified=True).fast is not None
    assert info["labels"] == list(histo_spec.labels) and info["architecture"]["cam_layer"] == "last_conv"
    assert info["calibration"]["fitted_on"] == "validation" and info["decision"]["chosen_on"] == "validation"
    low, high = info["decision"]["indeterminate_band"]
    assert 0 <= low <= info["decision"]["threshold"] <= high <= 1

    manifest = pd.read_csv(tiny_bundle / "manifest.csv", dtype=str)
    assert list(manifest.columns) == ["file", "label", "group", "split", "sha256"]
    assert len(manifest) == 20 and (manifest.groupby("group")["split"].nunique() == 1).all()
    splits = info["data"]["splits"]
    assert sum(s["images"] for s in splits.values()) == 20
    assert metrics["n_images"] == splits["test"]["images"] and metrics["n_groups"] == splits["test"]["groups"]
    test_groups = set(manifest.loc[manifest["split"] == "test", "group"])
    assert set(metrics["per_group"]) == test_groups

    history = pd.read_csv(tiny_bundle / "history.csv")
    assert list(history["epoch"]) == [1, 2]
    assert {"loss", "accuracy", "auc", "val_loss", "val_accuracy", "val_auc", "learning_rate"} <= set(history.columns)
    assert (history["epoch_seconds"] > 0).all()
    assert info["training"]["training_seconds"]["se_resnet"] == pytest.approx(history["epoch_seconds"].sum(), abs=0.1)
    assert info["training"]["resumed"] is False
    card = (tiny_bundle / "MODEL_CARD.md").read_text()
    assert "Research use only" in card and info["model_sha256"][:12] in card
    assert "--epochs 2" in info["training"]["command"]
    robustness = metrics["robustness"]  # the test split re-encoded as JPEG / WebP, and in the card
    assert set(robustness["codecs"]) == {"JPEG quality 90", "JPEG quality 50", "WebP quality 75"}
    assert robustness["n_images"] == metrics["n_images"] and "## Robustness to re-encoding" in card
    assert "jpeg" in info["augmentation"], "training includes lossy re-encoding"
    assert info["training"]["loss"].startswith("patient- and class-weighted"), "H&E patients count equally"


def test_the_same_seed_and_data_give_the_same_split_weights_and_version(tiny_bundle, histo_spec, tmp_path):
    """Determinism without a second bundle: the manifest is rebuilt from the data, and the fit loop every
    image bundle uses (``train_one``, augmentation and patient weighting on) runs twice on the sample
    patches with a small SE-ResNet. Identical weights must give an identical ``model.keras``, hence version."""

    from bcc_model.datasets.folders import discover, load_images
    from bcc_model.datasets.manifest import add_hashes, manifest_sha256
    from bcc_model.datasets.splits import split_by_group
    from bcc_model.models.bundle import save_model
    from bcc_model.training.config import TrainConfig
    from bcc_model.training.fit import configure_determinism, train_one

    manifest = add_hashes(split_by_group(discover(SAMPLES, histo_spec), seed=42), SAMPLES)
    assert manifest_sha256(manifest) == json.loads((tiny_bundle / "model.json").read_text())["data"]["manifest_sha256"]
    spec = histo_spec.with_recipe(arch_params={"se_resnet": {"widths": (16, 32), "blocks_per_stage": (1, 1), "se_ratio": 4}})
    x, y = load_images(manifest, SAMPLES, spec), manifest["label"].map(spec.labels.index).to_numpy()
    arrays = {"train": (x, y), "validation": (x[:8], y[:8]), "train_groups": manifest["group"].to_numpy()}
    config = TrainConfig(epochs=1, batch_size=8, patience=5, patient_weighting=True, verbose=0)
    weights, versions = [], []
    for run in ("first", "second"):
        configure_determinism(config.seed)
        model, history = train_one("se_resnet", spec, arrays, config, tmp_path / run)
        save_model(model, tmp_path / f"{run}.keras")
        weights.append(model.get_weights())
        versions.append(file_sha256(tmp_path / f"{run}.keras"))
    assert len(history) == 1 and np.isfinite(history["loss"]).all()
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)
    assert versions[0] == versions[1], "same weights, same version"


def test_tampered_weights_are_refused(tiny_bundle, histo_spec, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, copy)
    with open(copy / "model.keras", "r+b") as handle:
        handle.seek(100)
        byte = handle.read(1)
        handle.seek(100)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(BundleError, match="sha256"):
        load_bundle(histo_spec, copy, allow_unverified=True)


def test_incomplete_bundle_is_refused(tiny_bundle, histo_spec, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, copy)
    (copy / "metrics.json").unlink()
    with pytest.raises(BundleError, match="metrics.json"):
        load_bundle(histo_spec, copy, allow_unverified=True)


def test_failed_run_leaves_existing_bundle_untouched(tiny_bundle, tmp_path):
    target = tmp_path / "weights"
    shutil.copytree(tiny_bundle, target)
    before = {name: file_sha256(target / name) for name in BUNDLE_FILES}
    empty = tmp_path / "data"
    (empty / "benign").mkdir(parents=True)
    (empty / "labels.csv").write_text("file,label,group\n")
    assert train_main(["--data", str(empty), "--out", str(target), *TINY_TRAIN_ARGS]) == 2
    assert train_main(["--data", str(tmp_path / "missing"), "--out", str(target), *TINY_TRAIN_ARGS]) == 2
    assert {name: file_sha256(target / name) for name in BUNDLE_FILES} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".weights.staging")]


def _run_cli(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300, env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"})


@pytest.mark.e2e
def test_evaluate_cli_on_samples(tiny_bundle, tmp_path):
    out = tmp_path / "metrics.json"
    result = _run_cli("bcc_model.evaluate", "--modality", "histopathology", "--data", str(SAMPLES),
                      "--allow-unverified", "--weights", str(tiny_bundle), "--json", str(out), "--bootstrap", "50")
    assert result.returncode == 0, result.stderr
    assert "balanced_accuracy" in result.stdout and "20 images" in result.stdout
    metrics = json.loads(out.read_text())
    assert metrics["split"] == "external" and metrics["n_images"] == 20 and metrics["n_groups"] == 5
    assert sum(map(sum, metrics["confusion_matrix"]["matrix"])) == 20
    conformal = metrics["conformal"]  # the bundle's 90 % sets, checked per class on these patients
    assert conformal["level"] == 0.9 and set(conformal["coverage_by_class"]) == {"benign", "malignant"}
    for entry in (*conformal["coverage_by_class"].values(), conformal["mean_set_size"], conformal["singleton_rate"]):
        assert entry["value"] is not None and len(entry["ci95"]) == 2 and entry["n"] <= 5  # patients, not images
    assert metrics["indeterminate"]["rule"].startswith("conformal set at 90 %")


def test_predict_cli_reports_each_file_and_bad_ones(tiny_bundle, sample_files, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("this is not an image")
    result = run_main(predict_main, "--allow-unverified", "--weights", tiny_bundle, sample_files[0], bad, sample_files[-1])
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2 and all("no IDC=" in line and " IDC=" in line for line in lines)  # display names
    assert "not an image" in result.stderr


@pytest.mark.e2e
def test_train_help_documents_every_option():
    result = _run_cli("bcc_model.train", "--help")
    assert result.returncode == 0
    for option in ("--modality", "--data", "--arch", "--epochs", "--batch-size", "--image-size", "--lr", "--seed",
                   "--out", "--resume", "Research use only"):
        assert option in result.stdout, option


def test_an_unknown_cross_validation_recipe_is_refused_before_any_data_is_read(tmp_path, capsys):
    args = ["--data", str(tmp_path / "nowhere"), "--cv-folds", "2", "--candidates", "se_resnet", "no_such_recipe"]
    assert train_main(args) == 2
    assert "no_such_recipe" in capsys.readouterr().err


@pytest.mark.e2e
def test_patient_grouped_cross_validation_chooses_calibrates_and_validates_on_a_whole_slide(tmp_path, histo_spec,
                                                                                           sample_files):
    """--cv-folds: the candidate is scored on patient folds it never saw; the chosen one is then trained and
    bundled with the operating point of its out-of-fold predictions, compared with its fold ensemble
    (the teacher), and region mode is scored on the complete slide, which the registry keeps in the test split.

    One candidate keeps the suite fast; choosing among several is ``max`` over the same records.
    """
    data = tmp_path / "data"
    shutil.copytree(SAMPLES, data)
    listing = pd.read_csv(SAMPLES / "labels.csv", dtype=str).assign(coverage="sparse")
    pd.concat([listing, pd.DataFrame(lay_out_slide(data, sample_files))]).to_csv(data / "labels.csv", index=False)
    out = tmp_path / "bundle"
    args = ["--data", str(data), "--out", str(out), "--work-dir", str(tmp_path / "runs"), "--arch", "se_resnet",
            "--epochs", "1", "--batch-size", "8", "--bootstrap", "20", "--verbose", "0", "--cv-folds", "2"]
    assert train_main(args) == 0
    info, metrics = read_bundle_info(out)
    cv = info.extras["cross_validation"]
    assert cv["n_splits"] == 2 and [m["name"] for m in cv["models"]] == ["se_resnet"]
    manifest = pd.read_csv(out / "manifest.csv", dtype=str)
    assert set(manifest.loc[manifest["group"] == "777", "split"]) == {"test"}
    outside_test = manifest.loc[manifest["split"] != "test", "group"].nunique()
    assert cv["n_patients"] == outside_test, "the test patients take no part in the choice"
    for model in cv["models"]:
        assert len(model["accuracy"]["values"]) == 2 and model["per_patient"]["n_patients"] == outside_test
    assert [m["name"] for m in cv["models"] if m["bundled"]] == [cv["chosen"]] == [info.architecture.name]
    assert [entry["architecture"] for entry in info.comparison] == [cv["chosen"]]
    assert info.calibration.fitted_on.startswith("out-of-fold")
    # The sets (and the band they imply) come from the shipped network's own validation patients, not the folds'.
    assert info.decision.chosen_on.startswith(info.calibration.fitted_on) and "validation patients of this network" \
        in info.decision.chosen_on and "validation patients of this network" in info.extras["conformal"]["fitted_on"]
    assert info.decision.rule and "conformal" in metrics
    assert tuple(info.decision.indeterminate_band) == load_bundle(get_modality("histopathology"), out,
                                                                  allow_unverified=True).band_at(0.9)
    teacher = info.extras["teacher"]
    assert teacher["teacher"]["n_models"] == 2 and teacher["student"]["n_models"] == 1
    assert teacher["teacher"]["n_parameters"] == 2 * teacher["student"]["n_parameters"]
    assert all(teacher[role]["ms_per_patch"] > 0 for role in ("teacher", "student"))
    slides = metrics["slides"]
    assert [row["patient"] for row in slides["slides"]] == ["777"] and slides["summary"]["n_slides"] == 1
    row = slides["slides"][0]
    assert row["n_scored"] + row["n_skipped"] == 16
    assert (out / row["picture"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert row["context"] == NO_CONTEXT.to_json(), "one slide: no other slide to choose its context on"
    amended = load_bundle(histo_spec, out, allow_unverified=True)  # the amended bundle is still whole and loads
    assert amended.meta.extras["region_context"] == slides["summary"]["context"]
    assert bundle_context(amended.meta.extras) in CONTEXT_CANDIDATES
    card = (out / "MODEL_CARD.md").read_text()
    assert "## Cross-validation comparison" in card and "Per-patient accuracy (out of fold)" in card
    assert "## Whole slides (region mode)" in card and f"]({row['picture']})" in card
    assert "## Teacher and student" in card and "Calibration on the test patients" in card


def test_a_saved_model_names_shared_objects_by_order_not_by_memory_address(tmp_path):
    """Keras writes an object shared by two layers with its ``id()``; two equal models must still save to
    the same bytes (the cytology network shares one, so its version hash changed from run to run)."""
    import keras

    from bcc_model.models.bundle import save_model

    versions, keep = [], []
    for run in range(2):
        keras.utils.set_random_seed(0)
        keep.append([object() for _ in range(100 * (run + 1))])  # the next objects get other addresses
        shared = keras.regularizers.L2(1e-4)
        inputs = keras.Input((4,), name="x")
        hidden = keras.layers.Dense(3, kernel_regularizer=shared, name="hidden")(inputs)
        model = keras.Model(inputs, keras.layers.Dense(2, kernel_regularizer=shared, name="out")(hidden), name="m")
        save_model(model, tmp_path / f"{run}.keras")
        versions.append(file_sha256(tmp_path / f"{run}.keras"))
        with zipfile.ZipFile(tmp_path / f"{run}.keras") as archive:
            assert b'"shared_object_id": 0' in archive.read("config.json")
    assert versions[0] == versions[1]
    loaded = keras.models.load_model(tmp_path / "0.keras", compile=False)
    assert loaded.get_layer("out").kernel_regularizer.l2 == pytest.approx(1e-4), "the renumbered file still loads"
