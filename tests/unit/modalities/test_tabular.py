"""Tests for bcc_model.tabular (features, WDBC loading, CSV parsing, ranges, attributions) and its figure."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from bcc_model.datasets.folders import DataError
from bcc_model.modalities.cytology.cases import FEATURE_NAMES, FEATURES, MAX_CSV_BYTES, STATISTICS, WDBC_SOURCE, feature_ranges, input_precision, load_cases, load_wdbc, out_of_range, read_cases_csv, row_sha256, template_csv
from bcc_model.modalities.cytology.attributions import attributions
from bcc_model.modalities.cytology.figures import attribution_figure

LABELS = ("benign", "malignant")


@pytest.fixture(scope="module")
def wdbc() -> pd.DataFrame:
    return load_wdbc()


def _csv(frame: pd.DataFrame) -> str:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue()


def test_feature_names_are_sklearns_in_order():
    from sklearn.datasets import load_breast_cancer

    assert FEATURE_NAMES == tuple(str(n) for n in load_breast_cancer().feature_names)
    assert len(set(FEATURE_NAMES)) == 30
    assert [f.statistic for f in FEATURES] == [s for s in STATISTICS for _ in range(10)]


def test_every_feature_is_explained_with_its_unit():
    by_name = {f.name: f for f in FEATURES}
    assert by_name["mean radius"].unit == "px" and "centre" in by_name["mean radius"].description
    assert by_name["worst area"].unit == "px²" and "three largest" in by_name["worst area"].explanation
    assert by_name["texture error"].unit == "grey levels" and "Standard error" in by_name["texture error"].explanation
    for feature in FEATURES:
        assert feature.description and feature.unit in feature.explanation


def test_wdbc_labels_are_mapped_by_name_not_position(wdbc):
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    assert list(bunch.target_names) == ["malignant", "benign"]  # sklearn: 0 = malignant, 1 = benign
    assert (wdbc.loc[bunch.target == 0, "label"] == "malignant").all()
    assert (wdbc.loc[bunch.target == 1, "label"] == "benign").all()
    assert wdbc["label"].value_counts().to_dict() == {"benign": 357, "malignant": 212}
    assert list(wdbc.columns) == [*FEATURE_NAMES, "label", "group"]
    assert wdbc["group"].iloc[0] == "wdbc-000" and wdbc["group"].is_unique
    np.testing.assert_array_equal(wdbc[list(FEATURE_NAMES)].to_numpy(), bunch.data)
    assert load_cases(WDBC_SOURCE, LABELS).equals(wdbc)


def test_csv_good_rows_are_read_and_every_bad_row_reported(wdbc):
    rows = wdbc.iloc[:3].drop(columns="group")
    text = _csv(rows)
    bad = rows.iloc[0].astype(str).to_dict()
    lines = [text.rstrip("\n")]
    for change in ({"mean radius": ""}, {"mean texture": "abc"}, {"mean area": "-5"}, {"worst symmetry": "nan"},
                   {"label": "M"}):
        lines.append(",".join({**bad, **change}[c] for c in rows.columns))
    lines.append("1,2,3")
    lines.append("")  # a trailing blank line is not a row
    cases, messages = read_cases_csv("\n".join(lines).encode("utf-8"), labels=LABELS)

    assert list(cases.index) == [2, 3, 4] and cases.index.name == "line"
    np.testing.assert_array_equal(cases[list(FEATURE_NAMES)].to_numpy(), rows[list(FEATURE_NAMES)].to_numpy())
    assert list(cases["label"]) == list(rows["label"]) and list(cases["group"]) == ["line-2", "line-3", "line-4"]
    assert len(messages) == 6
    expected = ["line 5: missing value for 'mean radius'", "line 6: 'abc' is not a number for 'mean texture'",
                "line 7: 'mean area' is negative", "line 8: 'worst symmetry' is NaN", "line 9: label 'M' is not one",
                "line 10: 3 fields, expected 31"]
    for message, start in zip(messages, expected):
        assert message.startswith(start), message


def test_csv_any_column_order_bom_group_and_unlabelled_rows(wdbc):
    frame = wdbc.iloc[:2][["group", "label", *reversed(FEATURE_NAMES)]].assign(label=["", "benign"], extra="x")
    cases, messages = read_cases_csv(b"\xef\xbb\xbf" + _csv(frame).encode(), labels=LABELS)
    assert messages == []
    assert list(cases.columns) == [*FEATURE_NAMES, "label", "group"]
    assert list(cases["group"]) == ["wdbc-000", "wdbc-001"] and list(cases["label"]) == ["", "benign"]


def test_csv_missing_column_is_one_clear_message(wdbc):
    cases, messages = read_cases_csv(_csv(wdbc.iloc[:2].drop(columns="worst area")).encode())
    assert cases.empty and list(cases.columns[:30]) == list(FEATURE_NAMES)
    assert len(messages) == 1 and "missing column(s) 'worst area'" in messages[0]


@pytest.mark.parametrize("data", [
    b"",
    b"\n\n",
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10",
    bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)),
    "mean radius;caf\xe9\n1;2\n".encode("latin-1"),
    ",".join(FEATURE_NAMES).encode("utf-16"),
    b'"unterminated quote\n1,2\n',
    b"mean radius,mean radius\n1,1\n",
    b"a" * (MAX_CSV_BYTES + 1),
], ids=["empty", "blank", "png", "random", "latin1", "utf16", "quote", "repeated", "too-big"])
def test_garbage_bytes_give_a_message_never_an_exception(data):
    cases, messages = read_cases_csv(data)
    assert cases.empty and len(messages) >= 1 and all(isinstance(m, str) and m for m in messages)


def test_header_only_file_says_so():
    cases, messages = read_cases_csv((",".join(FEATURE_NAMES) + "\n").encode())
    assert cases.empty and messages == ["the file has a header but no data rows"]


def test_load_cases_refuses_bad_training_files(tmp_path, wdbc):
    path = tmp_path / "cases.csv"
    path.write_text(_csv(wdbc.iloc[:3].drop(columns="label")))
    with pytest.raises(DataError, match="no 'label' column"):
        load_cases(path, LABELS)
    path.write_text(_csv(wdbc.iloc[:3].assign(**{"mean radius": ["1", "x", "2"]})))
    with pytest.raises(DataError, match="line 3: 'x' is not a number"):
        load_cases(path, LABELS)
    path.write_text(_csv(wdbc.iloc[:3].assign(label=["benign", "", "malignant"])))
    with pytest.raises(DataError, match="1 case"):
        load_cases(path, LABELS)
    with pytest.raises(DataError, match="cannot read"):
        load_cases(tmp_path / "missing.csv", LABELS)


def test_feature_ranges_and_out_of_range(wdbc):
    ranges = feature_ranges(wdbc)
    assert list(ranges) == list(FEATURE_NAMES)
    for name, r in ranges.items():
        assert r["min"] <= r["p1"] <= r["median"] <= r["p99"] <= r["max"], name
        assert r["min"] <= r["mean"] <= r["max"]
    assert ranges["mean area"]["max"] == 2501.0 and ranges["mean area"]["median"] == pytest.approx(551.1)
    assert out_of_range(wdbc.iloc[0], ranges) == []
    case = {name: r["median"] for name, r in ranges.items()} | {"mean area": 3000.0, "worst smoothness": 0.0}
    messages = out_of_range(case, ranges)
    assert len(messages) == 2
    assert messages[0].startswith("mean area = 3000 lies outside the training range 143.5–2501")
    assert messages[1].startswith("worst smoothness = 0")


def test_template_reads_back_as_one_median_case(wdbc):
    ranges = feature_ranges(wdbc)
    cases, messages = read_cases_csv(template_csv(ranges).encode())
    assert messages == [] and len(cases) == 1 and cases["group"].iloc[0] == "example-1"
    assert cases[list(FEATURE_NAMES)].iloc[0].tolist() == [ranges[n]["median"] for n in FEATURE_NAMES]


def test_row_sha256_is_exact_and_documented(wdbc):
    values = wdbc[list(FEATURE_NAMES)].iloc[0].to_numpy()
    import hashlib

    text = ",".join([*(repr(float(v)) for v in values), "malignant"])
    assert row_sha256(values, "malignant") == hashlib.sha256(text.encode()).hexdigest()
    assert row_sha256(values, "benign") != row_sha256(values, "malignant")
    assert row_sha256(np.nextafter(values, 100), "malignant") != row_sha256(values, "malignant")


def test_input_precision():
    assert input_precision(551.1) == (1, 10.0)
    assert input_precision(13.37) == (2, 1.0)
    assert input_precision(0.0959) == (5, 0.001)
    assert input_precision(0.0) == (4, 0.01)


@pytest.fixture(scope="module", params=["dense", "conv1d"])
def tiny_model(request, wdbc):
    import keras

    from bcc_model.modalities.cytology.models import build_tabular_model

    keras.utils.set_random_seed(0)
    x = wdbc[list(FEATURE_NAMES)].to_numpy()
    params = {"dense": {"units": (8,), "dropout": 0.0},
              "conv1d": {"filters": (4,), "kernel_size": 3, "dense_units": 8, "dropout": 0.0}}[request.param]
    return build_tabular_model(request.param, 30, 2, mean=x.mean(axis=0), variance=x.var(axis=0), **params)


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_attributions_are_complete(tiny_model, wdbc, temperature):
    """Sundararajan et al. (2017), completeness: attributions sum to f(x) - f(baseline)."""
    from bcc_model.models.decision import apply_temperature

    x = wdbc[list(FEATURE_NAMES)].to_numpy()
    baseline = x.mean(axis=0)
    cases = x[[0, 19, 100, 568]]
    values = attributions(tiny_model, cases, baseline, target_index=1, temperature=temperature)
    assert values.shape == (4, 30) and values.dtype == np.float64

    def f(rows):
        return apply_temperature(np.asarray(tiny_model(rows.astype(np.float32), training=False)), temperature)[:, 1]

    np.testing.assert_allclose(values.sum(axis=1), f(cases) - f(baseline[None]), atol=2e-3)
    assert np.abs(values).sum() > 0
    # a case equal to the baseline gets nothing; a single case may be passed as (F,)
    np.testing.assert_allclose(attributions(tiny_model, baseline, baseline, target_index=1), 0.0, atol=1e-7)


def test_attributions_refuse_mismatched_shapes(tiny_model):
    with pytest.raises(ValueError, match="baseline"):
        attributions(tiny_model, np.zeros((2, 30)), np.zeros(29), target_index=1)


def test_attribution_figure_sorts_by_magnitude_and_colours_by_sign():
    fig = attribution_figure(["a", "b", "c"], [0.01, -0.2, 0.05], label="malignant", feature_values=[1.0, 2.0, 3.0])
    bar = fig.data[0]
    assert list(bar.y) == ["b", "c", "a"]
    np.testing.assert_allclose(bar.x, [-20.0, 5.0, 1.0])
    assert bar.marker.color[0] != bar.marker.color[1] == bar.marker.color[2]
    assert "P(malignant)" in fig.layout.title.text and "value 2<br>" in bar.customdata[0]
    with pytest.raises(ValueError, match="one attribution per feature"):
        attribution_figure(["a"], [0.1, 0.2])
    with pytest.raises(ValueError, match="finite"):
        attribution_figure(["a"], [np.nan])
