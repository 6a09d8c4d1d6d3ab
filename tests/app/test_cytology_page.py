"""AppTest tests of the cytology page against the committed bundle (``weights/cytology``).

Expected verdicts come from ``bcc_model.tabular.predict_cases`` directly, so the page is checked
against the library rather than against numbers that change with every retraining.
"""

from __future__ import annotations


import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from bcc_model import RESEARCH_USE_NOTICE
from bcc_model.registry import get_modality
from bcc_model.modalities.cytology.cases import FEATURE_NAMES, predict_cases, read_cases_csv
from tests.apptest_helpers import plain, verdict_text
from tests.support.bundles import shipped_bundle
from tests.conftest import ROOT

PAGE = str(ROOT / "app_pages" / "cytology.py")
TIMEOUT_S = 120  # the first run imports TensorFlow and loads the model


@pytest.fixture(scope="module")
def bundle():
    spec = get_modality("cytology")
    assert (spec.bundle_dir / "model.json").is_file(), (
        f"no cytology bundle at {spec.bundle_dir}: train it with python -m bcc_model.train --modality cytology")
    return shipped_bundle(spec.key)


def _verdict(prediction) -> str:
    return verdict_text(shipped_bundle("cytology"), prediction)


def _texts(at: AppTest) -> str:
    return "\n".join([m.value for m in at.markdown] + [w.value for w in at.warning] + [c.value for c in at.caption]
                     + [e.value for e in at.error])


def _run() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT_S)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_form_submit_gives_a_prediction_and_an_attribution_chart(bundle):
    at = _run()
    assert RESEARCH_USE_NOTICE in _texts(at)
    assert len(at.number_input) == 30 and not at.get("plotly_chart")
    ranges = bundle.info["feature_ranges"]
    worst_area = at.number_input(key="cyto_worst area")
    assert worst_area.value == pytest.approx(ranges["worst area"]["median"], abs=0.05)
    assert "Typical range" in worst_area.help and "px²" in worst_area.help
    worst_area.set_value(ranges["worst area"]["max"] * 2)
    next(b for b in at.button if b.label == "Classify this case").click()
    at.run()
    assert not at.exception, [e.message for e in at.exception]

    case = pd.DataFrame([{name: at.number_input(key=f"cyto_{name}").value for name in FEATURE_NAMES}])
    assert _verdict(predict_cases(bundle, case)[0]) in _texts(at)
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # probability bar and attributions
    assert "Contributions to P(" in charts[1].proto.spec
    assert "worst area = " in _texts(at) and "outside the training range" in _texts(at)


def test_csv_upload_reports_the_bad_row_and_classifies_the_rest(bundle):
    sample = (get_modality("cytology").sample_dir / "cases.csv").read_text()
    header, first, *rest = sample.strip().splitlines()
    broken = first.split(",")
    broken[FEATURE_NAMES.index("mean texture")] = "n/a"
    data = "\n".join([header, first, ",".join(broken), *rest]).encode()
    good, problems = read_cases_csv(data, labels=bundle.labels)
    assert len(problems) == 1 and len(good) == len(rest) + 1

    at = _run()
    at.file_uploader(key="cytology_csv").set_value(("cases.csv", data, "text/csv")).run()
    assert not at.exception, [e.message for e in at.exception]
    assert len(at.error) == 1 and "line 3: 'n/a' is not a number for 'mean texture'" in plain(at.error[0].value)
    assert f"**{len(good)} case(s) classified**" in _texts(at)
    table = at.dataframe[0].value
    predictions = predict_cases(bundle, good)
    assert list(table["case"]) == list(good["group"]) and list(table["line"]) == list(good.index)
    assert list(table["verdict"]) == ["indeterminate" if p.indeterminate else p.label for p in predictions]
    assert list(table["true label"]) == list(good["label"])
    assert len(at.get("plotly_chart")) == 2  # details of the first case: probabilities and attributions
    assert _verdict(predictions[0]) in _texts(at)
    # One formatter: a near-certain output reads "> 99.9%", never "100.0%"; the table (and its CSV) has no 3.3e-11.
    p_first = predictions[0].probabilities[predictions[0].label]
    assert p_first < 0.9995 or "> 99.9%" in _texts(at)
    assert "100.0%" not in _texts(at)
    column = table[f"P({bundle.spec.positive_label})"]
    assert all(value == round(value, 6) for value in column)

    at.selectbox(key="cytology_case_choice").set_value(len(good) - 1).run()
    assert not at.exception and _verdict(predictions[-1]) in _texts(at)


def test_garbage_upload_is_reported_not_raised():
    at = _run()
    at.file_uploader(key="cytology_csv").set_value(("cases.csv", b"\x89PNG\r\n\x1a\n\x00\x00", "text/csv")).run()
    assert not at.exception and len(at.error) == 1
    assert "nothing was classified" in plain(at.error[0].value) and "not a UTF-8 text file" in plain(at.error[0].value)
    assert not at.dataframe
