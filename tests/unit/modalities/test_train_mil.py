"""A tiny real run of the lesion-first mammography model on MIAS and RSNA samples, end to end.

The sample folders are copied under pseudo-patients (6 MIAS images x 5, 8 RSNA images x 4) so
both can be split by patient; the run compares two poolings (max, log-sum-exp) on the shipped
DenseNet121 trunk at 64 px (2 x 2 cells), two epochs and two folds. It checks plumbing and the
bundle's records, not accuracy: the copies of one image sit in several splits, so the figures mean
nothing. Choosing between trunks is the same ``max`` over the same records (the VGG16 cell model
is checked against its trunk's features in ``test_mil.py``).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bcc_model.models.bundle import load_bundle, read_bundle_info
from bcc_model.models.lesion_head import LESION_MAP_FILE
from bcc_model.registry import get_modality
from bcc_model.models.pretrained import DENSENET121_WHEEL
from bcc_model.cli.train import main as train_main

from tests.conftest import ROOT, replicate_folder

MIAS = ROOT / "samples" / "mammography"
RSNA = ROOT / "samples" / "mammography-rsna"
TINY_MIL_ARGS = ["--modality", "mammography", "--image-size", "64", "--epochs", "2", "--cv-folds", "2",
                 "--batch-size", "8", "--bootstrap", "20", "--arch", "densenet121_mil", "--candidates", "max", "lse",
                 "--no-onnx"]
"""``--no-onnx``: the DenseNet121 export takes 25 s here; the shipped mammography bundle's ONNX graph is
checked against Keras in tests/unit/analysis/test_inference_paths.py, and the tiny H&E and ultrasound runs
export theirs."""


@pytest.fixture(scope="module")
def mil_bundle(tmp_path_factory):
    data = tmp_path_factory.mktemp("mil_data")
    mias, rsna = replicate_folder(MIAS, data / "mias", 5), replicate_folder(RSNA, data / "rsna", 4)
    work = tmp_path_factory.mktemp("mil_run")
    assert train_main(["--data", str(mias), "--screening-data", str(rsna), "--out", str(work / "bundle"),
                       "--work-dir", str(work / "runs"), *TINY_MIL_ARGS]) == 0
    return work


def test_run_records_both_data_sets_the_pooling_choice_and_the_trunk(mil_bundle):
    bundle = mil_bundle / "bundle"
    info, metrics = read_bundle_info(bundle)
    info = info.to_json()
    cv = info["pooling_cross_validation"]
    assert {(c["architecture"], c["pooling"]) for c in cv["candidates"].values()} == {
        ("densenet121_mil", pooling) for pooling in ("max", "lse")}, "--candidates limits the poolings compared"
    arch = info["architecture"]["name"]
    assert arch == cv["candidates"][cv["chosen"]]["architecture"], "the bundled trunk is the chosen one"
    assert info["architecture"]["initial_weights"] == DENSENET121_WHEEL.record()
    assert cv["chosen"] in cv["candidates"] and set(cv["n_patients"]) == {"mias", "rsna"}
    chosen = cv["candidates"][cv["chosen"]]
    assert chosen["mean_roc_auc"] == max(c["mean_roc_auc"] for c in cv["candidates"].values())
    assert set(chosen["fold_mean_roc_auc"]) == {"mias", "rsna"}, "per-fold AUC beside the pooled one"
    model = json.loads((bundle / "model.json").read_text())
    assert model["architecture"]["params"]["pooling"] == chosen["pooling"]
    assert not (bundle / "model.onnx").exists() and "runtime" not in model, "--no-onnx: served through Keras"
    history = pd.read_csv(bundle / "history.csv")
    assert {"loss", "accuracy", "auc", "val_loss", "val_accuracy", "val_auc", "lesion_loss"} <= set(history.columns)
    assert model["calibration"]["fitted_on"].startswith("out-of-fold")
    # No patient is held out from the final head: the sets come from the folds' out-of-fold predictions of the
    # images with one class (MIAS), and are checked on the MIAS test patients.
    assert model["conformal"]["fitted_on"].startswith("out-of-fold") and set(model["conformal"]["scores"]) == set(
        model["labels"])
    assert set(metrics["conformal"]["coverage_by_class"]) <= set(model["labels"]) and "conformal" not in \
        metrics["datasets"]["rsna"]

    manifest = pd.read_csv(bundle / "manifest.csv")
    assert set(manifest["file"].str.split("/").str[0]) == {"mias", "rsna"}
    assert manifest.groupby("group")["split"].nunique().max() == 1, "no patient in two splits"
    assert set(manifest.loc[manifest["file"].str.startswith("rsna"), "label"]) == {"negative", "malignant"}

    assert set(metrics["datasets"]) == {"mias", "rsna"} and metrics["data_set"] == "mias"
    rsna = metrics["datasets"]["rsna"]
    assert rsna["labels"] == ["not malignant", "malignant"] and "roc_auc" in rsna["histogram_baseline"]
    for block in metrics["datasets"].values():
        assert 0 <= block["map_peak"]["outside_breast"] <= 1 and 0 <= block["map_peak"]["on_bright_mark"] <= 1
    assert set(metrics["froc"]["sensitivity"]) == {"0.5", "1", "2"} and metrics["froc"]["lesions"] > 0
    assert metrics["per_abnormality"] and metrics["lesion_map_localisation"]["method"] == "lesion map"
    assert metrics["localisation"]["method"] == "Grad-CAM"
    for case in metrics["failure_cases"]:
        assert (bundle / case["picture"]).read_bytes()[:4] == b"\x89PNG"


def test_card_shows_each_data_set_froc_abnormality_pooling_and_failures(mil_bundle):
    card = (mil_bundle / "bundle" / "MODEL_CARD.md").read_text()
    for section in ("## Each data set's test patients", "## Lesion marks (FROC)", "## Per abnormality class",
                    "## Cross-validation: from cell scores to an image score", "Histogram baseline",
                    "microcalcifications", "Research use only"):
        assert section in card, section


def test_bundle_loads_and_analyses_with_the_breast_mask_lesion_map_and_marks(mil_bundle):
    from bcc_model.analysis.image import analyse
    from bcc_model.explain.marks import MARK_FLOOR
    from bcc_model.imaging.io import read_image

    bundle = load_bundle(get_modality("mammography"), mil_bundle / "bundle", allow_unverified=True)
    assert bundle.lesion_map is not None and (mil_bundle / "bundle" / LESION_MAP_FILE).is_file()
    analysis = analyse(bundle, read_image(MIAS / "malignant" / "mdb028.png").pixels)
    assert analysis.lesion_map.shape == (64, 64) and analysis.breast_mask.shape == (64, 64)
    assert sum(analysis.prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    for mark in analysis.marks:
        assert mark.score >= MARK_FLOOR and analysis.breast_mask[mark.y, mark.x]
        assert analysis.lesion_map[mark.y, mark.x] == pytest.approx(mark.score)


def test_evaluate_scores_an_rsna_folder_with_the_new_bundle(mil_bundle, tmp_path):
    """evaluate accepts negative/ + malignant/ (negative = not malignant), reports the histogram baseline and
    each patient's views pooled by the bundle's rule."""
    from bcc_model.cli.evaluate import main as evaluate_main

    out = tmp_path / "metrics.json"
    assert evaluate_main(["--modality", "mammography", "--data", str(RSNA), "--allow-unverified", "--weights", str(mil_bundle / "bundle"),
                          "--json", str(out), "--bootstrap", "20"]) == 0
    metrics = json.loads(out.read_text())
    assert metrics["labels"] == ["not malignant", "malignant"] and metrics["n_images"] == 8
    assert metrics["n_groups"] == 4 and metrics["label_mapping"] == {"negative": "not malignant"}
    assert metrics["confusion_matrix"]["labels"] == ["not malignant", "malignant"]
    assert "localisation" not in metrics  # the folder has no lesion geometry
    baseline = metrics["histogram_baseline"]
    assert baseline["n_images"] == 8 and np.isfinite(baseline["roc_auc"]["value"])
    assert "2-fold" in baseline["method"]  # two patients per class: as many folds as that allows
    rule = json.loads((mil_bundle / "bundle" / "model.json").read_text())["view_pooling"]["rsna"]["rule"]
    patients = metrics["patient_level"]
    assert patients["rule"] == rule and patients["groups"] == len({g for g in metrics["per_group"]})


def test_an_unknown_pooling_is_refused_before_any_image_is_read(tmp_path, capsys):
    assert train_main(["--modality", "mammography", "--data", str(tmp_path / "nowhere"), "--candidates", "median"]) == 2
    assert "median" in capsys.readouterr().err


def test_predict_pools_each_breasts_views_with_the_rule_chosen_out_of_fold(mil_bundle, tmp_path):
    """Views grouped by exam and side, from file-name tokens and from a DICOM header, give breasts.csv rows."""
    import shutil

    from bcc_model.cli.predict import main as predict_main
    from bcc_model.imaging.io import read_image
    from pydicom.uid import generate_uid

    from tests.hostile import PATIENT_TAGS, make_dicom

    info = json.loads((mil_bundle / "bundle" / "model.json").read_text())
    rule = info["view_pooling"]["rsna"]["rule"]
    assert rule in ("mean", "max") and info["test_time_flips"] == ["vertical"]
    assert json.loads((mil_bundle / "bundle" / "metrics.json").read_text())["datasets"]["rsna"]["patient_level"][
        "rule"] == rule
    exam = tmp_path / "in" / "exam"
    exam.mkdir(parents=True)
    for name, source in (("R_CC.png", "malignant/mdb028.png"), ("R_MLO.png", "malignant/mdb028.png"),
                         ("L_CC.png", "normal/" + sorted(p.name for p in (MIAS / "normal").iterdir())[0])):
        shutil.copy(MIAS / source, exam / name)
    grey = (read_image(MIAS / "malignant" / "mdb028.png").pixels.astype(np.uint16) * 257)
    for i, view in enumerate(("CC", "MLO")):  # CBIS-DDSM style: one ID per view, no side or view in the name
        (tmp_path / "in" / f"1-{i}.dcm").write_bytes(make_dicom(grey, Laterality="L", PatientID=f"P_7_LEFT_{view}",
                                                                 BodyPartExamined="BREAST", StudyInstanceUID=generate_uid(),
                                                                 SeriesInstanceUID=generate_uid()))
    out = tmp_path / "out"
    assert predict_main(["--modality", "mammography", "--weights", str(mil_bundle / "bundle"), "--allow-unverified",
                         str(tmp_path / "in"), "--out", str(out), "--dicom", "--heatmaps"]) == 0
    images = pd.read_csv(out / "predictions.csv", keep_default_na=False)
    breasts = pd.read_csv(out / "breasts.csv", keep_default_na=False)
    assert breasts[["exam", "side", "views"]].values.tolist() == [  # exams numbered in input order
        ["exam 1", "left", "CC, MLO"], ["exam 2", "right", "CC, MLO"], ["exam 2", "left", "CC"]]
    p = dict(zip(images["file"], images["P(malignant)"]))
    right = [p[f] for f in breasts["files"][1].split("; ")]
    assert breasts["P(malignant) breast"][1] == pytest.approx(max(right) if rule == "max" else np.mean(right), abs=1e-5)
    assert breasts["pooling"][1].startswith(f"{rule} of the views") and "rsna" in breasts["pooling"][1]
    assert (breasts["caution"] == images["caution"][0]).all(), "the model's caution travels with every breast"
    written = "".join(path.read_text(errors="replace") for path in out.iterdir() if path.suffix in (".csv", ".json"))
    assert not any(str(value) in written for value in PATIENT_TAGS.values()), "no patient tag reaches an output"
    assert "P_7" not in written
    _assert_dicom_results(out / "dicom", tmp_path / "in", images)


def _assert_dicom_results(folder, inputs, images):
    """Each DICOM input's SR and map Segmentations validate, reference it, and hold the CSV's numbers."""
    import highdicom as hd
    from pydicom import dcmread

    assert sorted(p.name for p in folder.iterdir()) == [
        f"000{i}_1-{i - 1}.{kind}.dcm" for i in (1, 2) for kind in ("gradcam.seg", "lesion.seg", "sr")], \
        "DICOM results for the DICOM inputs only"
    for i in (1, 2):
        source = dcmread(inputs / f"1-{i - 1}.dcm")
        report = hd.sr.srread(folder / f"000{i}_1-{i - 1}.sr.dcm")
        assert report.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34" and report.StudyInstanceUID == source.StudyInstanceUID
        assert report.SOPInstanceUID != source.SOPInstanceUID and "Research use only" in report.SeriesDescription
        evidence = report.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
        assert [r.ReferencedSOPInstanceUID for r in evidence.ReferencedSOPSequence] == [source.SOPInstanceUID]
        group = report.content.get_image_measurement_groups()[0]
        measured = {m.name.meaning: m.value for m in group.get_measurements()}
        row = images.set_index("file").loc[str(inputs / f"1-{i - 1}.dcm")]
        for label in ("normal", "benign", "malignant"):
            assert measured[f"Probability of {label}"] == pytest.approx(row[f"P({label})"], abs=1e-6)
        said = {e.name.meaning: e.value.meaning for e in group.get_qualitative_evaluations()}
        assert said["Model result"] == row["verdict"] and said["Intended use"].startswith("Research use only")
        for kind in ("lesion", "gradcam"):
            segmentation = hd.seg.segread(folder / f"000{i}_1-{i - 1}.{kind}.seg.dcm")
            assert (segmentation.Rows, segmentation.Columns) == (source.Rows, source.Columns)
            assert segmentation.SegmentationType == "FRACTIONAL" and segmentation.StudyInstanceUID == source.StudyInstanceUID
            referenced = segmentation.ReferencedSeriesSequence[0].ReferencedInstanceSequence
            assert [r.ReferencedSOPInstanceUID for r in referenced] == [source.SOPInstanceUID]


def test_two_cbis_ddsm_exams_give_eight_assessed_views_and_four_breasts(mil_bundle, tmp_path):
    """Issue 32's aim on DICOM nobody here wrote (``tests/support/corpora.py``): the header's MG and Laterality
    decide, and the Patient ID's side and view tokens group each exam; no file name says either."""
    from bcc_model.cli.predict import main as predict_main
    from tests.support.corpora import cbis_exams

    cases = cbis_exams(tmp_path / "wheel")
    out = tmp_path / "out"
    assert predict_main(["--modality", "mammography", "--weights", str(mil_bundle / "bundle"), "--allow-unverified",
                         str(cases), "--out", str(out)]) == 0
    images = pd.read_csv(out / "predictions.csv", keep_default_na=False)
    assert len(images) == 8 and set(images["status"]) == {"ok"}
    assert not images["warnings"].str.contains("ultrasound", case=False).any()
    breasts = pd.read_csv(out / "breasts.csv", keep_default_na=False)
    assert breasts[["exam", "side", "views"]].values.tolist() == [
        ["exam 1", "right", "CC, MLO"], ["exam 1", "left", "CC, MLO"],
        ["exam 2", "right", "CC, MLO"], ["exam 2", "left", "CC, MLO"]]
    assert all("sfm-benign-0" in files for files in breasts["files"][:2])
