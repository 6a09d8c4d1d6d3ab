"""One result row for every output: the command line's CSV, the app's table and the HTML report."""

from __future__ import annotations

import pickle
from datetime import datetime, timezone

import numpy as np
import pandas as pd
from markupsafe import escape

from bcc_model.analysis.batch import analyse_item
from bcc_model.analysis.image import analyse
from bcc_model.analysis.rows import ResultRow
from bcc_model.imaging.io import read_image
from bcc_model.imaging.sources import InputItem
from bcc_model.registry import get_modality
from bcc_model.reporting.batch import results_table, write_predictions
from bcc_model.reporting.report import ReportEntry, build_report_html
from tests.support.bundles import shipped_bundle

COLUMNS_BEFORE = ["file", "status", "verdict", "caution", "indeterminate"]
COLUMNS_AFTER = ["reason", "conformal_set", "set_level", "warnings", "error", "model", "model_version", "provenance", "burned_in"]


def _item(path) -> InputItem:
    return InputItem(path.name, path=path)


def test_rows_of_an_analysis_a_refusal_and_an_error_share_one_column_order(tmp_path):
    bundle = shipped_bundle("histopathology")
    patch = sorted(get_modality("histopathology").sample_dir.glob("malignant/*.png"))[0]
    mammogram = sorted(get_modality("mammography").sample_dir.glob("*/*.png"))[0]
    garbage = tmp_path / "notes.png"
    garbage.write_bytes(b"not an image at all")
    results = [analyse_item(bundle, _item(path)) for path in (patch, mammogram, garbage)]
    ok, refused, failed = (result.row for result in results)
    expected = [*COLUMNS_BEFORE, "P(no IDC)", "P(IDC)", *COLUMNS_AFTER]  # the modality's display names
    for row in (ok, refused, failed):
        assert list(row.as_dict()) == expected
    analysis = analyse(bundle, read_image(patch.read_bytes()).pixels)
    show = bundle.spec.display
    prediction = analysis.prediction
    assert ok.status == "ok" and ok.verdict == ("indeterminate" if prediction.indeterminate else show(prediction.label))
    assert ok.probabilities == {show(k): round(float(v), 6) for k, v in prediction.probabilities.items()}
    assert ok.conformal_set == " or ".join(map(show, prediction.conformal_set)) and ok.set_level == 0.9
    assert refused.status == "not assessed" and refused.verdict == "not assessed" and refused.reason
    assert refused.conformal_set == "" and refused.set_level is None, "a refused image carries no set"
    assert refused.indeterminate is None and set(refused.as_dict()[c] for c in ("P(no IDC)", "P(IDC)")) == {None}, \
        "a refused row carries nothing the model computed"
    assert failed.status == "error" and failed.verdict == "not analysed" and failed.error and not failed.analysed
    assert set(failed.as_dict()[c] for c in ("P(no IDC)", "P(IDC)")) == {None}
    # The CSV the command line writes is exactly the app's table, column for column.
    csv = pd.read_csv(write_predictions(results, tmp_path / "out")[0], keep_default_na=False)
    app = results_table([ok, refused, failed])
    assert list(csv.columns) == list(app.columns) == expected
    assert csv["reason"].tolist() == app["reason"].tolist() and csv["verdict"].tolist() == app["verdict"].tolist()
    assert pickle.loads(pickle.dumps(ok)) == ok, "rows cross process boundaries (the Ray engine)"


def test_caution_and_truth_columns(tmp_path):
    bundle = shipped_bundle("histopathology")
    patch = sorted(get_modality("histopathology").sample_dir.glob("benign/*.png"))[0]
    analysis = analyse(bundle, read_image(patch.read_bytes()).pixels)
    row = ResultRow.of_analysis(bundle, "sample benign/x.png", analysis)
    failed = ResultRow.failed(bundle, "upload.png", "not an image")
    table = results_table([row, failed], ["no IDC", None])
    assert list(table.columns[:3]) == ["file", "true label", "correct?"]
    assert table["caution"].tolist() == [""] * 2  # the H&E model's own figures raise no caution
    expected = None if row.verdict not in row.labels else row.verdict == "no IDC"
    assert table["correct?"].tolist()[0] == expected and table["correct?"].tolist()[1] is None
    assert "true label" not in results_table([row, failed], [None, None]).columns


def test_the_report_shows_the_rows_reason_and_error():
    bundle = shipped_bundle("histopathology")
    mammogram = sorted(get_modality("mammography").sample_dir.glob("*/*.png"))[0]
    pixels = read_image(mammogram.read_bytes()).pixels
    refused = ResultRow.of_analysis(bundle, "wrong.png", analyse(bundle, pixels))
    failed = ResultRow.failed(bundle, "bad.png", "not an image")
    html = build_report_html([ReportEntry(refused, pixels), ReportEntry(failed)], model_info=dict(bundle.info),
                             generated_at=datetime.now(timezone.utc), notice="n")
    assert f"Not assessed:</strong> {escape(refused.reason.rstrip('. '))}. Nothing" in html and "Not analysed: not an image" in html
    assert "Probability (calibrated)" not in html and "heatmap" not in html, "a refused image shows only itself"
