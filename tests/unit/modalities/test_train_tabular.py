"""Tiny real cytology training runs on WDBC: bundle schema, manifest, determinism, evaluate CLI;
and the repeated, nested cross-validation on its own (folds, and where hyperparameters are chosen)."""

from __future__ import annotations

import contextlib
import functools
import io
import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from bcc_model.modalities.cytology import training as train_tabular
from bcc_model.models.bundle import BUNDLE_FILES, file_sha256, load_bundle, read_bundle_info
from bcc_model.datasets.manifest import manifest_sha256
from bcc_model.registry import get_modality
from bcc_model.modalities.cytology.cases import FEATURE_NAMES, load_wdbc, predict_cases, row_sha256
from bcc_model.modalities.cytology.models import LOGISTIC_C_GRID, build_logistic_regression
from bcc_model.cli.train import main as train_main
from bcc_model.cli.evaluate import main as evaluate_main
from bcc_model.cli.train import config_from_argv
from bcc_model.modalities.cytology.training import CVPlan, candidate_params, cross_validate, repeated_folds

from tests.conftest import ROOT
from tests.support.cli import run_main
from tests.unit.training.test_train import HEADLINE, METRIC_KEYS, MODEL_KEYS

TINY_ARGS = ["--modality", "cytology", "--epochs", "2", "--bootstrap", "50", "--verbose", "0"]
TINY_PLAN = CVPlan(folds=2, repeats=2)
"""The shipped plan (5 x 5) trains 75 networks; the tiny runs check the same code with 18."""


def _as_json(value):
    """``value`` as model.json stores it (tuples become lists)."""
    return json.loads(json.dumps(value))


def _run_cli(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=600, env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"})


@pytest.fixture(scope="module")
def cytology_spec():
    return get_modality("cytology")


@pytest.fixture(scope="module")
def tiny_plan():
    """``python -m bcc_model.train`` in-process, with :data:`TINY_PLAN` instead of the shipped plan."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train_tabular, "train_tabular", functools.partial(train_tabular.train_tabular, plan=TINY_PLAN))
        yield


@pytest.fixture(scope="module")
def tiny_cytology(tmp_path_factory, tiny_plan):
    """A real bundle from the command line: 2 epochs per network, every CV fit, WDBC from scikit-learn."""
    root = tmp_path_factory.mktemp("cytology")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert train_main([*TINY_ARGS, "--out", str(root / "bundle"), "--work-dir", str(root / "runs")]) == 0
    assert "Cross-validation (2 folds x 2 repeats = 4 fits, 455 cases" in stdout.getvalue()
    return root / "bundle"


def test_tiny_run_writes_a_schema_valid_tabular_bundle(tiny_cytology, cytology_spec):
    assert all((tiny_cytology / name).is_file() for name in BUNDLE_FILES)
    info, metrics = read_bundle_info(tiny_cytology)
    info = info.to_json()
    assert MODEL_KEYS <= set(info) and METRIC_KEYS <= set(metrics) and HEADLINE <= set(metrics["headline"])
    assert info["modality"] == "cytology" and info["name"] == "conv1d-30features-cytology"
    assert info["input_shape"] == [30] and info["mpp"] is None and "image_size" not in info["training"]
    assert info["feature_names"] == list(FEATURE_NAMES) and list(info["feature_ranges"]) == list(FEATURE_NAMES)
    assert info["architecture"]["name"] == "conv1d" and info["data"]["source"] == "sklearn:wdbc"
    assert info["model_sha256"] == file_sha256(tiny_cytology / "model.keras")
    low, high = info["decision"]["indeterminate_band"]
    assert 0 <= low <= high <= 1
    # The band is where the 90 % set (fitted on the validation cases) is not exactly the threshold's class.
    assert info["conformal"]["fitted_on"].startswith("validation: 114 cases")
    assert (low, high) == load_bundle(cytology_spec, tiny_cytology, allow_unverified=True).band_at(0.9)

    cv = info["cross_validation"]
    assert [m["name"] for m in cv["models"]] == ["conv1d", "dense", "logistic_regression"]
    assert (cv["n_splits"], cv["n_repeats"], cv["n_fits"], cv["n_cases"]) == (2, 2, 4, 455)
    assert "2 folds x 2 repeats" in cv["method"] and "over all 4 fold fits" in cv["method"]
    for model in cv["models"]:
        for key in ("accuracy", "roc_auc"):
            folds = model[key]["folds"]
            assert len(folds) == 4 and 0 <= model[key]["mean"] <= 1 and model[key]["sd"] >= 0
            assert model[key]["mean"] == pytest.approx(np.mean(folds))
            assert model[key]["repeat_means"] == pytest.approx([np.mean(folds[:2]), np.mean(folds[2:])])
    assert [m["bundled"] for m in cv["models"]] == [True, False, False]
    conv1d, dense = cv["models"][0], cv["models"][1]
    assert conv1d["candidates"] == _as_json(candidate_params("conv1d", cytology_spec))
    assert len(conv1d["chosen_per_fit"]) == 4 and set(conv1d["chosen_per_fit"]) <= {0, 1}
    assert dense["params"] == _as_json(dict(cytology_spec.recipe.arch_params["dense"])) and "candidates" not in dense
    logistic = cv["models"][2]
    assert logistic["candidates"] == [{"C": c} for c in LOGISTIC_C_GRID]
    assert len(logistic["chosen_per_fit"]) == 4 and set(logistic["chosen_per_fit"]) <= set(range(len(LOGISTIC_C_GRID)))
    assert "logistic_regression (C)" in cv["method"]

    tuning = info["tuning"]["architectures"]["conv1d"]
    assert tuning["candidates"] == conv1d["candidates"] and len(tuning["validation_log_loss"]) == 2
    assert tuning["chosen"] == int(np.argmin(tuning["validation_log_loss"]))
    assert info["architecture"]["params"] == tuning["candidates"][tuning["chosen"]]

    history = pd.read_csv(tiny_cytology / "history.csv")
    assert list(history["epoch"]) == [1, 2]
    card = (tiny_cytology / "MODEL_CARD.md").read_text()
    assert "## Cross-validation comparison" in card and "| logistic_regression |" in card
    assert "over 4 fold fits" in card
    assert "Whole-slide" not in card and "IDC" not in card and "Research use only" in card


def test_manifest_hashes_every_case_with_its_split(tiny_cytology):
    info, metrics = read_bundle_info(tiny_cytology)
    info = info.to_json()
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
    bundle = load_bundle(cytology_spec, tiny_cytology, allow_unverified=True)
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
    result = run_main(evaluate_main, "--modality", "cytology", "--data", csv_path, "--allow-unverified", "--weights", tiny_cytology,
                      "--json", out, "--bootstrap", "50")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads(out.read_text())
    assert metrics["split"] == "external" and metrics["n_images"] == 114 and metrics["n_groups"] == 114
    stored = json.loads((tiny_cytology / "metrics.json").read_text())
    assert metrics["confusion_matrix"] == stored["confusion_matrix"]  # same cases, same decision rule

    test_rows.assign(**{"mean radius": "wide"}).iloc[:2].to_csv(csv_path, index=False)
    result = run_main(evaluate_main, "--modality", "cytology", "--data", csv_path, "--allow-unverified", "--weights", tiny_cytology)
    assert result.returncode == 2 and "'wide' is not a number for 'mean radius'" in result.stderr


def test_the_same_seed_gives_the_same_network_loss_and_version(tiny_cytology, cytology_spec, tmp_path):
    """Determinism without a second bundle: the network fit that every cross-validation fold and the
    final run use (``_fit_network``: class weights, early-stopping quarter, schedule) runs twice on the
    same WDBC cases; the weights, the early-stopping loss and the saved file's sha256 must match."""
    import keras

    from bcc_model.models.bundle import save_model

    info, _ = read_bundle_info(tiny_cytology)
    cases = load_wdbc().iloc[:200].reset_index(drop=True)
    x = cases[list(FEATURE_NAMES)].to_numpy(np.float32)
    y = cases["label"].map(cytology_spec.labels.index).to_numpy()
    config = config_from_argv(TINY_ARGS)
    runs = []
    for run in ("first", "second"):
        keras.backend.clear_session()  # layer names restart, as in a new process
        model, loss = train_tabular._fit_network("conv1d", info.architecture.params, cytology_spec, cases, x, y, config)
        save_model(model, tmp_path / f"{run}.keras")
        runs.append((model.get_weights(), loss, file_sha256(tmp_path / f"{run}.keras")))
    (first, loss_a, version_a), (second, loss_b, version_b) = runs
    assert len(first) == len(second) and np.isfinite(loss_a)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert loss_a == loss_b and version_a == version_b, "same weights, same version"


def test_bad_arguments_and_data_leave_the_bundle_untouched(tiny_cytology, tiny_plan, tmp_path):
    target = tmp_path / "weights"
    shutil.copytree(tiny_cytology, target)
    before = {name: file_sha256(target / name) for name in BUNDLE_FILES}
    bad = tmp_path / "bad.csv"
    bad.write_text("mean radius,label\n1,benign\n")
    for extra in (["--image-size", "64"], ["--arch", "se_resnet"], ["--data", str(bad)],
                  ["--data", str(tmp_path / "missing.csv")]):
        assert train_main([*TINY_ARGS, "--out", str(target), *extra]) == 2, extra
    assert {name: file_sha256(target / name) for name in BUNDLE_FILES} == before


def test_repeated_folds_keep_groups_whole_and_reshuffle_each_repeat():
    groups = pd.Series(np.repeat([f"patient-{i}" for i in range(40)], 3))  # 120 cases, 3 per patient
    y = np.repeat(np.arange(40) % 3 == 0, 3).astype(int)
    folds = repeated_folds(y, groups, folds=5, repeats=3, seed=7)
    assert len(folds) == 15
    partitions = []
    for r in range(3):
        repeat = folds[5 * r:5 * r + 5]
        held_out = np.concatenate([held for _, held in repeat])
        assert sorted(held_out) == list(range(120))  # every case scored once per repeat
        for fit, held in repeat:
            assert not set(groups[fit]) & set(groups[held])  # no patient on both sides
            assert sorted(np.concatenate([fit, held])) == list(range(120))
            assert abs(y[held].mean() - y.mean()) < 0.15  # stratified
        partitions.append(frozenset(frozenset(held) for _, held in repeat))
    assert len(set(partitions)) == 3  # each repeat is a different partition
    again = repeated_folds(y, groups, folds=5, repeats=3, seed=7)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again))  # and reproducible
    single = repeated_folds(y, groups, folds=5, repeats=1, seed=7)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds[:5], single))  # repeat 0 is the plain k-fold


def test_cross_validation_chooses_hyperparameters_inside_each_training_fold(monkeypatch, cytology_spec):
    """The candidate is chosen on the training fold alone, and its model is the one scored.

    Networks are stand-ins: candidate 1 always reports the lower early-stopping loss and predicts
    every case right; candidate 0 predicts every case wrong, so any use of it would show.
    """
    wdbc = load_wdbc().iloc[:150]
    x = wdbc[list(FEATURE_NAMES)].to_numpy()
    manifest = wdbc[["label", "group"]].reset_index(drop=True)
    truth = {row.astype(np.float32).tobytes(): label == "malignant" for row, label in zip(x, wdbc["label"])}
    candidates = candidate_params("conv1d", cytology_spec)
    calls = []

    def fake_fit(name, params, spec, fit, x_fit, y_fit, args):
        calls.append((name, params, {row.tobytes() for row in x_fit}))
        right = name == "dense" or params == candidates[1]

        def model(batch, training=False):
            positive = np.array([truth[row.tobytes()] == right for row in batch], dtype=np.float32)
            return np.stack([1 - positive, positive], axis=1)

        return model, (0.1 if right else 0.2)

    monkeypatch.setattr(train_tabular, "_fit_network", fake_fit)
    plan = CVPlan(folds=3, repeats=2)
    cv = cross_validate(x, manifest, cytology_spec, config_from_argv(TINY_ARGS), plan)

    y = (wdbc["label"] == "malignant").to_numpy().astype(int)
    folds = repeated_folds(y, manifest["group"], folds=3, repeats=2, seed=42)
    assert [(name, params) for name, params, _ in calls] == [
        ("conv1d", candidates[0]), ("conv1d", candidates[1]), ("dense", dict(cytology_spec.recipe.arch_params["dense"]))] * 6
    for k, (fit, _) in enumerate(folds):  # every network of outer fit k saw exactly its training fold
        assert all(seen == {row.tobytes() for row in x[fit]} for _, _, seen in calls[3 * k:3 * k + 3])
    conv1d = next(m for m in cv["models"] if m["name"] == "conv1d")
    assert conv1d["chosen_per_fit"] == [1] * 6 and conv1d["accuracy"]["folds"] == [1.0] * 6


def test_logistic_regression_chooses_c_by_log_loss_over_inner_folds_refitting_the_scaler():
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.preprocessing import StandardScaler

    cases = load_wdbc().iloc[:200]
    x = cases[list(FEATURE_NAMES)].to_numpy(float)
    y = (cases["label"] == "malignant").to_numpy(int)
    inner = repeated_folds(y, pd.Series(range(len(y))), folds=4, repeats=1, seed=0)

    def inner_log_loss(c: float) -> float:
        losses = []
        for fit, held in inner:
            scaler = StandardScaler().fit(x[fit])
            model = LogisticRegression(C=c, max_iter=5000, class_weight="balanced", random_state=0)
            model.fit(scaler.transform(x[fit]), y[fit])
            losses.append(log_loss(y[held], model.predict_proba(scaler.transform(x[held])), labels=[0, 1]))
        return float(np.mean(losses))

    expected = int(np.argmin([inner_log_loss(c) for c in LOGISTIC_C_GRID]))
    search = build_logistic_regression(0, inner).fit(x, y)
    assert search.best_index_ == expected
    assert search.best_estimator_[-1].C == LOGISTIC_C_GRID[expected]
