"""The app's one UI helper: cached loaders, cached results, sidebar, notice and error display.

Why it exists: every page needs the same model, the same explainer and the same per-image
results, and a slider move must never re-run the network. So:

* ``st.cache_resource`` holds one ``Bundle`` and one ``Explainer`` per modality and weight file,
  shared by every browser session of the server process. They are never mutated.
* TensorFlow/Keras objects are not documented as thread-safe and Streamlit runs each session's
  script in its own thread, so every call that touches a model holds ``TF_LOCK``.
* ``st.cache_data`` keeps predictions, heatmaps and region results keyed by the sha256 of the
  uploaded bytes (plus the model's sha256): the pixels are passed as ``_``-prefixed, unhashed
  arguments, so hashing never walks a large array and identical files share one result.

Uploads stay in memory (``st.session_state`` and the caches); nothing here writes them to disk
or logs their names or contents. ``bcc_model`` never imports Streamlit; this module is the
only bridge.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from bcc_model import RESEARCH_USE_NOTICE
from bcc_model.models.bundle import Bundle, BundleError, load_bundle, read_bundle_info
from bcc_model.datasets.folders import sample_images
from bcc_model.explain.cams import Explainer
from bcc_model.reporting.figures import headline_table
from bcc_model.imaging.io import LoadedImage, read_image
from bcc_model.models.lesion_head import lesion_maps
from bcc_model.evaluation.model_quality import performance_caution
from bcc_model.modalities import MODALITIES, ModalitySpec, get_modality, modality_keys
from bcc_model.analysis.predictions import Prediction, predict_images
from bcc_model.imaging.preprocess import model_view, to_model_batch
from bcc_model.analysis.region import RegionResult, analyse_region

__all__ = [
    "TF_LOCK", "UPLOAD_TYPES", "SessionImage", "current_modality", "bundle_view", "get_bundle", "get_explainer",
    "decode", "predict", "heatmap", "lesion_map", "view", "region", "sample_files", "remember_image", "session_images", "image_sha",
    "render_notice", "render_sidebar", "render_verdict", "show_error", "page_header", "require_image_modality",
    "supports_region_mode",
]

TF_LOCK = threading.Lock()
"""Serialises every TensorFlow call of this process (model load, predict, CAMs, regions)."""

UPLOAD_TYPES = ("png", "jpg", "jpeg", "tif", "tiff", "bmp", "pgm", "ppm", "webp", "dcm")
_MODALITY_KEY = "modality"
_IMAGES_KEY = "images"
_MAX_SESSION_IMAGES = 64


@dataclass(frozen=True)
class SessionImage:
    """A decoded upload kept for the Explain page: name as uploaded, pixels as analysed."""

    name: str
    sha: str
    pixels: np.ndarray


def image_sha(data: bytes) -> str:
    """sha256 of an upload's bytes: the cache key of everything computed from it."""
    return hashlib.sha256(data).hexdigest()


def current_modality() -> ModalitySpec:
    """The modality selected in the sidebar (the registry's first one before any choice)."""
    return get_modality(st.session_state.get(_MODALITY_KEY, modality_keys()[0]))


# --- bundles -------------------------------------------------------------------------------


def _stamp(folder: Path) -> tuple[int, ...]:
    """Modification times of the bundle's JSON files: a new bundle invalidates cached reads."""
    return tuple((folder / name).stat().st_mtime_ns if (folder / name).exists() else 0
                 for name in ("model.json", "metrics.json", "MODEL_CARD.md", "history.csv"))


@st.cache_resource(show_spinner=False, max_entries=16)
def _bundle_view(key: str, folder: str, stamp: tuple[int, ...]) -> Bundle:
    """A bundle's files without its network (cheap: no TensorFlow), for sidebar, metrics and card.

    A model-less ``Bundle`` reuses its ``history()``/``model_card()`` readers. It is a shared
    resource, not ``cache_data``: the registry spec it holds contains ``MappingProxyType``
    fields, which pickle cannot copy. Callers treat its dicts as read-only.
    """
    info, metrics = read_bundle_info(folder)
    return Bundle(spec=get_modality(key), model=None, info=info, metrics=metrics, path=Path(folder))


def bundle_view(spec: ModalitySpec) -> Bundle:
    """``model.json``, ``metrics.json``, history and card of ``spec``'s bundle (``model`` is None).

    Raises:
        BundleError: the bundle is missing or incomplete.
    """
    folder = spec.bundle_dir
    return _bundle_view(spec.key, str(folder), _stamp(folder))


@st.cache_resource(show_spinner="Loading the model (first use only)…", max_entries=8)
def _load_bundle(key: str, folder: str, model_sha: str) -> Bundle:
    with TF_LOCK:
        return load_bundle(get_modality(key), folder)


@st.cache_resource(show_spinner=False, max_entries=8)
def _load_explainer(key: str, folder: str, model_sha: str) -> Explainer:
    bundle = _load_bundle(key, folder, model_sha)
    with TF_LOCK:
        cam_layer = bundle.info["architecture"].get("cam_layer", bundle.spec.cam_layer)
        return Explainer(bundle.model, bundle.labels, cam_layer)


def _missing_bundle_message(spec: ModalitySpec, err: Exception) -> str:
    return (
        f"No usable {spec.title} model is installed, so nothing can be classified. {err}. "
        f"Train one with `python -m bcc_model.train --modality {spec.key}`, "
        "or point the environment variable BCC_WEIGHTS_DIR at a folder holding a bundle."
    )


def get_bundle(spec: ModalitySpec) -> Bundle | None:
    """The verified, loaded bundle of ``spec``, or ``None`` after showing why on the page."""
    try:
        view = bundle_view(spec)
        return _load_bundle(spec.key, str(view.path), view.info["model_sha256"])
    except (BundleError, KeyError, OSError, ValueError) as err:
        st.error(_missing_bundle_message(spec, err), icon=":material/error:")
        return None


def get_explainer(bundle: Bundle) -> Explainer:
    """The shared heatmap explainer of a loaded bundle (built once per weight file)."""
    return _load_explainer(bundle.spec.key, str(bundle.path), bundle.info["model_sha256"])


# --- per-image results (cached by upload sha256) --------------------------------------------


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
def _predict(key: str, model_sha: str, sha: str, _bundle: Bundle, _pixels: np.ndarray) -> Prediction:
    with TF_LOCK:
        return predict_images(_bundle, [_pixels])[0]


def predict(bundle: Bundle, sha: str, pixels: np.ndarray) -> Prediction:
    """Calibrated prediction of one image, computed once per (model, image)."""
    return _predict(bundle.spec.key, bundle.info["model_sha256"], sha, bundle, pixels)


@st.cache_data(show_spinner=False, max_entries=2048)
def _heatmap(key: str, model_sha: str, sha: str, label: str, method: str, layer: str | None,
             _bundle: Bundle, _pixels: np.ndarray) -> np.ndarray:
    explainer = get_explainer(_bundle)
    batch = to_model_batch([_pixels], _bundle.spec)
    with TF_LOCK:
        return explainer.heatmaps(batch, label, method=method, layer=layer)[0]


def heatmap(bundle: Bundle, sha: str, pixels: np.ndarray, label: str, *, method: str = "Grad-CAM",
            layer: str | None = None) -> np.ndarray:
    """float32 heatmap in [0, 1] at model-input size, computed once per (model, image, class, method, layer)."""
    return _heatmap(bundle.spec.key, bundle.info["model_sha256"], sha, label, method, layer, bundle, pixels)


@st.cache_data(show_spinner=False, max_entries=256)
def _lesion_map(key: str, model_sha: str, sha: str, _bundle: Bundle, _pixels: np.ndarray) -> np.ndarray:
    batch = to_model_batch([_pixels], _bundle.spec)
    with TF_LOCK:
        return lesion_maps(_bundle.lesion_map, batch)[0]


def lesion_map(bundle: Bundle, sha: str, pixels: np.ndarray) -> np.ndarray | None:
    """Lesion probability per model-input pixel from the bundle's lesion head, or ``None`` without one."""
    if bundle.lesion_map is None:
        return None
    return _lesion_map(bundle.spec.key, bundle.info["model_sha256"], sha, bundle, pixels)


@st.cache_data(show_spinner=False, max_entries=256)
def _view(key: str, sha: str, _pixels: np.ndarray) -> np.ndarray:
    return model_view(_pixels, get_modality(key))


def view(spec: ModalitySpec, sha: str, pixels: np.ndarray) -> np.ndarray:
    """What ``spec``'s model sees of an image (``preprocess.model_view``): the frame heatmaps belong on.

    Heatmaps are in model-input pixels; mammography crops and flips before resizing, so an
    overlay on the uploaded image would put the heat in the wrong place.
    """
    return _view(spec.key, sha, pixels)


@st.cache_data(show_spinner=False, max_entries=4)
def _region(key: str, model_sha: str, sha: str, image_mpp: float, _bundle: Bundle,
            _rgb: np.ndarray) -> RegionResult:
    explainer = get_explainer(_bundle)
    with TF_LOCK:
        return analyse_region(_bundle, _rgb, image_mpp, explainer=explainer, top_k=4)


def region(bundle: Bundle, sha: str, rgb: np.ndarray, image_mpp: float) -> RegionResult:
    """Region-mode result of one image at one scale, computed once per (model, image, scale).

    Raises:
        ValueError: greyscale image, or smaller than one patch at the model's scale.
    """
    return _region(bundle.spec.key, bundle.info["model_sha256"], sha, float(image_mpp), bundle, rgb)


# --- samples and the session's images -------------------------------------------------------


def sample_files(spec: ModalitySpec) -> list[tuple[str, bytes]]:
    """``(name, bytes)`` of every bundled sample image of ``spec`` (``data.sample_images``)."""
    paths = sample_images(spec)
    return [(f"sample {p.parent.name}/{p.name}", p.read_bytes()) for p in paths]


def remember_image(name: str, sha: str, pixels: np.ndarray) -> None:
    """Keep a decoded upload in this session (memory only) so other pages can use it."""
    images: dict[str, SessionImage] = st.session_state.setdefault(_IMAGES_KEY, {})
    images.setdefault(sha, SessionImage(name=name, sha=sha, pixels=pixels))
    while len(images) > _MAX_SESSION_IMAGES:  # a long session must not grow without bound
        del images[next(iter(images))]


def session_images() -> list[SessionImage]:
    """Images decoded in this session, oldest first."""
    return list(st.session_state.get(_IMAGES_KEY, {}).values())


# --- frame: notice, sidebar, errors ---------------------------------------------------------


def render_notice() -> None:
    """The permanent research-use banner; ``app.py`` draws it above every page."""
    st.warning(f"**{RESEARCH_USE_NOTICE}** Outputs are model estimates for research; they are not a "
               "diagnosis and must not guide patient care.", icon=":material/warning:")


def page_header(title: str, caption: str) -> None:
    st.title(title)
    st.caption(caption)


def require_image_modality(spec: ModalitySpec) -> None:
    """Stop an image page, with a message, when the selected modality is not an image model."""
    if spec.kind != "image":
        st.info(f"The {spec.title} model takes {spec.kind} data, not images, so this page does not apply. "
                "Its metrics and model card are on the other pages.", icon=":material/info:")
        st.stop()


def supports_region_mode(spec: ModalitySpec) -> bool:
    """Region mode needs a colour patch model with a fixed physical scale (H&E histopathology).

    Whole-image models (``mpp_at_size`` set, e.g. mammography) resize the full image instead.
    """
    return spec.kind == "image" and spec.channels == 3 and spec.mpp is not None and spec.mpp_at_size is None


def show_error(what: str, err: Exception) -> None:
    """An actionable error on the page (never a traceback): what failed, then why."""
    st.error(f"{what}: {err}", icon=":material/error:")


def _headline_lines(metrics: dict) -> list[str]:
    """E.g. "Balanced accuracy 0.900 [0.870, 0.930]" for the sidebar's key test metrics."""
    table = headline_table(metrics)
    keys = list(metrics["headline"])
    return [
        f"{table.index[keys.index(key)]}: {table.iloc[keys.index(key)]['95% CI']}"
        for key in ("balanced_accuracy", "roc_auc", "sensitivity", "specificity")
        if key in keys
    ]


def render_verdict(prediction: Prediction, band: tuple[float, float]) -> None:
    """Predicted class and probability; an indeterminate result is never shown as a plain label."""
    if prediction.indeterminate:
        st.warning(
            f"**Indeterminate** (leaning {prediction.label}): P({prediction.positive_label}) = "
            f"{prediction.positive_probability:.1%} lies in the indeterminate band "
            f"{band[0]:.0%}–{band[1]:.0%}. Needs expert review.",
            icon=":material/help:",
        )
    else:
        st.markdown(f"### Prediction: {prediction.label}")
        st.markdown(f"P({prediction.label}) = **{prediction.probabilities[prediction.label]:.1%}** (calibrated)")


def render_sidebar() -> ModalitySpec:
    """Modality choice and the active model's identity and headline test metrics."""
    with st.sidebar:
        key = st.selectbox("Modality", modality_keys(), key=_MODALITY_KEY,
                           format_func=lambda k: MODALITIES[k].title,
                           help="Each modality has its own model; images of another kind give meaningless results.")
        spec = get_modality(key)
        st.markdown("#### Active model")
        try:
            view = bundle_view(spec)
        except BundleError as err:
            st.error(f"No model installed: {err}")
            return spec
        info, metrics = view.info, view.metrics
        st.markdown(
            f"**{info['name']}**  \n"
            f"Architecture: {info['architecture']['name']} "
            f"({info['architecture'].get('n_parameters', 0):,} parameters)  \n"
            f"Trained: {str(info.get('created', '?'))[:10]}  \n"
            f"Version (sha256): `{info['model_sha256'][:12]}`"
        )
        try:
            lines = _headline_lines(metrics)
        except (ValueError, KeyError) as err:
            st.caption(f"Test metrics unavailable: {err}")
        else:
            st.markdown("\n".join(f"- {line}" for line in lines))
            caution = performance_caution(metrics)
            if caution:
                st.error(caution)
            split = metrics.get("split", "test")
            st.caption(
                f"95% CIs; {split} split: {metrics.get('n_images', '?')} images from "
                f"{metrics.get('n_groups', '?')} unseen {split} patients (never used for training, "
                "calibration or model selection)."
            )
        st.caption(RESEARCH_USE_NOTICE)
    return spec
