"""Explain page: one image, up to five heatmap methods side by side (computed on demand, fastest first), the lesion map for bundles that
ship one, and an image-versus-heatmap view.

Different attribution methods can disagree on the same image; showing them together, with the
limitations text, keeps a heatmap from being read as a tumour outline. Layout only: heatmaps
come from ``analysis.image`` through the cache layer ``app_pages/_cache.py``.
"""

from __future__ import annotations

import streamlit as st

from bcc_model.analysis.image import HeatmapRequest
from bcc_model.explain.cams import CAM_METHODS, DEFAULT_METHOD, FASTEST_FIRST, HEATMAP_LIMITATIONS, LESION_MAP_CAPTION
from bcc_model.imaging.pixels import ImageReadError
from bcc_model.reporting.formatting import probability
from bcc_model.reporting.views import READABLE_PX, readable
from bcc_model.explain.overlay import (COLORMAPS, DEFAULT_COLORMAP, OVERLAY_STYLES, STYLE_NAMES, for_display,
                                      overlay_heatmap)
from app_pages import _cache as cache
from app_pages import _shared as ui

spec = ui.current_modality()
ui.page_header("Explain a prediction", "Which pixels drove the model's score for a class, by five methods.")
ui.require_image_modality(spec)
bundle = ui.get_bundle(spec)
if bundle is None:
    st.stop()

# Images decoded on the Classify page this session, then the bundled samples.
choices: dict[str, tuple[str, bytes | None]] = {}
for image in ui.session_images(spec.key):
    choices[f"uploaded: {image.name}"] = (image.sha, None)
samples = dict(ui.sample_files(spec))
for name in samples:
    choices[name] = ("", samples[name])
if not choices:
    st.info("Upload an image on the Classify page first (no samples are bundled for this modality).")
    st.stop()

def _refused(sha: str) -> bool:
    """Whether a session image was refused (a refused image is never explained by default)."""
    return any(image.sha == sha and image.analysis.refusal for image in ui.session_images(spec.key))


names = list(choices)
default = next((i for i, name in enumerate(names) if not _refused(choices[name][0])), 0)
c1, c2 = st.columns([2, 1])
choice = c1.selectbox("Image", names, index=default, key="explain_image",
                      help=f"Images you classified with the {spec.title} model in this session (newest first), then "
                           "the bundled samples.")
sha, data = choices[choice]
try:
    if data is None:
        kept = next(image for image in ui.session_images(spec.key) if image.sha == sha)
        analysis, shown = kept.analysis, kept.thumbnail
    else:
        sha, loaded = cache.decode(data)
        analysis, shown = cache.analysis(bundle, sha, loaded), for_display(loaded.pixels)
except (ImageReadError, ValueError) as err:
    ui.show_error("This image could not be analysed", err)
    st.stop()
prediction = ui.at_level(bundle, analysis.prediction)
mpp = spec.model_mpp if spec.supports_region_mode else None  # patches at the model's scale: a µm bar


def _enlarged(image):
    """A small patch enlarged pixel-crisp with its scale bar, shown at that size (never stretched to blur)."""
    big = readable(image, mpp)
    return big, (big.shape[1] if big.shape[1] < 2 * READABLE_PX else "stretch")


words = ui.render_verdict(prediction, bundle, analysis.refusal)
if not words.shows_output:
    image, width = _enlarged(shown)
    st.image(image, caption="Image as uploaded", width=width)
    st.caption("A refused image has no result, so there is nothing to explain. Choose another image above.")
    st.stop()

show = spec.display
labels = list(bundle.labels)
label = c2.selectbox("Class to explain", labels, index=labels.index(prediction.positive_label), key="explain_label",
                     format_func=show,
                     help=f"By default the evidence for {show(prediction.positive_label)}, whatever the verdict.")
explainer = cache.explainer(bundle)
layers = cache.feature_layers(bundle)
default_layer = explainer.cam_layer if explainer.cam_layer in layers else layers[0]
with st.expander("Advanced: target layer"):
    layer = st.selectbox("Target layer (CAM methods)", layers, index=layers.index(default_layer), key="explain_layer",
                         help="Deeper layers give coarser, more class-specific maps; SmoothGrad ignores this.")
c4, c5 = st.columns(2)
colormap = c4.selectbox("Colour map", list(COLORMAPS), index=list(COLORMAPS).index(DEFAULT_COLORMAP),
                        key="explain_cmap")
style = c4.selectbox("Heatmap style", OVERLAY_STYLES, index=OVERLAY_STYLES.index(spec.overlay_style),
                     format_func=STYLE_NAMES.get, key="explain_style")
opacity = c5.slider("Heatmap opacity", 0.0, 1.0, 0.5, 0.05, key="explain_alpha", disabled=style == "contour")

st.caption("Calibrated: " + ", ".join(f"P({show(k)}) {probability(v)}" for k, v in prediction.probabilities.items()))

# Heatmaps are in model-input pixels: draw them on what the model saw (cropped, flipped, resized
# for mammography), never on the upload, or the heat lands beside the tissue that caused it.
seen, seen_caption = analysis.view, analysis.view_caption
st.subheader("Methods side by side")
st.caption(f"Heatmaps are drawn on the image {seen_caption}.")
chosen = st.multiselect("Methods", FASTEST_FIRST, default=[DEFAULT_METHOD], key="explain_methods",
                        help="Each method is computed when you add it, fastest first, and kept for this image.")


seen_big, seen_width = _enlarged(seen)


def draw(method: str):
    cam = cache.heatmap(bundle, sha, analysis, HeatmapRequest(label=label, method=method, layer=layer))
    return overlay_heatmap(seen_big, cam, opacity=opacity, colormap=colormap, style=style)


overlays = {}
progress = st.progress(0.0)
methods = [method for method in FASTEST_FIRST if method in chosen]
for done, method in enumerate(methods):
    progress.progress(done / len(methods), text=f"Computing {method} ({done + 1} of {len(methods)})…")
    overlays[method] = draw(method)
progress.empty()
for column, (method, overlay) in zip(st.columns(max(len(overlays), 1)), overlays.items()):
    column.image(overlay, caption=method, width=seen_width)

lesion = analysis.lesion_map
if lesion is not None:
    st.subheader("Lesion map")
    left, _ = st.columns([1, 2])
    left.image(overlay_heatmap(seen_big, lesion, opacity=opacity, colormap=colormap, style=style),
               caption=LESION_MAP_CAPTION, width=seen_width)

st.subheader("Image versus heatmap")
method = st.selectbox("Method", list(CAM_METHODS), index=list(CAM_METHODS).index(DEFAULT_METHOD),
                      key="explain_compare_method")
# Pixel-crisp at a bounded size with a scale bar: a 50 px patch stretched to the column is all blur.
original, model_input, right = st.columns(3)
shown_big, shown_width = _enlarged(shown)
original.image(shown_big, caption="Image as uploaded", width=shown_width)
model_input.image(seen_big, caption=f"Image {seen_caption}", width=seen_width)
right.image(overlays[method] if method in overlays else draw(method), caption=f"{method} for “{show(label)}”",
            width=seen_width)

st.info(HEATMAP_LIMITATIONS, icon=":material/info:")
st.caption("Methods: Grad-CAM (Selvaraju et al. 2017), Grad-CAM++ (Chattopadhay et al. 2018), "
           "Faster-ScoreCAM (Wang et al. 2020), LayerCAM (Jiang et al. 2021), SmoothGrad (Smilkov et al. 2017).")
