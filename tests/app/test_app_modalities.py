"""AppTest tests of every page of the full app with the mammography, ultrasound and cytology models.

``test_app.py`` covers histopathology in depth; here each other modality is selected in the
sidebar (through session state) and every page it has is opened once, against the committed
bundles in ``weights/``. Expected verdicts come from ``bcc_model.predict`` directly, not from
hard-coded numbers that change with every retraining. AppTest runs cost seconds each, so each page
is opened once per modality.
"""

from __future__ import annotations

import pytest

from bcc_model.models.quality import performance_caution
from bcc_model.reporting.formatting import probability
from bcc_model.models.bundle import read_bundle_info
from bcc_model.explain.cams import FASTEST_FIRST, HEATMAP_LIMITATIONS, LESION_MAP_CAPTION
from bcc_model.reporting.tables import task_scores_table
from bcc_model.imaging.io import read_image
from bcc_model.registry import get_modality
from bcc_model.analysis.predictions import predict_images
from bcc_model.imaging.preprocess import model_view_caption
from tests.apptest_helpers import (PNG, assert_card_shown, heatmap_images, image_captions, page_texts, run_app,
                                   verdict_text)
from tests.support.bundles import shipped_bundle

WHOLE_IMAGE = ["mammography", "ultrasound"]


def _sample(modality: str, label: str = "malignant"):
    paths = sorted((get_modality(modality).sample_dir / label).glob("*.png"))
    assert paths, f"no {label} sample under samples/{modality}"
    return paths[0]


@pytest.mark.parametrize("modality", WHOLE_IMAGE)
def test_classify_shows_prediction_probabilities_and_heatmap_on_the_model_view(modality, sample_files):
    """A sample gets its library verdict, a probability bar and a heatmap drawn on what the model saw;
    an H&E patch uploaded alongside is not assessed, with the reason."""
    spec = get_modality(modality)
    sample, he_patch = _sample(modality), sample_files[0]
    at = run_app(modality=modality)
    at.file_uploader(key=f"uploads_{modality}").set_value(
        [(sample.name, sample.read_bytes(), PNG), (he_patch.name, he_patch.read_bytes(), PNG)]).run()
    assert not at.exception, [e.message for e in at.exception]
    weak = performance_caution(shipped_bundle(modality).metrics)  # a near-chance model never shows a bold verdict
    # The only error in the page is that caution, beside the one assessed image's output.
    assert [e.value for e in at.main.error] == ([weak] if weak else [])

    prediction = predict_images(shipped_bundle(modality), [read_image(sample.read_bytes()).pixels])[0]
    texts = page_texts(at)
    assert verdict_text(shipped_bundle(modality), prediction) in texts  # a weak model: "Model output", no bold verdict
    assert not any(m.value.startswith("### Result") for m in at.markdown) or not weak
    assert at.dataframe[0].value["caution"].tolist() == [weak or ""] * 2, "the caution beside every row"
    row = at.dataframe[0].value.iloc[0]
    for label, p in prediction.probabilities.items():
        assert row[f"P({label})"] == probability(p)  # the page's one formatter; the CSV keeps the number
    # The refused H&E patch shows itself and why, nothing the model computed: one bar, one heatmap, one lesion map.
    assert len(at.get("plotly_chart")) == 1

    heatmaps = heatmap_images(at)
    assert len(heatmaps) == 1 and all(url for image in heatmaps for url in image.value)
    assert all(model_view_caption(spec) in caption for image in heatmaps for caption in image.captions)
    assert sum(caption.startswith("Image as uploaded") for caption in image_captions(at)) == 2
    lesion_maps = [caption for image in at.image for caption in image.captions if caption.startswith(LESION_MAP_CAPTION)]
    assert len(lesion_maps) == 1, "both bundles ship a lesion map; the refused image shows none"
    assert all("No mark" in caption or "mark(s) at the map's peaks" in caption for caption in lesion_maps)

    # The sample fits its model; the H&E patch gets no verdict, with the reason, in the page and the table.
    refusals = [w.value for w in at.warning if w.value.startswith("**Not assessed:**")]
    assert len(refusals) == 1 and "H\\&E" in refusals[0] and "histopathology" in refusals[0].lower()
    verdicts = at.dataframe[0].value.set_index("file")["verdict"]
    assert verdicts[he_patch.name] == "not assessed" and verdicts[sample.name] != "not assessed"
    assert "H&E" in at.dataframe[0].value.set_index("file").loc[he_patch.name, "reason"]


# The three one-backward-pass methods on each whole-image bundle: Faster-ScoreCAM and SmoothGrad cost a
# minute and a half on VGG16 at 384 px here, and run on the page with the H&E bundle (test_app.py) and on
# every architecture's tiny model (test_architectures.py) instead.
@pytest.mark.parametrize("modality,methods", [(m, FASTEST_FIRST[:3]) for m in WHOLE_IMAGE])
def test_explain_renders_every_method_on_the_model_view(modality, methods):
    at = run_app("app_pages/explain.py", modality=modality)
    assert at.selectbox(key="explain_image").value.startswith("sample ")
    assert at.multiselect(key="explain_methods").value == ["Grad-CAM"], "one method until more are asked for"
    at.multiselect(key="explain_methods").set_value(list(methods)).run()
    assert not at.exception, [e.message for e in at.exception]
    captions = image_captions(at)
    for method in methods:
        assert method in captions
    assert "Image as uploaded" in captions
    assert f"Image {model_view_caption(get_modality(modality))}" in captions
    assert any(HEATMAP_LIMITATIONS in i.value for i in at.info)
    assert any(caption.startswith(LESION_MAP_CAPTION) for caption in captions), "both bundles ship a lesion map"


def _score_tables(at) -> list:
    return [frame.value for frame in at.dataframe if frame.value.index.name == "score"]


def _assert_scores_shown(table, metrics: dict) -> None:
    """Same rows, CIs and counts as ``task_scores_table``: pointing game, energy inside, abnormal-vs-normal AUC."""
    expected = task_scores_table(metrics)
    assert list(table.index) == list(expected.index)
    assert list(table["95% CI"]) == list(expected["95% CI"])
    assert list(table["n"]) == list(expected["n"])
    if "localisation" in metrics:
        assert any(name.startswith("Pointing game") for name in table.index)
        if "energy_inside" in metrics["localisation"]:
            assert any(name.startswith("Energy inside lesion") for name in table.index)
    if "abnormal_vs_normal" in metrics.get("binary_tasks", {}):
        assert any("abnormal vs normal" in name for name in table.index)


def test_training_metrics_show_whole_image_charts_and_localisation_scores():
    """The sidebar's modality opens first; each whole-image bundle adds its localisation/AUC table."""
    at = run_app("app_pages/metrics.py", modality="mammography")
    assert at.radio(key="metrics_modality").value == "mammography"
    for modality in WHOLE_IMAGE:
        at.radio(key="metrics_modality").set_value(modality).run()
        keys = {chart.key for chart in at.get("plotly_chart")}
        tables = _score_tables(at)
        info, metrics = read_bundle_info(get_modality(modality).bundle_dir)
        assert any(info.name in header.value for header in at.header)
        assert {f"{modality}_{name}" for name in ("confusion", "calibration", "roc", "pr")} <= keys
        assert "localisation" in metrics and "binary_tasks" in metrics  # what the committed bundles record
        assert len(tables) == 1
        _assert_scores_shown(tables[0], metrics)


@pytest.mark.parametrize("modality", [*WHOLE_IMAGE, "cytology"])
def test_model_card_renders_for_the_selected_modality(modality):
    spec = get_modality(modality)
    at = run_app("app_pages/model_card.py", modality=modality)
    assert_card_shown(at, (spec.bundle_dir / "MODEL_CARD.md").read_text(encoding="utf-8"))
    info, metrics = read_bundle_info(spec.bundle_dir)
    info = info.to_json()
    assert info["name"] in page_texts(at) and info["model_sha256"][:12] in page_texts(at)
    caution = performance_caution(metrics)
    sidebar_errors = [e.value for e in at.sidebar.error]
    assert sidebar_errors == ([caution] if caution else []), "the sidebar must warn exactly when the model is weak"
    tables = _score_tables(at)
    if task_scores_table(metrics).empty:
        assert not tables
    else:
        assert len(tables) == 1
        _assert_scores_shown(tables[0], metrics)


def test_cytology_selected_opens_its_page_and_image_pages_say_they_do_not_apply():
    at = run_app("app_pages/cytology.py", modality="cytology")
    assert len(at.number_input) == 30  # one input per WDBC feature
    at.switch_page("app_pages/classify.py").run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("does not apply" in i.value for i in at.info)
    assert not at.file_uploader
    at.switch_page("app_pages/metrics.py").run()
    assert not at.exception, [e.message for e in at.exception]
    info, _ = read_bundle_info(get_modality("cytology").bundle_dir)
    info = info.to_json()
    assert any(info["name"] in header.value for header in at.header)


def test_mammograms_named_by_side_and_view_are_hung_as_an_exam_with_per_breast_results():
    """Three views of one exam (file-name tokens): the four places R CC, L CC / R MLO, L MLO and one row per breast."""
    sample = _sample("mammography")
    data = sample.read_bytes()
    at = run_app(modality="mammography")
    at.file_uploader(key="uploads_mammography").set_value(
        [("R_CC.png", data, PNG), ("R_MLO.png", data, PNG), ("L_MLO.png", data, PNG)]).run()
    assert not at.exception, [e.message for e in at.exception]
    assert "Per breast" in [h.value for h in at.subheader]
    breasts = next(frame.value for frame in at.dataframe if "views" in frame.value.columns)
    assert breasts[["exam", "side", "views"]].values.tolist() == [["exam 1", "right", "CC, MLO"],
                                                                ["exam 1", "left", "MLO"]]
    p = predict_images(shipped_bundle("mammography"), [read_image(data).pixels])[0].probabilities["malignant"]
    assert breasts["P(malignant) breast"].tolist() == [probability(p)] * 2, "identical views pool to their own score"
    captions = image_captions(at)
    for place, file in (("right CC", "R_CC.png"), ("right MLO", "R_MLO.png"), ("left MLO", "L_MLO.png")):
        assert f"{place}: {file} · P(malignant) {probability(p)}" in captions
    assert "left CC: no such view uploaded" in page_texts(at)
