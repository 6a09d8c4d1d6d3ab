"""Recalibration for a new site: the shipped H&E weights, refitted on some patients, checked on the others."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from bcc_model.cli.recalibrate import main
from bcc_model.models.bundle import BundleUnverified, load_bundle
from bcc_model.registry import get_modality
from tests.conftest import SAMPLES, replicate_folder


def test_a_site_recalibrates_the_shipped_bundle_into_a_new_versioned_bundle(tmp_path, capsys):
    spec = get_modality("histopathology")
    site = replicate_folder(SAMPLES, tmp_path / "site", replicas=2)
    out = tmp_path / "recalibrated"
    assert main(["--modality", spec.key, "--data", str(site), "--out", str(out), "--bootstrap", "50"]) == 0
    assert "Recalibrated bundle" in capsys.readouterr().out

    shipped = load_bundle(spec)
    with pytest.raises(BundleUnverified):  # a new bundle, never mistaken for the shipped one
        load_bundle(spec, out)
    new = load_bundle(spec, out, allow_unverified=True)
    assert new.meta.model_sha256 == shipped.meta.model_sha256  # same weights
    assert new.meta.name.startswith(f"{shipped.meta.name}-recalibrated-")
    record = new.meta.extras["recalibration"]
    assert record["from_bundle"]["model_sha256"] == shipped.meta.model_sha256
    manifest = pd.read_csv(out / record["manifest_file"], dtype=str)
    halves = manifest.groupby("split")["group"].apply(set)
    assert set(halves.index) == {"calibration", "test"} and not halves["calibration"] & halves["test"]
    assert record["patients"] == {split: len(halves[split]) for split in ("calibration", "test")}
    assert new.meta.decision.rule and new.meta.calibration.fitted_on.endswith("(recalibration)")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_groups"] == record["patients"]["test"]
    assert new.conformal is not None and set(metrics["conformal"]["coverage_by_class"]) == set(spec.labels)
    assert "**Recalibrated:** from " + shipped.meta.name in (out / "MODEL_CARD.md").read_text()


def test_recalibration_refuses_to_overwrite_the_shipped_bundle_and_too_few_patients(tmp_path, capsys):
    spec = get_modality("histopathology")
    assert main(["--modality", spec.key, "--data", str(SAMPLES), "--out", str(spec.bundle_dir)]) == 2
    few = tmp_path / "few"
    labels = pd.read_csv(SAMPLES / "labels.csv", dtype=str)
    labels = labels[labels["group"].isin(sorted(labels["group"].unique())[:3])]
    for name in labels["file"]:
        (few / name).parent.mkdir(parents=True, exist_ok=True)
        (few / name).write_bytes((SAMPLES / name).read_bytes())
    labels.to_csv(few / "labels.csv", index=False)
    assert main(["--modality", spec.key, "--data", str(few), "--out", str(tmp_path / "x")]) == 2
    assert "at least 4 patients" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_own_patients_refit_gives_the_shipped_cytology_bundle_sets_from_its_validation_cases(tmp_path, capsys):
    spec = get_modality("cytology")
    out = tmp_path / "cytology"
    assert main(["--modality", spec.key, "--own-patients", "--data", "unused", "--out", str(out),
                 "--bootstrap", "50"]) == 0
    shipped, new = load_bundle(spec), load_bundle(spec, out, allow_unverified=True)
    assert new.meta.model_sha256 == shipped.meta.model_sha256 and new.meta.name == shipped.meta.name
    manifest = pd.read_csv(out / "manifest.csv", dtype=str)
    n_validation = int((manifest["split"] == "validation").sum())
    assert f"validation patients of this network ({n_validation})" in new.conformal.fitted_on
    assert sum(len(v) for v in new.conformal.scores.values()) == n_validation  # one case per patient here
    metrics = json.loads((out / "metrics.json").read_text())
    coverage = metrics["conformal"]["coverage_by_class"]
    assert set(coverage) == set(spec.labels) and all(entry["value"] >= 0.9 - 0.1 for entry in coverage.values())
    assert tuple(metrics["indeterminate_band"]) == new.band == new.band_at(0.9)
    low_80, high_80 = new.band_at(0.8)
    low_95, high_95 = new.band_at(0.95)
    assert high_95 - low_95 >= high_80 - low_80  # a higher level never decides more
    assert "**One concept:**" in (out / "MODEL_CARD.md").read_text()
    again = tmp_path / "again"  # refitting a refitted bundle changes nothing
    assert main(["--modality", spec.key, "--own-patients", "--data", "unused", "--weights", str(out),
                 "--allow-unverified", "--out", str(again), "--bootstrap", "50"]) == 0
    first, second = (json.loads((folder / "model.json").read_text()) for folder in (out, again))
    assert second["decision"] == first["decision"] and second["conformal"] == first["conformal"]


def test_own_patients_refit_refuses_a_bundle_whose_final_head_trained_on_its_validation_patients(capsys):
    assert main(["--modality", "mammography", "--own-patients", "--data", "unused", "--out", "unused",
                 "--bootstrap", "10"]) == 2
    assert "not held out" in capsys.readouterr().err
