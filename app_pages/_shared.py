"""The app's UI helpers: sidebar, research-use notice, verdict, errors and the session's images.

Loading and caching live in ``app_pages/_cache.py``; this module lays out what it returns.
Uploads stay in memory (``st.session_state``); nothing here writes them to disk or logs their
names or contents.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import streamlit as st

from app_pages import _cache as cache
from bcc_model import RESEARCH_USE_NOTICE
from bcc_model.analysis.image import Analysis
from bcc_model.analysis.predictions import Prediction, prediction_at, set_in_words
from bcc_model.analysis.wording import Statement, statement
from bcc_model.models.conformal import DEFAULT_LEVEL, LEVELS, level_text
from bcc_model.datasets.folders import sample_images
from bcc_model.models.quality import performance_caution
from bcc_model.registry import MODALITIES, ModalitySpec, get_modality, modality_keys
from bcc_model.models.bundle import Bundle, BundleError, BundleTampered, BundleUnverified
from bcc_model.reporting.formatting import escape_markdown, probability
from bcc_model.reporting.tables import headline_table

__all__ = [
    "ESTIMATE_COLUMNS", "SUPPORTED_FORMATS", "THUMBNAIL_PX", "SessionImage", "current_modality", "get_bundle",
    "bundle_is_usable", "sample_files", "remember_image",
    "session_images", "render_notice", "render_sidebar", "render_verdict", "show_error", "page_header",
    "require_image_modality", "short_title", "sample_truth", "conformal_level", "at_level", "table_columns",
]

ESTIMATE_COLUMNS = {"column_order": ["95% CI", "n"],
                    "column_config": {"_index": st.column_config.Column(width="large"),
                                      "95% CI": st.column_config.TextColumn("value [95% CI]", width="medium")}}
"""How a metrics table is shown: one formatted "value [lo, hi]" column (``tables.format_metric``),
never the raw float beside it in another precision."""

SUPPORTED_FORMATS = "PNG, JPEG, TIFF, BMP, PGM/PPM, WebP and DICOM"
"""What ``read_image`` reads. Uploaders accept any file: one it cannot read becomes a row with
the reason, instead of being silently dropped by the browser."""
def table_columns(table) -> dict:
    """``column_config`` that keeps every header and row name readable (no "Pointing ga…", "Bundl…")."""
    config = {"_index": st.column_config.Column(width="large")}
    config.update({str(column): st.column_config.Column(width="medium") for column in table.columns})
    return config


_MODALITY_KEY = "modality"
_LEVEL_KEY = "conformal_level"
_IMAGES_KEY = "images"
_MAX_SESSION_IMAGES = 16
THUMBNAIL_PX = 512
"""Longest side of the copy of an upload a session keeps for display."""


@dataclass(frozen=True)
class SessionImage:
    """An analysed upload kept for the Explain page: name as uploaded, its analysis (model input,
    view, prediction: small), a display thumbnail, and the modality it was analysed with (another
    modality's page never re-runs it silently). The full-resolution pixels are not kept."""

    name: str
    sha: str
    analysis: Analysis
    thumbnail: np.ndarray
    modality: str


def current_modality() -> ModalitySpec:
    """The modality selected in the sidebar (the registry's first one before any choice)."""
    return get_modality(st.session_state.get(_MODALITY_KEY, modality_keys()[0]))


def _missing_bundle_message(spec: ModalitySpec, err: Exception) -> str:
    """Why nothing can be classified, and the fix that fits: restore a damaged bundle, train a missing one."""
    if isinstance(err, (BundleTampered, BundleUnverified)):
        return f"The {spec.title} model was refused, so nothing can be classified: {escape_markdown(err)}."
    return (
        f"No usable {spec.title} model is installed, so nothing can be classified. {escape_markdown(err)}. "
        f"Train one with `python -m bcc_model.train --modality {spec.key}`, "
        "or point the environment variable BCC_WEIGHTS_DIR at a folder holding a bundle."
    )


def get_bundle(spec: ModalitySpec) -> Bundle | None:
    """The verified, loaded bundle of ``spec``, or ``None`` after showing why on the page."""
    try:
        if cache.is_loaded(spec):
            return cache.loaded_bundle(spec)
        # A first load takes 10-20 s on 2 cores: say which step it is in, and how long it took.
        started = time.perf_counter()
        with st.status(f"Loading the {short_title(spec)} model (first use only; about 10–20 s)…") as status:
            status.write("Step 1 of 2: starting TensorFlow…")
            cache.import_tensorflow()
            status.write("Step 2 of 2: verifying the weight files (sha256) and loading the network…")
            bundle = cache.loaded_bundle(spec)
            status.update(label=f"{short_title(spec)} model loaded in {time.perf_counter() - started:.0f} s",
                          state="complete", expanded=False)
        return bundle
    except (BundleError, KeyError, OSError, ValueError) as err:
        st.error(_missing_bundle_message(spec, err), icon=":material/error:")
        return None


def bundle_is_usable(spec: ModalitySpec) -> bool:
    """Whether ``spec``'s bundle is present and intact, without loading TensorFlow; says why not on the page.

    Pages call this first and load the network (:func:`get_bundle`) only once there is an
    image to analyse, so the page appears at once on a first visit.
    """
    try:
        cache.bundle_view(spec)
        return True
    except (BundleError, KeyError, OSError, ValueError) as err:
        st.error(_missing_bundle_message(spec, err), icon=":material/error:")
        return False


# --- samples and the session's images -------------------------------------------------------


def sample_files(spec: ModalitySpec) -> list[tuple[str, bytes]]:
    """``(name, bytes)`` of every bundled sample image of ``spec`` (``data.sample_images``)."""
    paths = sample_images(spec)
    return [(f"sample {p.parent.name}/{p.name}", p.read_bytes()) for p in paths]


def sample_truth(name: str, labels: tuple[str, ...]) -> str | None:
    """The true class of a bundled sample (``"sample <label>/<file>"``); ``None`` for an upload."""
    if not name.startswith("sample "):
        return None
    label = name.removeprefix("sample ").split("/", 1)[0]
    return label if label in labels else None


def remember_image(name: str, sha: str, analysis: Analysis, thumbnail: np.ndarray, modality: str) -> None:
    """Keep an analysed upload in this session (memory only, bounded) so the Explain page can use it."""
    images: dict[tuple[str, str], SessionImage] = st.session_state.setdefault(_IMAGES_KEY, {})
    images.setdefault((modality, sha), SessionImage(name=name, sha=sha, analysis=analysis, thumbnail=thumbnail,
                                                    modality=modality))
    while len(images) > _MAX_SESSION_IMAGES:  # a long session must not grow without bound
        del images[next(iter(images))]


def session_images(modality: str) -> list[SessionImage]:
    """Images decoded in this session for ``modality``, newest first."""
    return [image for image in reversed(st.session_state.get(_IMAGES_KEY, {}).values()) if image.modality == modality]


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


def show_error(what: str, err: Exception) -> None:
    """An actionable error on the page (never a traceback): what failed, then why.

    Both are shown as literal text: ``what`` usually holds a file name, chosen by whoever made the file.
    """
    st.error(f"{escape_markdown(what)}: {escape_markdown(err)}", icon=":material/error:")


def _headline_lines(metrics: dict, spec: ModalitySpec) -> list[str]:
    """E.g. "Balanced accuracy 0.900 [0.870, 0.930]" for the sidebar's key test metrics (in display names)."""
    table = headline_table(metrics, spec.display)
    keys = list(metrics["headline"])
    return [
        f"{table.index[keys.index(key)]}: {table.iloc[keys.index(key)]['95% CI']}"
        for key in ("balanced_accuracy", "roc_auc", "sensitivity", "specificity")
        if key in keys
    ]


def render_verdict(prediction: Prediction, bundle: Bundle, refusal: str | None = None) -> Statement:
    """The verdict where the eye is, in the words every output uses (``analysis.wording``); returns them.

    A refused image gets its reason and nothing the model computed; an indeterminate one names the
    classes the model cannot rule out at the sidebar's level, never a class; a model whose own
    test discrimination is weak shows "model output" in plain text with its caution beside it.
    """
    caution = performance_caution(bundle.metrics)
    words = statement(bundle, prediction, refusal=refusal, caution=caution)
    level = prediction.level
    if words.kind == "not assessed":
        st.warning(f"**Not assessed:** {escape_markdown(refusal.rstrip('. '))}. Nothing the model computed for this image is "
                   "shown: it is not a result.", icon=":material/block:")
        return words
    low, high = bundle.band if level is None else bundle.band_at(level)
    positive = escape_markdown(bundle.spec.display(prediction.positive_label))
    p_label = probability(prediction.probabilities[prediction.label])
    label = escape_markdown(words.label or "")
    if words.kind == "indeterminate":
        st.warning(f"**{words.headline}.** {escape_markdown(words.detail)}", icon=":material/help:")
    elif words.kind == "model output":
        st.markdown(f"Model output: {label}, P({label}) = {p_label} (calibrated; not a result)")
    else:
        st.markdown(f"### Result: {label}")
        st.markdown(f"P({label}) = **{p_label}** (calibrated)")
    if caution:  # beside the output it qualifies, undecided or not
        st.error(caution, icon=":material/report:")
    set_text = escape_markdown(set_in_words(bundle, prediction))
    if set_text and words.kind != "indeterminate":
        st.markdown(f"Conformal set at {level_text(level)}: **{set_text}**")
    if set_text:
        st.caption(f"The set holds the classes the model cannot rule out: at {level_text(level)} it contains the true class "
                   f"for about {level_text(level)} of new patients' images of each class (checked on the test patients; "
                   "see the model card)."
                   + (f" For this model that means undecided while P({positive}) is in {low:.0%}–{high:.0%}."
                      if high > low and len(bundle.labels) == 2 else ""))
    elif words.kind != "indeterminate" and high > low:
        st.caption(f"Outside the indeterminate band ({low:.0%}–{high:.0%} P({positive}), chosen on "
                   "validation data) the model decides; inside it, it does not.")
    return words


def conformal_level() -> float:
    """The conformal level chosen in the sidebar (80, 90 or 95 %; 90 % until the user picks another)."""
    level = st.session_state.get(_LEVEL_KEY, DEFAULT_LEVEL)
    return level if level in LEVELS else DEFAULT_LEVEL


def at_level(bundle: Bundle, prediction: Prediction) -> Prediction:
    """``prediction`` decided with the sets at the sidebar's level (cached analyses hold the default level's)."""
    return prediction_at(bundle, prediction, conformal_level())


def _render_level(bundle: Bundle) -> None:
    """The sidebar's level control, for bundles that carry conformal sets."""
    st.session_state.setdefault(_LEVEL_KEY, DEFAULT_LEVEL)
    st.select_slider("Conformal level", options=LEVELS, key=_LEVEL_KEY,
                     format_func=level_text,
                     help="The set beside each verdict holds the true class for about this share of new patients' "
                          "images of each class. Higher: safer sets, more undecided results; the model card shows "
                          "the coverage measured on the test patients at each level.")


def short_title(spec: ModalitySpec) -> str:
    """The modality's name without its parenthesis, short enough for a select box."""
    return spec.title.split(" (")[0]


def render_sidebar(fixed: str | None = None) -> ModalitySpec:
    """Modality choice and the active model's identity and headline test metrics.

    ``fixed`` names the modality of a page that serves only one (Cytology): the sidebar then
    describes that page's model, not the image modality chosen elsewhere.
    """
    with st.sidebar:
        if fixed is None:
            chosen = st.selectbox("Modality", modality_keys(), key=_MODALITY_KEY,
                                  format_func=lambda k: short_title(MODALITIES[k]),
                                  help="Each modality has its own model; images of another kind are not assessed.")
        else:
            # No greyed image modality on a page that never uses it; the choice is kept for the way back
            # (Streamlit drops an unrendered widget's state unless it is written again).
            chosen = st.session_state.setdefault(_MODALITY_KEY, modality_keys()[0])
            st.session_state[_MODALITY_KEY] = chosen
            st.markdown(f"**Model:** {short_title(MODALITIES[fixed])}")
            st.caption("This page always uses this model; the image pages keep their own choice.")
        spec = get_modality(fixed or chosen)
        st.markdown("#### Active model")
        try:
            view = cache.bundle_view(spec)
        except BundleError as err:
            st.error(_missing_bundle_message(spec, err), icon=":material/error:")
            return spec
        meta, metrics = view.meta, view.metrics
        if view.conformal is not None:
            _render_level(view)
        st.markdown(
            f"**{meta.name}**  \n"
            f"Architecture: {meta.architecture.name} ({meta.architecture.n_parameters:,} parameters)  \n"
            f"Trained: {meta.created[:10] or '?'}  \n"
            f"Version (sha256): `{meta.short_sha}`"
        )
        if not view.verified:
            st.warning("**Unverified bundle:** its files are not the shipped ones pinned in the package "
                       "(retrained here or copied from elsewhere; run because BCC_ALLOW_UNVERIFIED is set). Its "
                       "version is its own hash, and its figures come from its own files.",
                       icon=":material/gpp_maybe:")
        try:
            lines = _headline_lines(metrics, spec)
        except (ValueError, KeyError) as err:
            st.caption(f"Test metrics unavailable: {err}")
        else:
            st.markdown("\n".join(f"- {line}" for line in lines))
            caution = performance_caution(metrics)
            if caution:
                st.error(caution)
            split = metrics.get("split", "test")
            items = "cases" if spec.kind == "tabular" else "images"
            groups = "cases" if spec.kind == "tabular" else "patients"
            st.caption(
                f"95% CIs; {split} split: {metrics.get('n_images', '?')} {items} from "
                f"{metrics.get('n_groups', '?')} unseen {split} {groups} (never used for training, "
                "calibration or model selection)."
            )
        st.caption(RESEARCH_USE_NOTICE)
    return spec
