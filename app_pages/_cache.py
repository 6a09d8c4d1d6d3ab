"""The app's one cache layer: every page loads bundles, explainers and results through here.

Why one module: every page needs the same model, the same explainer and the same per-image
results, and a slider move must never re-run the network. So:

* ``st.cache_resource`` holds one ``Bundle`` and one ``Explainer`` per modality and weight file,
  shared by every browser session of the server process. They are never mutated.
* Keras objects are not documented as thread-safe and Streamlit runs each session's script in
  its own thread, so every call into a network holds that bundle's lock (``model_lock``).
* Decoded uploads, analyses, heatmaps and region results are kept in caches bounded in bytes
  (``_lru.ByteLRU``; together at most ``CACHE_CEILING``), keyed by the sha256 of the uploaded
  bytes (plus the model's sha256), so identical files share one result and a large upload
  cannot pin memory for good. Cytology results (small tables) use ``st.cache_data``.

Uploads stay in memory (the caches); nothing here writes them to disk or logs their names or
contents. ``bcc_model`` never imports Streamlit; this module and ``_shared.py`` are the bridge.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import streamlit as st

from bcc_model.analysis.image import Analysis, HeatmapRequest, analyse, explain_analysis, heatmap_key, make_explainer
from app_pages._lru import ByteLRU
from bcc_model.analysis.predictions import Prediction
from bcc_model.analysis.region import RegionResult, analyse_region
from bcc_model.modalities.cytology.attributions import case_attributions
from bcc_model.modalities.cytology.cases import predict_cases, read_cases_csv
from bcc_model.explain.cams import Explainer
from bcc_model.imaging.pixels import LoadedImage
from bcc_model.imaging.io import read_image
from bcc_model.imaging import scale as physical_scale
from bcc_model.registry import ModalitySpec, get_modality
from bcc_model.models.bundle import (Bundle, check_provenance, check_weights, load_bundle, read_bundle_info,
                                    unverified_allowed)

__all__ = ["model_lock", "image_sha", "bundle_view", "loaded_bundle", "explainer", "decode", "analysis", "heatmap",
           "feature_layers", "region", "cytology_predictions", "cytology_attributions", "cytology_csv", "CACHE_CEILING"]

@st.cache_resource(show_spinner=False)
def _model_locks() -> dict[tuple[str, str], threading.Lock]:
    return {}


_LOCKS_GUARD = threading.Lock()


def model_lock(bundle: Bundle) -> threading.Lock:
    """The lock of one loaded network: calls to the same model are serialised, other models run meanwhile.

    Keras models are not documented as thread-safe and Streamlit runs each session in its own
    thread; one lock per bundle (instead of one for all of TensorFlow) lets a mammogram and an
    H&E patch from two sessions be analysed at the same time.
    """
    key = (bundle.spec.key, bundle.meta.model_sha256)
    with _LOCKS_GUARD:
        return _model_locks().setdefault(key, threading.Lock())


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
    verified = check_provenance(spec, Path(folder), meta, allow_unverified=unverified_allowed())
    return Bundle(spec=spec, model=None, meta=meta, metrics=metrics, path=Path(folder), verified=verified)


def bundle_view(spec: ModalitySpec) -> Bundle:
    """``model.json``, ``metrics.json``, history and card of ``spec``'s bundle (``model`` is None).

    Raises:
        BundleError: the bundle is missing, incomplete, its model.json is invalid, or a weight
            file differs from its recorded sha256 (``BundleTampered``), or it is not the shipped
            bundle and ``BCC_ALLOW_UNVERIFIED`` is not set (``BundleUnverified``).
    """
    folder = spec.bundle_dir
    return _bundle_view(spec.key, str(folder), _stamp(folder))


_LOADED: set[tuple[str, str]] = set()
"""(modality, weight sha256) of the bundles this server process has loaded: the first load shows its steps."""


def is_loaded(spec: ModalitySpec) -> bool:
    """Whether ``spec``'s bundle is already in memory (no model load will make the user wait)."""
    try:
        return (spec.key, bundle_view(spec).meta.model_sha256) in _LOADED
    except BundleError:
        return True  # nothing to load: the caller shows why


def import_tensorflow() -> None:
    """Import TensorFlow (the slowest step of a first load, 5-10 s on 2 cores), so the page can say so."""
    import tensorflow  # noqa: F401


@st.cache_resource(show_spinner=False, max_entries=8)
def _loaded_bundle(key: str, folder: str, model_sha: str) -> Bundle:
    # st.cache_resource lets one thread build it; BCC_ALLOW_UNVERIFIED=1 runs a retrained bundle
    return load_bundle(get_modality(key), folder, allow_unverified=unverified_allowed())


def loaded_bundle(spec: ModalitySpec) -> Bundle:
    """The verified, loaded bundle of ``spec`` (one per weight file and server process).

    Raises:
        BundleError: missing, invalid or tampered bundle.
    """
    view = bundle_view(spec)
    bundle = _loaded_bundle(spec.key, str(view.path), view.meta.model_sha256)
    _LOADED.add((spec.key, view.meta.model_sha256))
    return bundle


@st.cache_resource(show_spinner=False, max_entries=8)
def _explainer(key: str, folder: str, model_sha: str) -> Explainer:
    return make_explainer(_loaded_bundle(key, folder, model_sha))


def explainer(bundle: Bundle) -> Explainer:
    """The shared heatmap explainer of a loaded bundle (built once per weight file)."""
    return _explainer(bundle.spec.key, str(bundle.path), bundle.meta.model_sha256)


# --- per-image results (bounded in bytes, keyed by upload sha256) ----------------------------

DECODED_BUDGET = 192 << 20
"""Bytes of decoded uploads kept for all sessions together (about two 30-megapixel RGB fields)."""
ANALYSIS_BUDGET = 128 << 20
"""Bytes of analyses (model inputs, views, lesion maps) kept for all sessions together."""
HEATMAP_BUDGET = 64 << 20
"""Bytes of heatmaps kept for all sessions together."""
REGION_BUDGET = 256 << 20
"""Bytes of region-mode results (full-resolution probability maps) kept for all sessions together."""
CACHE_CEILING = DECODED_BUDGET + ANALYSIS_BUDGET + HEATMAP_BUDGET + REGION_BUDGET
"""The most all per-upload caches of one server process hold: 640 MiB (docs/performance.md, "Memory")."""


@st.cache_resource(show_spinner=False)
def _caches() -> dict[str, ByteLRU]:
    """The process's byte-bounded caches (one set, shared by every session)."""
    return {"decoded": ByteLRU(DECODED_BUDGET), "analysis": ByteLRU(ANALYSIS_BUDGET),
            "heatmap": ByteLRU(HEATMAP_BUDGET), "region": ByteLRU(REGION_BUDGET)}


def decode(data: bytes) -> tuple[str, LoadedImage]:
    """``(sha256, decoded image)`` of uploaded bytes.

    Raises:
        ImageReadError: the file is not a readable image (message written for the uploader).
    """
    sha = image_sha(data)
    return sha, _caches()["decoded"].get_or_compute(sha, lambda: read_image(data))


def analysis(bundle: Bundle, sha: str, image: LoadedImage) -> Analysis:
    """``analysis.image.analyse`` of one upload, once per (model, image); heatmaps come on demand (:func:`heatmap`)."""
    def compute() -> Analysis:
        with model_lock(bundle):
            return analyse(bundle, image.pixels, image_warnings=image.warnings, header=image.dicom_modality)

    return _caches()["analysis"].get_or_compute((bundle.meta.model_sha256, sha), compute)


def heatmap(bundle: Bundle, sha: str, result: Analysis, request: HeatmapRequest) -> np.ndarray:
    """A heatmap on an analysis's model input, once per (model, image, method, class, layer).

    The explainer serialises its own calls (it holds a separate copy of the network), so heatmaps
    never wait for another session's prediction.
    """
    shared = explainer(bundle)
    key = heatmap_key(bundle, shared, request)
    if key in result.heatmaps:
        return result.heatmaps[key]
    return _caches()["heatmap"].get_or_compute(
        (bundle.meta.model_sha256, sha, *key),
        lambda: explain_analysis(bundle, result, shared, HeatmapRequest(key[1], key[0], key[2] or None))[1])


def feature_layers(bundle: Bundle) -> list[str]:
    """Layers a CAM can target, deepest first (for the Explain page's layer choice)."""
    return explainer(bundle).feature_layers()


def region(bundle: Bundle, sha: str, rgb: np.ndarray, image_mpp: float,
           progress: Callable[[int, int], None] | None = None) -> RegionResult:
    """Region-mode result of one image at one scale, computed once per (model, image, scale).

    ``progress(done, total)`` is called as tiles are classified (the page's progress bar; a
    click on its Cancel button stops the run there).

    Raises:
        ValueError: greyscale image, or smaller than one patch at the model's scale.
    """
    def compute() -> RegionResult:
        shared = explainer(bundle)
        with model_lock(bundle):
            return analyse_region(bundle, rgb, image_mpp, explainer=shared, top_k=4, progress=progress)

    return _caches()["region"].get_or_compute((bundle.meta.model_sha256, sha, float(image_mpp)), compute)


@st.cache_data(show_spinner=False, max_entries=64)
def _scale_doubt(sha: str, image_mpp: float, _rgb: np.ndarray) -> str | None:
    return physical_scale.scale_doubt(_rgb, image_mpp) if _rgb.ndim == 3 else None


def scale_doubt(sha: str, rgb: np.ndarray, image_mpp: float) -> str | None:
    """``imaging.scale.scale_doubt`` of one upload at one scale, once per (image, scale)."""
    return _scale_doubt(sha, float(image_mpp), rgb)


# --- cytology (tabular) results --------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=64)
def _cytology_predictions(model_sha: str, cases: pd.DataFrame, _bundle: Bundle) -> list[Prediction]:
    with model_lock(_bundle):
        return predict_cases(_bundle, cases)


def cytology_predictions(bundle: Bundle, cases: pd.DataFrame) -> list[Prediction]:
    """Calibrated predictions of feature rows, once per (model, cases)."""
    return _cytology_predictions(bundle.meta.model_sha256, cases, bundle)


@st.cache_data(show_spinner=False, max_entries=256)
def _cytology_attributions(model_sha: str, case: pd.DataFrame, _bundle: Bundle) -> np.ndarray:
    with model_lock(_bundle):
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
