"""Training metrics page: how a bundled model trained and how it did on unseen patients.

One model at a time (the sidebar's modality by default, a picker for the others): drawing all
four bundles' fourteen charts made the page take 15-24 s to open.

Every figure and table comes from the bundle's ``history.csv``, ``metrics.json`` and
``model.json`` through ``bcc_model.reporting``; nothing is recomputed here and TensorFlow is not
loaded.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from bcc_model.models.bundle import BundleError
from bcc_model.reporting.curves import calibration_figure, pr_figure, roc_figure
from bcc_model.reporting.figures import confusion_figure, history_figures
from bcc_model.reporting.model_card import selection_tables
from bcc_model.reporting.tables import comparison_table, headline_table, per_class_table, split_table, task_scores_table
from bcc_model.registry import MODALITIES
from app_pages import _cache as cache
from app_pages import _shared as ui

_SELECTION_TITLES = {
    "cross_validation": ("Patient-grouped cross-validation (how the recipe was chosen)",
                         "Every candidate scored on patient folds it never saw; the test patients took no part."),
    "teacher": ("Teacher and student",
                "The cross-validation fold models averaged (teacher) against the bundled single network, on the same "
                "test patients and operating point, with the time per patch on the training machine."),
    "slides": ("Whole slides (region mode on complete test slides)",
               "Every tissue tile scored against its patch label. Left of each picture: the truth; right: the model's "
               "map."),
}


def _selection_and_slides(view) -> None:
    """The model card's cross-validation, teacher/student and whole-slide tables, and the slide pictures."""
    for key, (header, rows) in selection_tables(view.info, view.metrics).items():
        title, caption = _SELECTION_TITLES[key]
        st.markdown(f"**{title}**")
        table = pd.DataFrame(rows, columns=header)
        st.dataframe(table, hide_index=True, width="stretch", column_config=ui.table_columns(table))
        st.caption(caption)
        if key == "slides":
            pictures = [view.path / str(row.get("picture")) for row in view.metrics["slides"]["slides"]
                        if row.get("picture") and (view.path / str(row["picture"])).is_file()]
            for start in range(0, len(pictures), 2):  # every slide, two to a row, each with its colour bar
                for column, picture in zip(st.columns(2), pictures[start:start + 2]):
                    column.image(str(picture), caption=picture.stem.replace("_", " "), width="stretch")


ui.page_header("Training metrics", "Training curves and held-out test results of every bundled model.")

installed = {}
for candidate in MODALITIES.values():
    try:
        installed[candidate.key] = cache.bundle_view(candidate)
    except BundleError:
        continue
if not installed:
    st.error("No model bundle is installed, so there are no metrics to show. Train one with "
             "`python -m bcc_model.train`.", icon=":material/error:")
    st.stop()
current = ui.current_modality().key
keys = list(installed)
chosen = st.radio("Model", keys, index=keys.index(current) if current in keys else 0, horizontal=True,
                  format_func=lambda k: ui.short_title(MODALITIES[k]), key="metrics_modality")
spec, view = MODALITIES[chosen], installed[chosen]
info, metrics = view.info, view.metrics
st.header(f"{spec.title}: {info['name']}")
split = metrics.get("split", "test")
st.markdown(
    f"Results below are on the **{split} split**: {metrics.get('n_images', '?')} "
    f"{'cases' if spec.kind == 'tabular' else 'images'} from {metrics.get('n_groups', '?')} "
    f"{'cases' if spec.kind == 'tabular' else 'whole patients'} held out from training, calibration and model selection. "
    "Intervals are 95% bootstrap CIs over patients. Probabilities are calibrated "
    f"(temperature {metrics.get('temperature', float('nan')):.3g}); decision threshold "
    f"{metrics.get('threshold', float('nan')):.2f}."
)
try:
    st.subheader("Training curves (train vs validation)")
    curves = history_figures(view.history(), best_epoch=info.get("training", {}).get("best_epoch"))
    for row in range(0, len(curves), 2):
        for column, (name, fig) in zip(st.columns(2), list(curves.items())[row:row + 2]):
            column.plotly_chart(fig, key=f"{spec.key}_{name}")

    st.subheader(f"Test results ({split} split)")
    c1, c2 = st.columns(2)
    c1.plotly_chart(confusion_figure(metrics, spec.display), key=f"{spec.key}_confusion")
    c2.plotly_chart(calibration_figure(metrics, spec.display), key=f"{spec.key}_calibration")
    c3, c4 = st.columns(2)
    c3.plotly_chart(roc_figure(metrics, spec.display), key=f"{spec.key}_roc")
    c4.plotly_chart(pr_figure(metrics, spec.display), key=f"{spec.key}_pr")

    t1, t2 = st.columns(2)
    with t1:
        st.markdown("**Headline metrics (95% CI)**")
        st.dataframe(headline_table(metrics, spec.display), width="stretch", **ui.ESTIMATE_COLUMNS)
    with t2:
        st.markdown("**Per class**")
        per_class = per_class_table(metrics, spec.display)
        st.dataframe(per_class, width="stretch", column_config=ui.table_columns(per_class))
        indeterminate = metrics.get("indeterminate")
        if indeterminate:
            low, high = metrics["indeterminate_band"]
            st.markdown(
                f"Indeterminate band {low:.2f}–{high:.2f}: "
                f"{indeterminate['fraction']:.1%} of test images flagged; accuracy on the rest "
                f"{indeterminate['accuracy_outside_band']:.1%} ({indeterminate['n_outside_band']} images)."
            )
    scores = task_scores_table(metrics)
    if not scores.empty:
        st.markdown("**Localisation and abnormal-vs-normal (95% CI, n test images)**")
        st.dataframe(scores, width="stretch", **ui.ESTIMATE_COLUMNS)
        st.caption("Pointing game: share of lesion images whose heatmap peak lies in the annotated lesion. "
                   "Energy inside: share of heatmap mass inside the lesion outline. Abnormal vs normal: "
                   "ROC AUC of P(any lesion class) against normal images.")
    st.markdown("**Data splits (patients and images)**")
    splits = split_table(info)
    st.dataframe(splits, width="stretch", column_config=ui.table_columns(splits))
    st.markdown("**Architecture comparison** (same split and seed; selected on validation ROC AUC)")
    comparison = comparison_table(info)
    st.dataframe(comparison, width="stretch", column_config=ui.table_columns(comparison))
    _selection_and_slides(view)
except (ValueError, KeyError, OSError) as err:
    ui.show_error(f"The {spec.key} bundle's metrics could not be shown", err)

