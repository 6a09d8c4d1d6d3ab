"""The shipped bundles, each loaded once per test session.

Why: loading a bundle checks the sha256 of every file, reads the Keras model and opens its ONNX
Runtime session (seconds for the 28 MB DenseNet121 and VGG16 files); a dozen tests read the same
three. A ``Bundle`` is never mutated after loading, so sharing it is safe; a test that changes a
bundle's files works on its own copy and loads that with ``load_bundle``.
"""

from __future__ import annotations

import functools

from bcc_model.registry import get_modality
from bcc_model.models.bundle import Bundle, load_bundle

__all__ = ["shipped_bundle"]


@functools.cache
def shipped_bundle(key: str) -> Bundle:
    """The committed bundle of modality ``key`` (``weights/<key>``), loaded on first use."""
    return load_bundle(get_modality(key))
