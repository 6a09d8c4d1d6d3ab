"""Cytology page: classify fine-needle-aspirate cases from the 30 WDBC nuclear features.

One case through a form (features grouped as mean / standard error / worst, defaults = the
training medians, typical ranges in the help texts), or many through a CSV upload (bad rows are
listed, good rows classified; the upload stays in memory). Per case: the calibrated
probabilities with threshold and indeterminate band, the decision, warnings for values outside
the training range and the per-feature attributions (integrated gradients).

Layout only: parsing, prediction and attributions are ``bcc_model.modalities.cytology`` calls; the bundle
comes from the app's cache layer ``app_pages/_cache.py``.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from bcc_model import RESEARCH_USE_NOTICE
from bcc_model.reporting.figures import probability_bar
from bcc_model.registry import get_modality
from bcc_model.analysis.predictions import Prediction
from bcc_model.analysis.wording import statement
from bcc_model.models.quality import performance_caution
from bcc_model.modalities.cytology.cases import (FEATURE_NAMES, FEATURES, STATISTICS, input_precision, out_of_range,
                               template_csv)
from bcc_model.modalities.cytology.figures import attribution_figure
from bcc_model.reporting.exports import to_safe_csv
from bcc_model.reporting.formatting import escape_markdown
from app_pages import _cache as cache
from app_pages import _shared as ui

SPEC = get_modality("cytology")
_CASE_KEY = "cytology_case"
_SAMPLES_KEY = "cytology_use_samples"
_MAX_MESSAGES = 20
_TAB_TITLES = {"mean": "Mean", "standard error": "Standard error", "worst": "Worst (mean of the 3 largest)"}


def _case_result(bundle, case: pd.DataFrame, prediction: Prediction, key: str) -> None:
    """One case: range warnings, verdict, probability bar and attribution chart."""
    row = case.iloc[0]
    for message in out_of_range(row, bundle.info["feature_ranges"]):
        st.warning(message, icon=":material/warning:")
    left, right = st.columns([1, 1.4])
    with left:
        ui.render_verdict(prediction, bundle)
        st.plotly_chart(probability_bar(prediction.probabilities, threshold=bundle.threshold,
                                        positive_label=prediction.positive_label,
                                        band=bundle.band_at(ui.conformal_level())),
                        key=f"bar_{key}")
        st.caption(RESEARCH_USE_NOTICE)
    with right:
        with st.spinner("Computing feature attributions…"):
            values = cache.cytology_attributions(bundle, case)
        st.plotly_chart(attribution_figure(FEATURE_NAMES, values, label=prediction.positive_label,
                                           feature_values=row[list(FEATURE_NAMES)].tolist()), key=f"ig_{key}")
        st.caption("Integrated gradients (Sundararajan et al. 2017): each bar is that feature's share of the change "
                   f"in P({prediction.positive_label}) from the average training case to this case; the bars sum "
                   "to that change. They show what moved this model's output, not why the case is benign or "
                   "malignant.")


def _help(feature, bounds: dict) -> str:
    return (f"{feature.explanation} Typical range (1st–99th percentile of the training cases): "
            f"{bounds['p1']:g}–{bounds['p99']:g}; seen in training: {bounds['min']:g}–{bounds['max']:g}.")


def _form_tab(bundle) -> None:
    ranges = bundle.info["feature_ranges"]
    st.caption("Defaults are the medians of the training cases. Lengths are in pixels of the digitised image "
               "(Street et al. 1993); the question-mark icon beside each feature gives its meaning and typical range.")
    with st.form("cytology_form"):
        values = {}
        for statistic, tab in zip(STATISTICS, st.tabs([_TAB_TITLES[s] for s in STATISTICS])):
            columns = tab.columns(5)
            for i, feature in enumerate(f for f in FEATURES if f.statistic == statistic):
                bounds = ranges[feature.name]
                decimals, step = input_precision(bounds["median"])
                values[feature.name] = columns[i % 5].number_input(
                    feature.name, min_value=0.0, value=round(bounds["median"], decimals), step=step,
                    format=f"%.{decimals}f", help=_help(feature, bounds), key=f"cyto_{feature.name}")
        if st.form_submit_button("Classify this case", type="primary", icon=":material/biotech:"):
            st.session_state[_CASE_KEY] = values
    case_values = st.session_state.get(_CASE_KEY)
    if case_values:
        case = pd.DataFrame([case_values], columns=list(FEATURE_NAMES))
        prediction = ui.at_level(bundle, cache.cytology_predictions(bundle, case)[0])
        with st.container(border=True):
            st.subheader("Result for the entered case")
            _case_result(bundle, case, prediction, "form")


def _summary(cases: pd.DataFrame, predictions: list[Prediction], bundle) -> pd.DataFrame:
    positive = bundle.spec.positive_label
    caution = performance_caution(bundle.metrics)
    table = pd.DataFrame({
        "case": cases["group"].to_numpy(),
        "line": cases.index.to_numpy(),
        "verdict": [statement(bundle, p, caution=caution).verdict for p in predictions],  # as every other output
        "indeterminate": [p.indeterminate for p in predictions],
        "conformal set": [" or ".join(p.conformal_set or ()) for p in predictions],
        "set level": [p.level for p in predictions],
        f"P({positive})": [round(p.positive_probability, 6) for p in predictions],  # as ResultRow: no 3.3e-11
        "features out of range": [len(out_of_range(row, bundle.info["feature_ranges"])) for _, row in cases.iterrows()],
    })
    if "label" in cases.columns:
        table.insert(2, "true label", cases["label"].to_numpy())
    return table


def _csv_tab(bundle) -> None:
    c1, c2, c3 = st.columns([2, 1, 1])
    upload = c1.file_uploader(
        "CSV with one case per row", type=["csv"], key="cytology_csv",
        help="Header: the 30 feature names exactly as in the template; optional columns `label` "
             f"({' or '.join(SPEC.labels)}) and `group` (case id). Other columns are ignored.")
    c2.download_button("Download template CSV", template_csv(bundle.info["feature_ranges"]),
                       file_name="cytology_template.csv", on_click="ignore", mime="text/csv", icon=":material/download:")
    sample = SPEC.sample_dir / "cases.csv"
    if c3.button("Try the sample cases", icon=":material/science:", disabled=not sample.is_file(),
                 help="Real WDBC cases from the test split (never used for training or calibration)."):
        st.session_state[_SAMPLES_KEY] = True
    if upload is not None:
        name, data = upload.name, upload.getvalue()
    elif st.session_state.get(_SAMPLES_KEY):
        name, data = "sample cases", sample.read_bytes()
    else:
        st.caption("Uploads stay in this browser session's memory: nothing is saved on the server.")
        return
    cases, problems = cache.cytology_csv(data, SPEC.labels)
    if problems:
        shown = "\n".join(f"- {escape_markdown(message)}" for message in problems[:_MAX_MESSAGES])
        more = f"\n- … and {len(problems) - _MAX_MESSAGES} more" if len(problems) > _MAX_MESSAGES else ""
        outcome = "nothing was classified" if cases.empty else "these rows were skipped, the others classified"
        st.error(f"**{escape_markdown(name)}: {len(problems)} problem(s); {outcome}.**\n{shown}{more}",
                 icon=":material/error:")
    if cases.empty:
        return
    predictions = [ui.at_level(bundle, p) for p in cache.cytology_predictions(bundle, cases)]
    st.markdown(f"**{len(cases)} case(s) classified** from {escape_markdown(name)}")
    summary = _summary(cases, predictions, bundle)
    probability = st.column_config.ProgressColumn(format="percent", min_value=0, max_value=1)
    st.dataframe(summary, hide_index=True, column_config={f"P({bundle.spec.positive_label})": probability})
    st.download_button("Download results (CSV)", to_safe_csv(summary), file_name="cytology_results.csv", on_click="ignore",
                       mime="text/csv", icon=":material/download:")
    chosen = st.selectbox("Show the details of case", range(len(cases)), key="cytology_case_choice",
                          format_func=lambda i: f"{summary['case'].iloc[i]} (line {summary['line'].iloc[i]}): "
                                                f"{summary['verdict'].iloc[i]}")
    with st.container(border=True):
        st.subheader(f"Case {escape_markdown(summary['case'].iloc[chosen])}", anchor=False)
        _case_result(bundle, cases.iloc[[chosen]], predictions[chosen], f"csv_{chosen}")


ui.page_header("Cytology (fine-needle aspirate features)",
               f"{RESEARCH_USE_NOTICE} Classifies a breast mass as {' or '.join(SPEC.labels)} from 30 measurements "
               "of the cell nuclei in a digitised FNA image (WDBC features).")
bundle = ui.get_bundle(SPEC)
if bundle is None:
    st.stop()
form_tab, csv_tab = st.tabs(["One case", "Many cases (CSV)"])
with form_tab:
    _form_tab(bundle)
with csv_tab:
    _csv_tab(bundle)
