"""Model card page: the bundle's MODEL_CARD.md, after the facts a reader needs first.

The card is written by ``train`` from the same ``model.json``/``metrics.json`` the app uses, so
what it says matches what runs.
"""

from __future__ import annotations

import streamlit as st

from bcc_model import RESEARCH_USE_NOTICE
from bcc_model.models.bundle import BundleError
from bcc_model.reporting.model_card import card_sections
from bcc_model.reporting.tables import headline_table, task_scores_table
from app_pages import _cache as cache
from app_pages import _shared as ui

_OPEN = ("Intended use", "Caveats and recommendations")  # unfolded: what the model is for and where it fails

spec = ui.current_modality()
ui.page_header("Model card", f"{spec.title}: what the model is, what it is for, and how well it did.")
try:
    view = cache.bundle_view(spec)
    card = view.model_card()
except (BundleError, OSError) as err:
    ui.show_error("No model card available", err)
    st.stop()

info, metrics = view.info, view.metrics
st.subheader("Key facts")
low, high = info["decision"]["indeterminate_band"]
positive = spec.display(info["positive_label"])
scale = (f", {info['mpp']:g} µm/px" + (f", {info['magnification']}" if info.get("magnification") else "")
         if info.get("mpp") else "")
shape = info["input_shape"]
# A tabular model's input is a feature vector, (n_features,): no pixels and no scale.
inputs = f"{shape[0]} features per case" if spec.kind == "tabular" else f"{shape[0]}×{shape[1]} px{scale}"
facts = [
    f"**Model:** {info['name']} ({info['architecture']['name']}, "
    f"{info['architecture'].get('n_parameters', 0):,} parameters)",
    f"**Version:** `{info['model_sha256'][:12]}` (short sha256 of the weight file), trained "
    f"{str(info.get('created', '?'))[:10]}",
    f"**Intended use:** {RESEARCH_USE_NOTICE} Research and education on {spec.title} at the training scale "
    f"({inputs}); not for diagnosis, screening, triage or "
    "treatment decisions.",
    f"**Classes:** {', '.join(map(spec.display, info['labels']))} (positive: {positive}).",
    f"**Decision rule:** {positive} when P({positive}) ≥ {info['decision']['threshold']:.2f}; indeterminate "
    f"when {low:.2f} ≤ P({positive}) < {high:.2f} (both chosen on validation data).",
    f"**Data:** {info['data'].get('citation', 'not recorded')}",
    f"**Test set:** {metrics.get('n_images', '?')} {'cases' if spec.kind == 'tabular' else 'images'} from "
    f"{metrics.get('n_groups', '?')} patients unseen "
    "in training.",
]
st.markdown("\n".join(f"- {fact}" for fact in facts))
try:
    st.dataframe(headline_table(metrics, spec.display), width="stretch", **ui.ESTIMATE_COLUMNS)
except ValueError as err:
    ui.show_error("Headline metrics unavailable", err)
scores = task_scores_table(metrics)
if not scores.empty:
    st.markdown("**Localisation and abnormal-vs-normal** (95% CI, n test images)")
    st.dataframe(scores, width="stretch", **ui.ESTIMATE_COLUMNS)
st.divider()
# The card itself, long sections folded; where the model fails stays open.
preamble, sections = card_sections(card, view.path)
st.markdown(preamble)
for section in sections:
    with st.expander(section.title, expanded=section.title in _OPEN):
        st.markdown(section.body)
        numbered = list(enumerate(section.pictures, start=1))
        for start in range(0, len(numbered), 2):
            for column, (number, (path, caption)) in zip(st.columns(2), numbered[start:start + 2]):
                column.image(str(path), caption=f"Picture {number}: {caption}", width="stretch")
