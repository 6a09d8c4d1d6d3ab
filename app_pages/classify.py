"""Classify page (landing): upload images or try the samples; per image the calibrated
probabilities, the decision (or **Indeterminate**) and a Grad-CAM overlay on what the model saw (the
upload is shown beside it), plus the lesion map for bundles trained with a lesion head; batch summary with
CSV and HTML report downloads. A second tab runs region mode on a larger H&E image.

Layout only: decoding, prediction, heatmaps and tiling are ``bcc_model`` calls made through the
cache layer ``app_pages/_cache.py``; one ``analysis.image.analyse`` per upload.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import logging

import pandas as pd
import streamlit as st

from bcc_model import RESEARCH_USE_NOTICE
from bcc_model.analysis.image import HeatmapRequest
from bcc_model.explain.cams import HEATMAP_LIMITATIONS, LESION_MAP_CAPTION
from bcc_model.reporting.figures import probability_bar, probability_map_figure
from bcc_model.imaging.pixels import ImageReadError
from bcc_model.imaging.modality_guess import header_modality, modality_hint
from bcc_model.explain.overlay import (COLORMAPS, DEFAULT_COLORMAP, OVERLAY_STYLES, STYLE_NAMES, enlarge,
                                      for_display, overlay_heatmap)
from bcc_model.models.conformal import level_text
from bcc_model.reporting.exports import to_safe_csv
from bcc_model.reporting.formatting import escape_markdown, probability
from bcc_model.analysis.wording import bar_caption, statement
from bcc_model.analysis.region import explain_tile
from bcc_model.registry import MODALITIES
from bcc_model.analysis.wsi import from_region
from bcc_model.models.quality import performance_caution
from bcc_model.reporting.tilemaps import geojson_text, map_png, tiles_csv
from bcc_model.reporting.report import ReportEntry, build_report_html
from bcc_model.reporting.batch import results_table
from bcc_model.reporting.views import READABLE_PX, heatmap_panel, hung_view, lesion_panel, readable
from bcc_model.analysis.breasts import HANGING, breast_rows, four_view_exams
from bcc_model.imaging.views import SIDES, view_of
from bcc_model.analysis.rows import ResultRow
from bcc_model.imaging.tiling import flagged_fraction, magnification_to_mpp
from app_pages import _cache as cache
from app_pages import _shared as ui

_LOG = logging.getLogger("bcc.app")
_SAMPLES_KEY = "use_samples"
_CANCELLED_KEY = "region_cancelled"
_MAGNIFICATIONS = ("40x", "20x", "10x", "5x", "2.5x")


def _width(pixels) -> int | str:
    """Show small patches enlarged to a readable size; larger images fill their column."""
    return READABLE_PX if pixels.shape[1] < READABLE_PX else "stretch"


def _image_section(index: int, name: str, sha: str, loaded, analysis, bundle) -> ReportEntry:
    """One image's result: image as uploaded, heatmap on what the model saw, verdict, probability bar.

    A refused image shows itself and why it was refused, nothing the model computed (``analysis.wording``).
    """
    pixels, prediction, seen = loaded.pixels, analysis.prediction, analysis.view
    row = ResultRow.of_analysis(bundle, name, analysis, burned_in=loaded.burned_in)
    show = bundle.spec.display
    with st.container(border=True):
        st.subheader(f"{index}. {escape_markdown(name)}", anchor=False)  # no deep link named after a file
        for warning in analysis.warnings:
            st.info(warning, icon=":material/info:")
        shown = readable(for_display(pixels))
        if not row.statement.shows_output:
            left, right = st.columns([1, 2.4])
            left.image(shown, caption=f"Image as uploaded ({pixels.shape[1]}×{pixels.shape[0]} px)", width=_width(shown))
            with right:
                ui.render_verdict(prediction, bundle, analysis.refusal)
            return ReportEntry(row, pixels)
        labels = list(bundle.labels)
        left, middle, right = st.columns([1, 1, 1.4])
        c1, c2, c3 = st.columns([1, 1, 1.4])
        label = c1.selectbox("Class to explain", labels, index=labels.index(prediction.positive_label),
                             key=f"cls_{index}_{sha}", format_func=show,
                             help=f"By default the evidence for {show(prediction.positive_label)}, whatever the verdict.")
        colormap = c2.selectbox("Colour map", list(COLORMAPS), index=list(COLORMAPS).index(DEFAULT_COLORMAP),
                                key=f"cmap_{index}_{sha}")
        style = c2.selectbox("Heatmap style", OVERLAY_STYLES, index=OVERLAY_STYLES.index(bundle.spec.overlay_style),
                             key=f"style_{index}_{sha}", format_func=STYLE_NAMES.get,
                             help="Outlines and high-values-only leave the stain's colours readable.")
        opacity = c3.slider("Heatmap opacity", 0.0, 1.0, 0.45, 0.05, key=f"alpha_{index}_{sha}",
                            disabled=style == "contour")
        left.image(shown, caption=f"Image as uploaded ({pixels.shape[1]}×{pixels.shape[0]} px)", width=_width(shown))
        with middle, st.spinner("Computing Grad-CAM…"):
            cam = cache.heatmap(bundle, sha, analysis, HeatmapRequest(label=label))
            heat = heatmap_panel(analysis, cam, show(label), mpp=bundle.spec.model_mpp if bundle.spec.supports_region_mode
                                 else None, opacity=opacity, colormap=colormap, style=style)
            st.image(heat.image, caption=heat.caption, width=_width(heat.image))
            lesion = lesion_panel(analysis, opacity=opacity, colormap=colormap, style=style)
            if lesion is not None:
                st.image(lesion.image, caption=lesion.caption, width=_width(seen))
        with right:
            ui.render_verdict(prediction, bundle, analysis.refusal)
            band = bundle.band_at(ui.conformal_level())
            positive = show(prediction.positive_label)
            figure = probability_bar({show(k): p for k, p in prediction.probabilities.items()},
                                     threshold=bundle.threshold, positive_label=positive, band=band)
            figure.update_layout(margin={"l": 10, "r": 20, "t": 40, "b": 10})
            st.plotly_chart(figure, key=f"bar_{index}_{sha}", height=230)
            st.caption(bar_caption(positive, bundle.threshold, band, len(labels)))
    return ReportEntry(row, pixels, heatmap_overlay=heat.image, heatmap_caption=heat.caption,
                       lesion_map_overlay=None if lesion is None else lesion.image, lesion_map_caption=LESION_MAP_CAPTION)


def _patches_tab(spec) -> None:
    uploads = st.file_uploader(
        "Upload images (several at once is fine)", type=None, accept_multiple_files=True,
        key=f"uploads_{spec.key}",
        help=f"{spec.title}: the model expects {spec.input_size}×{spec.input_size} px patches"
             + (f" at {spec.mpp:g} µm/px ({spec.magnification})." if spec.mpp else ".")
             + f" Readable: {ui.SUPPORTED_FORMATS}; any other file is listed with the reason it was not analysed.",
    )
    samples = ui.sample_files(spec)
    buttons = st.container(horizontal=True)
    if buttons.button("Try a sample", icon=":material/science:", disabled=not samples,
                      help=f"Classify all {len(samples)} bundled sample images (patients the model never saw)."):
        st.session_state[_SAMPLES_KEY] = True
    if st.session_state.get(_SAMPLES_KEY) and buttons.button("Clear samples"):
        st.session_state[_SAMPLES_KEY] = False
    sources = [(f.name, f.getvalue()) for f in uploads or []]
    if st.session_state.get(_SAMPLES_KEY):
        sources += samples
    if not sources:
        st.caption("Files stay in this browser session's memory: nothing is saved on the server. Uploads belong "
                   "to the selected modality: switching the model starts a new list and never re-runs an image "
                   "through another model.")
        return

    bundle = ui.get_bundle(spec)  # the network loads with the first image, not with the page
    if bundle is None:
        return
    summary = st.container()
    progress = st.progress(0.0, text="Analysing…")
    caution = performance_caution(bundle.metrics)
    entries: list[ReportEntry] = []
    views, hung = [], []  # per entry: which breast and view (mammography), and its picture for the exam layout
    for index, (name, data) in enumerate(sources, start=1):
        progress.progress((index - 1) / len(sources), text=f"Analysing image {index} of {len(sources)}…")
        try:
            sha, loaded = cache.decode(data)
            analysis = cache.analysis(bundle, sha, loaded)
            analysis = replace(analysis, prediction=ui.at_level(bundle, analysis.prediction))
        except (ImageReadError, ValueError) as err:
            ui.show_error(f"{name} could not be analysed", err)
            entries.append(ReportEntry(ResultRow.failed(bundle, name, str(err))))
            views.append(view_of(name, None) if spec.breast_views else None)
            hung.append(None)
            continue
        views.append(view_of(name, loaded.view) if spec.breast_views else None)
        hung.append(analysis if views[-1] is not None and analysis.refusal is None else None)
        ui.remember_image(name, sha, analysis, for_display(loaded.pixels, ui.THUMBNAIL_PX), spec.key)
        try:
            entries.append(_image_section(index, name, sha, loaded, analysis, bundle))
        except Exception:  # one image that cannot be shown must not end the batch
            _LOG.exception("image %d of %d could not be shown", index, len(sources))  # no name: names are PHI
            message = "could not be shown (an unexpected error, logged on the server)"
            st.error(f"{index}. {escape_markdown(name)} {message}", icon=":material/error:")
            entries.append(ReportEntry(ResultRow.failed(bundle, name, message)))
            hung[-1] = None
    progress.progress(1.0, text=f"{len(sources)} of {len(sources)} images analysed")

    with summary:
        st.subheader("Summary")
        rows = [entry.row for entry in entries]
        truth = [ui.sample_truth(row.file, bundle.labels) for row in rows]
        table = results_table(rows, [None if label is None else spec.display(label) for label in truth])
        shown = table.copy()  # on screen, one formatter ("> 99.9%", never "100%"); the CSV keeps the numbers
        for label in rows[0].labels if rows else ():
            shown[f"P({label})"] = [None if p is None or p != p else probability(p) for p in table[f"P({label})"]]
        st.dataframe(shown, hide_index=True)
        info = bundle.info

        def report() -> str:
            return build_report_html(entries, model_info=info, generated_at=datetime.now(timezone.utc),
                                     notice=RESEARCH_USE_NOTICE, verified=bundle.verified,
                                     caution=caution, display_names=bundle.spec.display_names)

        buttons = st.container(horizontal=True)
        buttons.download_button("Download table (CSV)", to_safe_csv(table), file_name="bcc_predictions.csv", on_click="ignore",
                                mime="text/csv", icon=":material/download:")
        buttons.download_button("Download report (HTML)", report, file_name="bcc_report.html", on_click="ignore", mime="text/html",
                                icon=":material/description:")
        st.caption("Heatmaps show where the score for the chosen class came from, not a tumour outline. "
                   "See the Explain page for other methods and their limitations.")
        if spec.breast_views:
            _exams_section(bundle, rows, views, hung)


def _exams_section(bundle, rows, views, hung) -> None:
    """Per breast: each exam hung as radiologists read it (R CC, L CC / R MLO, L MLO) and its breasts' results."""
    breasts = breast_rows(rows, views, bundle)
    if not breasts:
        st.caption("Per-breast results need each view's side: a DICOM header (ImageLaterality) or a file name "
                   "such as R_CC.dcm or LEFT_MLO.png.")
        return
    positive = bundle.spec.display(bundle.spec.positive_label)
    st.subheader("Per breast", anchor=False)
    table = pd.DataFrame([b.as_dict(positive) for b in breasts])
    table[f"P({positive}) breast"] = [None if p is None else probability(p) for p in table[f"P({positive}) breast"]]
    st.dataframe(table, hide_index=True)
    for exam, places in four_view_exams(views):
        st.markdown(f"**{exam}**: " + "; ".join(f"{b.side} breast: {escape_markdown(b.verdict)}"
                                                for b in breasts if b.exam == exam))
        for row_places in (HANGING[:2], HANGING[2:]):
            for column, (side, view) in zip(st.columns(2), row_places):
                index = places.get((side, view))
                label = f"{SIDES[side]} {view}"
                if index is None or hung[index] is None:
                    column.caption(f"{label}: {'not assessed' if index is not None else 'no such view uploaded'}")
                    continue
                column.image(hung_view(hung[index], side), width=_width(hung[index].view),
                             caption=f"{label}: {rows[index].file} · P({positive}) "
                                     f"{probability(rows[index].probabilities[positive])}")


def _clicked_tile(event) -> int | None:
    """The tile index of the point clicked on the region map (its ``customdata``), if any."""
    points = getattr(getattr(event, "selection", None), "points", None) or []
    for point in points:
        data = point.get("customdata")
        data = data[0] if isinstance(data, (list, tuple)) and data else data
        if isinstance(data, (int, float)):
            return int(data)
    return None


def _region_scale(spec, loaded, sha: str) -> float | None:
    """The region's µm per pixel: the file's own where it records one, else what the user says (no silent default).

    ``None`` until the user has given a scale: a wrong scale changes what every tile holds, so a
    file that does not say is never analysed at a guessed one.
    """
    recorded = loaded.mpp
    c1, c2 = st.columns(2)
    mode = c1.radio("Image scale given as", ("µm per pixel", "Objective magnification"), horizontal=True,
                    index=0 if recorded else None, key=f"region_scale_mode_{sha[:16]}")
    if recorded:
        c1.caption(f"Read from the file: {recorded:.3g} µm/px. Change it only if you know the file is wrong.")
    if mode is None:
        st.info("This file does not record its scale. Give it in µm per pixel (the scanner's value) or as the "
                f"objective magnification; nothing is analysed until then. The model was trained at {spec.mpp:g} µm/px "
                f"({spec.magnification}).", icon=":material/straighten:")
        return None
    if mode == "µm per pixel":
        value = c2.number_input("Image scale (µm per pixel)", min_value=0.05, max_value=64.0, value=recorded,
                                step=0.05, format="%.3f", key=f"region_mpp_{sha[:16]}", placeholder="e.g. 0.25",
                                help="The scanner's value (in the slide's metadata or the scanner's report).")
        return None if value is None else float(value)
    magnification = c2.selectbox("Magnification of the image", _MAGNIFICATIONS, index=None, key=f"region_mag_{sha[:16]}",
                                 placeholder="Choose the objective")
    if magnification is None:
        return None
    image_mpp = magnification_to_mpp(float(magnification.rstrip("x")))
    c2.caption(f"≈ {image_mpp:.3g} µm/px (assuming 0.25 µm/px at 40x)")
    return image_mpp


def _run_region(bundle, sha: str, loaded, image_mpp: float, name: str):
    """The region's result at ``image_mpp``, with progress and a Cancel button; ``None`` if cancelled or unusable."""
    cancelled = st.session_state.setdefault(_CANCELLED_KEY, set())
    if (sha, image_mpp) in cancelled:
        st.info("Region analysis was cancelled.", icon=":material/stop_circle:")
        if st.button("Analyse this region again", icon=":material/replay:"):
            cancelled.discard((sha, image_mpp))
            st.rerun()
        return None
    try:
        progress = st.progress(0.0, text="Tiling the region…")
        cancel = st.empty()
        if cancel.button("Cancel", icon=":material/stop_circle:", key="region_cancel"):
            cancelled.add((sha, image_mpp))  # the click stopped the run in progress; do not restart it
            st.rerun()

        def report(done: int, total: int) -> None:
            progress.progress(done / total, text=f"Classified {done:,} of {total:,} tissue tiles…")

        result = cache.region(bundle, sha, loaded.pixels, image_mpp, progress=report)
        progress.empty()
        cancel.empty()
    except (ImageReadError, ValueError) as err:
        ui.show_error(f"{name} could not be analysed", err)
        return None
    return result


def _reset_threshold(validated: float) -> None:
    st.session_state["region_threshold"] = validated


def _region_summary(result, positive: str, p_positive, level: float) -> tuple[float, float, str, bool] | None:
    """The headline share (interval, undecided share), the threshold and view controls; ``None`` without tissue.

    Returns ``(threshold, opacity, view, phone)``.
    """
    if result.n_tiles == 0:
        st.info("No tissue was found: every tile looked like background glass.")
        return None
    shares = result.shares
    m1, m2, m3 = st.columns(3)
    m1.metric(f"Expected {positive} share", f"{shares.expected:.1%}", delta=shares.interval_text(),
              delta_color="off", delta_arrow="off",
              help=f"Mean calibrated P({positive}) over the tissue tiles: what a calibrated model expects the "
                   f"share to be; the interval resamples spatial blocks of tiles.")
    m2.metric(f"Tiles undecided at {level_text(level)}", f"{shares.indeterminate:.1%}",
              help=f"Share of tissue tiles whose {level_text(level)} conformal set holds both classes (P({positive}) in "
                   f"{result.band[0]:.0%}–{result.band[1]:.0%}): the model does not decide them.")
    m3.metric("Tissue tiles analysed", f"{result.n_tiles:,}",
              help=f"{result.tiles.skipped_background:,} background tiles skipped as glass.")
    c1, c2, c3 = st.columns([1.2, 1, 1])
    st.session_state.setdefault("region_threshold", float(result.threshold))
    threshold = c1.slider(f"Outline tiles with P({positive}) at or above", 0.0, 1.0, step=0.01, key="region_threshold",
                          help=f"The validated decision threshold is {result.threshold:.2f}. Moving it changes only "
                               "this view (flagged share and outlined tiles), never the model.")
    flagged = flagged_fraction(p_positive, threshold)
    c1.caption(f"Tissue flagged {positive} at this threshold: **{flagged:.1%}** (counts tiles against one threshold; "
               "read it beside the expected share).")
    if abs(threshold - result.threshold) > 1e-9:
        c1.warning(f"Threshold {threshold:.2f} is not the validated {result.threshold:.2f}: the flagged share and the "
                   "outlines use a value nobody validated.", icon=":material/warning:")
        c1.button(f"Reset to the validated {result.threshold:.2f}", on_click=_reset_threshold, args=(float(result.threshold),),
                  key="region_threshold_reset")
    phone = "Mobi" in (st.context.headers.get("User-Agent") or "")  # a narrow screen: one picture, full width
    view = c2.radio("Map view", ("Side by side", "Map over the tissue"), index=int(phone), key="region_view",
                    help="Side by side: the tissue and its map, zoomed together. Over the tissue: one picture "
                         "(lower the opacity to see the tissue through it).")
    opacity = c3.slider("Map opacity", 0.2, 1.0, 1.0, 0.05, key="region_opacity",
                        help="At 1 the map's colours are exactly those of its colour bar; lower it to see the tissue.")
    st.caption(f"Expected {positive} share {shares.expected:.1%} ({shares.interval_text()}); "
               f"{shares.indeterminate:.1%} of tiles undecided at {level_text(level)}. The flagged share counts tiles "
               "against one threshold and can be far from the true share on a whole slide; read both.")
    return threshold, opacity, view, phone


def _clicked_tile_view(spec, bundle, result, pixels, clicked: int) -> None:
    """The clicked tile beside its Grad-CAM, with its decision and its probability in context and alone."""
    with cache.model_lock(bundle):
        view = explain_tile(bundle, result, pixels, clicked, cache.explainer(bundle))
    x0, y0, _, _ = view.box
    words = statement(bundle, ui.at_level(bundle, view.prediction))
    positive = spec.display(result.positive_label)
    left, right, _ = st.columns([1, 1, 2])
    left.image(enlarge(view.crop, READABLE_PX, result.image_mpp), caption=f"Tile {clicked} at x={x0}, y={y0} px",
               width="stretch")
    right.image(overlay_heatmap(view.crop, view.heatmap, opacity=0.45, style=spec.overlay_style), width="stretch",
                caption=f"Grad-CAM · {words.verdict} · P({positive}) {probability(view.prediction.positive_probability)} · "
                        f"patch alone {probability(result.patch_probabilities[clicked, bundle.spec.positive_index])}")


def _region_downloads(bundle, result, pixels, level: float) -> None:
    """The map as a PNG that stands alone, and the tiles as CSV and QuPath GeoJSON."""
    downloads = st.container(horizontal=True)
    tile_map = from_region(result, pixels)
    downloads.download_button("Download map (PNG)", lambda: map_png(tile_map, bundle, level),
                              file_name="bcc_probability_map.png", on_click="ignore", mime="image/png",
                              icon=":material/download:",
                              help="Title, colour bar, µm scale bar, legend, model and version and the research-use "
                                   "notice are drawn into the picture.")
    downloads.download_button("Download tiles (CSV)", lambda: tiles_csv(tile_map, bundle), file_name="bcc_region.tiles.csv",
                              on_click="ignore", mime="text/csv", icon=":material/table:",
                              help="One row per tissue tile: x0, y0, x1, y1 in image pixels, P(class) per class, the "
                                   "decision, its threshold, the model's version and any caution.")
    downloads.download_button("Download tiles for QuPath (GeoJSON)",
                              lambda: geojson_text(tile_map, bundle, level),
                              file_name="bcc_region.geojson", on_click="ignore", mime="application/geo+json",
                              icon=":material/map:",
                              help="In QuPath: File > Import objects (or drag the file onto the image). Classes are the "
                                   "decision words shown here.")


def _top_tiles(spec, result) -> None:
    """The most suspicious tiles, each with its Grad-CAM, decision and µm scale bar."""
    positive = spec.display(result.positive_label)
    st.subheader(f"Most suspicious tiles (highest P({escape_markdown(positive)}))")
    columns = st.columns(max(len(result.top_indices), 1))
    for rank, (column, crop, cam, prediction, (x0, y0, _, _)) in enumerate(
        zip(columns, result.top_crops, result.top_heatmaps, result.top_predictions, result.top_boxes), start=1
    ):
        words = "indeterminate" if prediction.indeterminate else spec.display(prediction.label)
        column.image(enlarge(crop, READABLE_PX, result.image_mpp), caption=f"#{rank} at x={x0}, y={y0} px",
                     width="stretch")
        column.image(overlay_heatmap(crop, cam, opacity=0.45, style=spec.overlay_style), width="stretch",
                     caption=f"Grad-CAM · {words} · P({positive}) {probability(prediction.positive_probability)}")
    st.caption(HEATMAP_LIMITATIONS)


def _region_tab(spec) -> None:
    st.markdown(
        f"Upload one H&E image larger than a patch (a field of view or a slide region). It is rescaled to the "
        f"model's training scale ({spec.mpp:g} µm/px, {spec.magnification}), cut into "
        f"{spec.input_size}×{spec.input_size} px tiles, glass is skipped, and every tissue tile is classified."
    )
    upload = st.file_uploader("Upload an H&E region", type=None, key=f"region_upload_{spec.key}",
                              help=f"Readable: {ui.SUPPORTED_FORMATS}. The scale is read from TIFF and DICOM "
                                   "metadata where the file records it; otherwise you are asked for it.")
    if upload is None:
        return
    try:
        sha, loaded = cache.decode(upload.getvalue())
    except (ImageReadError, ValueError) as err:
        ui.show_error(f"{upload.name} could not be analysed", err)
        return
    named = header_modality(loaded.dicom_modality)
    if named is not None and named != spec.key:
        # The header's own text never reaches Markdown: the modality it names is shown by its registry title.
        st.warning(f"**Not assessed:** the file's DICOM header names another modality "
                   f"({escape_markdown(MODALITIES[named].title)}), not an H&E slide: choose its model in the sidebar.",
                   icon=":material/block:")
        return
    image_mpp = _region_scale(spec, loaded, sha)
    if image_mpp is None:
        return
    doubt = cache.scale_doubt(sha, loaded.pixels, image_mpp)
    if doubt:
        st.warning(doubt, icon=":material/straighten:")
    bundle = ui.get_bundle(spec)  # the network loads with the first image
    result = None if bundle is None else _run_region(bundle, sha, loaded, image_mpp, upload.name)
    if result is None:
        return
    level = ui.conformal_level()
    result = replace(result, band=bundle.band_at(level),
                     top_predictions=tuple(ui.at_level(bundle, p) for p in result.top_predictions))
    hint = None if header_modality(loaded.dicom_modality) else modality_hint(loaded.pixels, spec.key)  # header first
    if hint:
        st.info(hint, icon=":material/info:")
    positive = spec.display(result.positive_label)
    p_positive = result.probabilities[:, bundle.spec.positive_index]
    controls = _region_summary(result, positive, p_positive, level)
    if controls is None:
        return
    threshold, opacity, view, phone = controls
    event = st.plotly_chart(
        probability_map_figure(loaded.pixels, result.prob_map, label=positive, opacity=opacity,
                               boxes=result.tiles.boxes, positive=p_positive, threshold=threshold,
                               band=result.band, side_by_side=view == "Side by side", mpp=result.image_mpp,
                               plot_width_px=360 if phone else 800),  # tile outlines sized for the screen
        key="region_map", on_select="rerun", selection_mode="points")
    st.caption(f"Uncoloured: not analysed (glass). Red outlines: tiles at or above the threshold; amber: undecided at {level_text(level)} (the tile's "
               f"conformal set holds both classes). Click a tile to see it with its heatmap; zoom either picture and "
               f"the other follows. Slide context: {result.context.describe()} (chosen on whole slides; see the model card).")
    clicked = _clicked_tile(event)
    if clicked is not None and clicked < result.n_tiles:
        _clicked_tile_view(spec, bundle, result, loaded.pixels, clicked)
    _region_downloads(bundle, result, loaded.pixels, level)
    _top_tiles(spec, result)


spec = ui.current_modality()
ui.page_header("Classify images", f"{spec.title}: calibrated class probabilities with Grad-CAM heatmaps.")
ui.require_image_modality(spec)
if not ui.bundle_is_usable(spec):
    st.stop()
if spec.supports_region_mode:
    # A pathologist uploads a field of view or a slide region, not a 50 px patch: region mode first.
    region_tab, patches_tab = st.tabs(["Region (field of view or slide crop)", "Single patches"])
    with region_tab:
        _region_tab(spec)
    with patches_tab:
        _patches_tab(spec)
else:
    _patches_tab(spec)
