"""bcc: breast cancer image classification for research use.

Research use only; not a medical device. Nothing in this package imports Streamlit: the
web app in ``app.py``/``app_pages/`` is a thin layer over these functions.
"""

RESEARCH_USE_NOTICE = "Research use only — not for diagnostic use."
