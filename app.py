"""bcc web app: router and frame (research use only).

Run with ``streamlit run app.py``. This file only sets up the page, the permanent research-use
notice and the sidebar, then hands over to the selected page; every page lives in
``app_pages/`` and every computation in ``bcc_model`` (reached through the cache layer ``app_pages/_cache.py``).

Why ``app_pages/`` and not ``pages/``: with Streamlit 1.67 a ``pages/`` folder makes a deep link such as
``/metrics`` render without this router, so without the research-use notice
(docs/experiments/2026-12-06-pages-folder.md).
"""

from __future__ import annotations

import streamlit as st

st.set_page_config(
    page_title="bcc — breast cancer image classification (research use)",
    page_icon="🔬",  # an emoji, not a :material/ icon: that favicon is fetched from fonts.gstatic.com
    layout="wide",
)

from app_pages import _shared as ui  # noqa: E402  (set_page_config must come first)

PAGES = [
    st.Page("app_pages/classify.py", title="Classify", icon=":material/biotech:", default=True),
    st.Page("app_pages/explain.py", title="Explain", icon=":material/visibility:"),
    st.Page("app_pages/cytology.py", title="Cytology", icon=":material/science:"),
    st.Page("app_pages/metrics.py", title="Training metrics", icon=":material/monitoring:"),
    st.Page("app_pages/model_card.py", title="Model card", icon=":material/description:"),
]

page = st.navigation(PAGES)
ui.render_notice()
ui.render_sidebar(fixed="cytology" if page.title == "Cytology" else None)
page.run()
