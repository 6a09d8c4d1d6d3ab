"""bcc: breast cancer image classification for research use.

Research use only; not a medical device. Nothing in this package imports Streamlit: the
web app in ``app.py``/``app_pages/`` is a thin layer over these functions.

The public API, in the order an image meets it::

    from bcc_model import analyse, get_modality, load_bundle, read_image

    bundle = load_bundle(get_modality("histopathology"))
    result = analyse(bundle, read_image("patch.png").pixels)
    result.prediction.label, result.prediction.probabilities

The names are imported on first use, so ``import bcc_model`` stays cheap (no TensorFlow).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

RESEARCH_USE_NOTICE = "Research use only — not for diagnostic use."

_PUBLIC = {
    "get_modality": "bcc_model.registry",
    "read_image": "bcc_model.imaging.io",
    "load_bundle": "bcc_model.models.bundle",
    "analyse": "bcc_model.analysis.image",
    "Analysis": "bcc_model.analysis.image",
}

__all__ = ["RESEARCH_USE_NOTICE", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'bcc_model' has no attribute {name!r}")
