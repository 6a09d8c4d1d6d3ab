"""The app's one cache layer: every page loads bundles, explainers and results through here.

Why one module: every page needs the same model, the same explainer and the same per-image
results, and a slider move must never re-run the network. So:

* ``st.cache_resource`` holds one ``Bundle`` and one ``Explainer`` per modality and weight file,
  shared by every browser session of the server process. They are never mutated.
* TensorFlow/Keras objects are not documented as thread-safe and Streamlit runs each session's
  script in its own thread, so every call that touches a model holds ``TF_LOCK``.
* ``st.cache_data`` keeps analyses, extra heatmaps, region results and cytology results keyed by
  the sha256 of the uploaded bytes (plus the model's sha256): pixels and bundles are passed as
  ``_``-prefixed, unhashed arguments, so hashing never walks a large array and identical files
  share one result.

Uploads stay in memory (the caches); nothing here writes them to disk or logs their names or
contents. ``bcc_model`` never imports Streamlit; this module and ``_shared.py`` are the bridge.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from bcc_model.analysis.image import Analysis, HeatmapRequest, analyse, explain_analysis, heatmap_key, make_explainer
from bcc_model.analysis.predictions import Prediction
from bcc_model.analysis.region import RegionResult, analyse_region
from bcc_model.cytology.attributions import case_attributions
from bcc_model.cytology.cases import predict_cases, read_cases_csv
from bcc_model.explain.cams import Explainer
from bcc_model.imaging.pixels import LoadedImage
from bcc_model.imaging.io import read_image
from bcc_model.modalities import ModalitySpec, get_modality
from bcc_model.models.bundle import Bundle, check_weights, is_shipped, load_bundle, read_bundle_info

__all__ = ["TF_LOCK", "image_sha", "bundle_view", "loaded_bundle", "explainer", "decode", "analysis", "heatmap",
           "region", "cytology_predictions", "cytology_attributions", "cytology_csv"]

TF_LOCK = threading.Lock()
"""Serialises every TensorFlow call of this process (model load, predict, CAMs, regions)."""


def image_sha(data: bytes) -> str:
    """sha256 of an upload's bytes: the cache key of everything computed from it."""
    return hashlib.sha256(data).hexdigest()


# --- bundles and explainers (shared resources) -----------------------------------------------


_STAMPED = ("model.json", "metrics.json", "MODEL_CARD.md", "history.csv", "model.keras", "lesion_map.keras")


def _stamp(folder: Path) -> tuple[tuple[int, int], ...]:
    """Modification time and size of the bundle's files: a changed file invalidates cached reads and checks."""
    stats = [(folder / name).stat() if (folder / name).exists() else None for name in _STAMPED]
    return tuple((s.st_mtime_ns, s.st_size) if s else (0, 0) for s in stats)


@st.cache_resource(show_spinner=False, max_entries=16)
def _bundle_view(key: str, folder: str, stamp: tuple[int, ...]) -> Bundle:
    """A bundle's files without its network (cheap: no TensorFlow), for sidebar, metrics and card.

    A model-less ``Bundle`` reuses its ``history()``/``model_card()`` readers. It is a shared
    resource, not ``cache_data``: the registry spec it holds contains ``MappingProxyType``
    fields, which pickle cannot copy. Callers treat it as read-only.
    """
    spec = get_modality(key)
    meta, metrics = read_bundle_info(folder)
    check_weights(spec, folder, meta)  # a tampered bundle is never presented as the active model
    return Bundle(spec=spec, model=None, meta=meta, metrics=metrics, path=Path(folder),
                  verified=is_shipped(spec, folder))


def bundle_view(spec: ModalitySpec) -> Bundle:
    """``model.json``, ``metrics.json``, history and card of ``spec``'s bundle (``model`` is None).

    Raises:
        BundleError: the bundle is missing, incomplete, its model.json is invalid, or a weight
            file differs from its recorded sha256 (``BundleTampered``).
    """
    folder = spec.bundle_dir
    return _bundle_view(spec.key, str(folder), _stamp(folder))


@st.cache_resource(show_spinner="Loading the model (first use only)…", max_entries=8)
def _loaded_bundle(key: str, folder: str, model_sha: str) -> Bundle:
    with TF_LOCK:
        return load_bundle(get_modality(key), folder)


def loaded_bundle(spec: ModalitySpec) -> Bundle:
    """The verified, loaded bundle of ``spec`` (one per weight file and server process).

    Raises:
        BundleError: missing, invalid or tampered bundle.
    """
    view = bundle_view(spec)
    return _loaded_bundle(spec.key, str(view.path), view.meta.model_sha256)


@st.cache_resource(show_spinner=False, max_entries=8)
def _explainer(key: str, folder: str, model_sha: str) -> Explainer:
    bundle = _loaded_bundle(key, folder, model_sha)
    with TF_LOCK:
        return make_explainer(bundle)


def explainer(bundle: Bundle) -> Explainer:
    """The shared heatmap explainer of a loaded bundle (built once per weight file)."""
    return _explainer(bundle.spec.key, str(bundle.path), bundle.meta.model_sha256)


# --- per-image results (cached by upload sha256) ---------------------------------------------


@st.cache_data(show_spinner=False, max_entries=256)
def _decode(sha: str, _data: bytes) -> LoadedImage:
    return read_image(_data)


def decode(data: bytes) -> tuple[str, LoadedImage]:
    """``(sha256, decoded image)`` of uploaded bytes.

    Raises:
        ImageReadError: the file is not a readable image (message written for the uploader).
    """
    sha = image_sha(data)
    return sha, _decode(sha, data)


@st.cache_data(show_spinner=False, max_entries=1024)
def _analysis(key: str, model_sha: str, sha: str, _bundle: Bundle, _image: LoadedImage) -> Analysis:
    with TF_LOCK:
        return analyse(_bundle, _image.pixels, image_warnings=_image.warnings)


def analysis(bundle: Bundle, sha: str, image: LoadedImage) -> Analysis:
    """``analysis.image.analyse`` of one upload, once per (model, image); heatmaps come on demand (:func:`heatmap`)."""
    return _analysis(bundle.spec.key, bundle.meta.model_sha256, sha, bundle, image)


@st.cache_data(show_spinner=False, max_entries=2048)
def _heatmap(key: str, model_sha: str, sha: str, method: str, label: str, layer: str, _bundle: Bundle,
             _analysis: Analysis) -> np.ndarray:
    shared = explainer(_bundle)  # outside the lock: building it takes the lock itself
    with TF_LOCK:
        return explain_analysis(_bundle, _analysis, shared, HeatmapRequest(label, method, layer or None))[1]


def heatmap(bundle: Bundle, sha: str, result: Analysis, request: HeatmapRequest) -> np.ndarray:
    """A heatmap on an analysis's model input, once per (model, image, method, class, layer)."""
    key = heatmap_key(bundle, explainer(bundle), request)
    if key in result.heatmaps:
        return result.heatmaps[key]
    return _heatmap(bundle.spec.key, bundle.meta.model_sha256, sha, *key, bundle, result)


@st.cache_data(show_spinner=False, max_entries=4)
def _region(key: str, model_sha: str, sha: str, image_mpp: float, _bundle: Bundle,
            _rgb: np.ndarray) -> RegionResult:
    shared = explainer(_bundle)
    with TF_LOCK:
        return analyse_region(_bundle, _rgb, image_mpp, explainer=shared, top_k=4)


def region(bundle: Bundle, sha: str, rgb: np.ndarray, image_mpp: float) -> RegionResult:
    """Region-mode result of one image at one scale, computed once per (model, image, scale).

    Raises:
        ValueError: greyscale image, or smaller than one patch at the model's scale.
    """
    return _region(bundle.spec.key, bundle.meta.model_sha256, sha, float(image_mpp), bundle, rgb)


# --- cytology (tabular) results --------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=64)
def _cytology_predictions(model_sha: str, cases: pd.DataFrame, _bundle: Bundle) -> list[Prediction]:
    with TF_LOCK:
        return predict_cases(_bundle, cases)


def cytology_predictions(bundle: Bundle, cases: pd.DataFrame) -> list[Prediction]:
    """Calibrated predictions of feature rows, once per (model, cases)."""
    return _cytology_predictions(bundle.meta.model_sha256, cases, bundle)


@st.cache_data(show_spinner=False, max_entries=256)
def _cytology_attributions(model_sha: str, case: pd.DataFrame, _bundle: Bundle) -> np.ndarray:
    with TF_LOCK:
        return case_attributions(_bundle, case)[0]


def cytology_attributions(bundle: Bundle, case: pd.DataFrame) -> np.ndarray:
    """Integrated-gradient attributions of one case, once per (model, case)."""
    return _cytology_attributions(bundle.meta.model_sha256, case, bundle)


@st.cache_data(show_spinner=False, max_entries=32)
def _cytology_csv(sha: str, labels: tuple[str, ...], _data: bytes) -> tuple[pd.DataFrame, list[str]]:
    return read_cases_csv(_data, labels=labels)


def cytology_csv(data: bytes, labels: tuple[str, ...]) -> tuple[pd.DataFrame, list[str]]:
    """``(cases, problems)`` of an uploaded cases CSV, parsed once per file."""
    return _cytology_csv(image_sha(data), labels, data)
