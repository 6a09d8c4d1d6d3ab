"""Streamlit AppTest tests for every page of the app, against the committed model bundle.

Each test runs the real ``app.py`` (router, notice, sidebar) headless with
``streamlit.testing.v1.AppTest``; uploads are real sample PNGs. Expected predictions are
computed with ``bcc_model.predict`` directly, so the page is checked against the library, not
against hard-coded numbers that change with every retraining.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from bcc_model.models.bundle import read_bundle_info
from bcc_model.explain.cams import CAM_METHODS, HEATMAP_LIMITATIONS
from bcc_model.reporting.figures import history_figures
from bcc_model.reporting.formatting import probability
from bcc_model.reporting.model_card import selection_tables
from bcc_model.reporting.tables import task_scores_table
from bcc_model.imaging.pixels import ImageReadError
from bcc_model.imaging.io import read_image
from bcc_model.registry import MODALITIES
from bcc_model.analysis.predictions import predict_images
from tests.apptest_helpers import PNG, assert_card_shown, heatmap_images as _heatmap_images, plain, run_app, verdict_text
from tests.support.bundles import shipped_bundle



@pytest.fixture(scope="module")
def bundle(histo_spec):
    """The bundle the app will load (``weights/histopathology``; ``BCC_WEIGHTS_DIR`` overrides)."""
    assert (histo_spec.bundle_dir / "model.json").is_file(), (
        f"no model bundle at {histo_spec.bundle_dir}: train it with python -m bcc_model.train"
    )
    return shipped_bundle(histo_spec.key)


def _run(page: str | None = None) -> AppTest:
    return run_app(page)


def _texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [w.value for w in at.warning] + [c.value for c in at.caption]
    return "\n".join(parts)


def _expected_verdict(bundle, data: bytes) -> str:
    return verdict_text(bundle, predict_images(bundle, [read_image(data).pixels])[0])


def test_upload_classifies_good_files_and_reports_the_bad_one(bundle, sample_files):
    benign = next(p for p in sample_files if p.parent.name == "benign")
    malignant = next(p for p in sample_files if p.parent.name == "malignant")
    files = [(benign.name, benign.read_bytes()), ("bad.png", b"not an image"), (malignant.name, malignant.read_bytes())]
    at = _run()
    at.file_uploader(key="uploads_histopathology").set_value([(name, data, PNG) for name, data in files]).run()
    assert not at.exception, [e.message for e in at.exception]

    with pytest.raises(ImageReadError) as err:
        read_image(b"not an image")
    assert [plain(e.value) for e in at.error] == [f"bad.png could not be analysed: {err.value}"]

    texts = _texts(at)
    for name, data in (files[0], files[2]):
        assert _expected_verdict(bundle, data) in texts
    assert len(at.get("plotly_chart")) == 2  # one probability bar per good image
    assert len(_heatmap_images(at)) == 2
    assert all(url for image in _heatmap_images(at) for url in image.value)

    table = at.dataframe[0].value
    assert list(table["file"]) == [name for name, _ in files]
    assert list(table["verdict"])[1] == "not analysed" and list(table["status"])[1] == "error"
    for row, (name, data) in zip(table.to_dict("records"), files):
        if name == "bad.png":
            assert row["error"] == str(err.value)
            continue
        expected = predict_images(bundle, [read_image(data).pixels])[0]
        words = verdict_text(bundle, expected)
        assert row["verdict"] == ("indeterminate" if expected.indeterminate else words.removeprefix("Result: "))
        assert row["indeterminate"] == expected.indeterminate
        for label in bundle.labels:  # display names ("IDC", "no IDC"), one formatter ("> 99.9%", never "100%")
            assert row[f"P({bundle.spec.display(label)})"] == probability(expected.probabilities[label])
    assert {b.label for b in at.get("download_button")} >= {"Download table (CSV)", "Download report (HTML)"}



def test_the_sidebar_level_sets_the_conformal_set_in_words_the_table_and_the_report(bundle, sample_files):
    """At 95 % the sets grow: the page says each set in words ("IDC or no IDC: can't decide at 95 %"), and
    the table (hence the CSV and the report, which take its rows) carries the set and level the library gives."""
    from bcc_model.analysis.predictions import set_in_words

    chosen = sample_files[:4]
    at = _run()
    at.select_slider(key="conformal_level").set_value(0.95).run()
    at.file_uploader(key="uploads_histopathology").set_value([(p.name, p.read_bytes(), PNG) for p in chosen]).run()
    assert not at.exception, [e.message for e in at.exception]
    texts, table = plain(_texts(at)), at.dataframe[0].value
    expected = [predict_images(bundle, [read_image(p.read_bytes()).pixels], level=0.95)[0] for p in chosen]
    assert any(len(e.conformal_set) == 2 for e in expected), "the samples should hold an undecided one at 95 %"
    show = bundle.spec.display  # the H&E classes in the words a pathologist uses: "IDC", "no IDC", never "benign"
    for row, prediction in zip(table.to_dict("records"), expected):
        assert row["conformal_set"] == " or ".join(map(show, prediction.conformal_set)) and row["set_level"] == 0.95
        assert row["indeterminate"] == prediction.indeterminate
        if len(prediction.conformal_set) == 2:  # undecided: the page names both classes, and no class as a result
            assert row["verdict"] == "indeterminate" and "At 95 % the model cannot rule out no IDC or IDC." in texts
        else:
            words = set_in_words(bundle, prediction)
            assert words in texts and "IDC" in words and "benign" not in words
    assert "benign" not in texts


def test_one_upload_is_preprocessed_once(bundle, sample_files, monkeypatch):
    """Verdict, model view, heatmap and lesion map all come from one preprocessing pass (``analyse``)."""
    import bcc_model.imaging.preprocess as preprocess

    calls = []
    original = preprocess._run

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(preprocess, "_run", counted)
    # Flipped, so no earlier test has this upload's sha256 in the app's caches.
    buffer = io.BytesIO()
    Image.open(sample_files[-1]).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(buffer, format="PNG")
    at = _run()
    at.file_uploader(key="uploads_histopathology").set_value([("flipped.png", buffer.getvalue(), PNG)]).run()
    assert not at.exception, [e.message for e in at.exception]
    assert len(_heatmap_images(at)) == 1
    assert len(calls) == 1


def test_display_controls_never_recompute_predictions(bundle, sample_files, monkeypatch):
    """Opacity and colour map only re-blend the cached heatmap; a new class needs one new CAM."""
    import bcc_model.analysis.image as image_analysis
    from bcc_model.explain.cams import Explainer

    sample = sample_files[0]
    at = _run()
    at.file_uploader(key="uploads_histopathology").set_value([(sample.name, sample.read_bytes(), PNG)]).run()
    before = _heatmap_images(at)[0].value

    calls = {"predict": 0, "heatmaps": 0}

    def counted(name, function):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(image_analysis, "calibrated_probabilities",
                        counted("predict", image_analysis.calibrated_probabilities))
    monkeypatch.setattr(Explainer, "heatmaps", counted("heatmaps", Explainer.heatmaps))
    style = next(s for s in at.selectbox if s.label == "Heatmap style")
    assert style.value == "contour", "H&E heatmaps are outlines by default: the stain stays readable"
    style.set_value("blend").run()
    at.slider[0].set_value(0.8).run()
    next(s for s in at.selectbox if s.label == "Colour map").set_value("viridis").run()
    assert not at.exception
    assert calls == {"predict": 0, "heatmaps": 0}
    assert _heatmap_images(at)[0].value != before  # the overlay itself did change

    explain = next(s for s in at.selectbox if s.label == "Class to explain")
    explain.set_value(next(label for label in bundle.labels if label != explain.value)).run()
    assert calls == {"predict": 0, "heatmaps": 1}


def test_try_a_sample_classifies_every_sample(bundle, sample_files):
    at = _run()
    at.button[0].click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error
    assert len(at.get("plotly_chart")) == len(sample_files)
    assert len(_heatmap_images(at)) == len(sample_files)
    table = at.dataframe[0].value
    assert len(table) == len(sample_files)
    assert table["true label"].tolist() == [bundle.spec.display(path.parent.name) for path in sample_files]
    assessed = table["verdict"].isin(bundle.labels)
    assert (table.loc[assessed, "correct?"] == (table.loc[assessed, "verdict"]
                                                == table.loc[assessed, "true label"])).all()
    assert at.get("progress")[0].value == 100


def test_region_mode_maps_a_grid_of_samples(bundle, sample_files):
    patches = [np.asarray(Image.open(path).convert("RGB")) for path in sample_files[:16]]
    grid = np.concatenate([np.concatenate(patches[r * 4:(r + 1) * 4], axis=1) for r in range(4)], axis=0)
    buffer = io.BytesIO()
    Image.fromarray(grid).save(buffer, format="PNG")
    data = buffer.getvalue()
    at = _run()
    at.file_uploader(key="region_upload_histopathology").set_value(("region.png", data, PNG)).run()
    assert not at.exception, [e.message for e in at.exception]
    # A PNG records no scale: nothing is analysed at a guessed one; the page asks.
    assert not at.metric and any("does not record its scale" in i.value for i in at.info)
    sha = hashlib.sha256(data).hexdigest()[:16]
    at.radio(key=f"region_scale_mode_{sha}").set_value("µm per pixel").run()
    assert not at.metric, "no scale entered yet"
    at.number_input(key=f"region_mpp_{sha}").set_value(4.0).run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error
    positive = bundle.spec.display(bundle.spec.positive_label)
    metrics = {m.label: m.value for m in at.metric}
    analysed = int(metrics["Tissue tiles analysed"].replace(",", ""))
    assert 0 < analysed <= 16
    expected = metrics[f"Expected {positive} share"]
    assert expected.endswith("%") and metrics["Tiles undecided at 90 %"].endswith("%")
    # 16 tiles are one block of 8x8: the page says there is no interval rather than show a zero-width one.
    assert any(m.label == f"Expected {positive} share" and "no interval" in (m.delta or "") for m in at.metric)
    assert any("no interval" in c.value and "read both" in c.value for c in at.caption)
    assert len(at.get("plotly_chart")) == 1  # the probability map (the Patches tab is empty)
    assert {"Download map (PNG)", "Download tiles (CSV)", "Download tiles for QuPath (GeoJSON)"} <= {
        b.label for b in at.get("download_button")}
    assert not at.get("progress"), "the tile progress bar is gone once the map is done"
    assert len(_heatmap_images(at)) == min(4, analysed)
    at.slider(key="region_threshold").set_value(0.0).run()
    assert any(f"Tissue flagged {positive} at this threshold: **100.0%**" in c.value for c in at.caption), \
        "the threshold moves the flagged share live"
    assert any("not the validated" in w.value for w in at.main.warning)
    at.button(key="region_threshold_reset").click().run()  # back to the validated value, warning gone
    assert at.slider(key="region_threshold").value == pytest.approx(bundle.threshold)
    assert not any("not the validated" in w.value for w in at.main.warning)
    at.select_slider(key="conformal_level").set_value(0.95).run()  # wider sets: never fewer undecided tiles
    at95 = {m.label: m.value for m in at.metric}
    assert float(at95["Tiles undecided at 95 %"].rstrip("%")) >= float(metrics["Tiles undecided at 90 %"].rstrip("%"))
    assert any("amber: undecided at 95 %" in c.value for c in at.caption)


def test_explain_page_shows_all_methods_and_limitations(bundle):
    at = _run("app_pages/explain.py")
    at.multiselect(key="explain_methods").set_value(list(CAM_METHODS)).run()
    assert not at.get("progress"), "the progress bar is gone once every method is drawn"
    captions = [caption for image in at.image for caption in image.captions]
    for method in CAM_METHODS:
        assert method in captions
    assert "Image as uploaded" in captions  # image-versus-heatmap comparison
    assert any(caption.startswith("Image as the model sees it") for caption in captions)
    assert any(HEATMAP_LIMITATIONS in i.value for i in at.info)
    assert at.selectbox(key="explain_layer").options


def test_metrics_page_renders_every_chart():
    """One bundle at a time (the page opens fast): training curves, four test-split charts and four tables each."""
    bundled = [spec for spec in MODALITIES.values() if (spec.bundle_dir / "model.json").is_file()]
    at = _run("app_pages/metrics.py")
    assert at.radio(key="metrics_modality").value == "histopathology", "the sidebar's modality first"
    for spec in bundled:
        at.radio(key="metrics_modality").set_value(spec.key).run()
        assert not at.exception, [e.message for e in at.exception]
        keys = {chart.key for chart in at.get("plotly_chart")}
        history = pd.read_csv(spec.bundle_dir / "history.csv")
        curves = {f"{spec.key}_{name}" for name in history_figures(history)}
        assert len(curves) == 4  # loss, accuracy, AUC (train vs validation) and learning rate
        tests = {f"{spec.key}_{name}" for name in ("confusion", "calibration", "roc", "pr")}
        assert keys == curves | tests, "only the chosen bundle is drawn"
        info, metrics = read_bundle_info(spec.bundle_dir)
        assert [header.value for header in at.header] == [f"{spec.title}: {info.name}"]
        # headline, per class, splits, architecture comparison; plus localisation / extra tasks where recorded,
        # and the card's cross-validation, teacher/student and whole-slide tables where the bundle has them
        selection = selection_tables(info.to_json(), metrics)
        assert len(at.dataframe) == 4 + (not task_scores_table(metrics).empty) + len(selection)
        assert "**test split**" in _texts(at)


def test_model_card_page_renders_the_card(histo_spec):
    at = _run("app_pages/model_card.py")
    card = (histo_spec.bundle_dir / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert_card_shown(at, card)
    assert all(e.proto.expanded == (e.label in ("Intended use", "Caveats and recommendations")) for e in at.expander)
    info, _ = read_bundle_info(histo_spec.bundle_dir)
    info = info.to_json()
    facts = _texts(at)
    assert info["name"] in facts and info["model_sha256"][:12] in facts and info["data"]["citation"] in facts


def test_missing_bundle_is_a_message_not_a_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("BCC_WEIGHTS_DIR", str(tmp_path))
    at = _run()
    assert any("No usable" in e.value and "BCC_WEIGHTS_DIR" in e.value for e in at.error)
    assert not at.file_uploader


def test_trust_cues_where_the_eye_is(bundle, sample_files):
    """Region mode first for H&E; heatmaps explain the positive class by default; the sidebar follows Cytology."""
    at = _run()
    assert at.tabs[0].label.startswith("Region")
    at.file_uploader(key="uploads_histopathology").set_value(
        [(sample_files[0].name, sample_files[0].read_bytes(), PNG)]).run()
    assert at.selectbox(key=f"cls_1_{hashlib.sha256(sample_files[0].read_bytes()).hexdigest()}").value == \
        bundle.spec.positive_label
    assert "caution" in at.dataframe[0].value.columns
    at.switch_page("app_pages/cytology.py").run()
    assert any("cytology" in m.value.lower() or "conv1d" in m.value.lower() for m in at.sidebar.markdown)
    at.switch_page("app_pages/classify.py").run()
    assert at.selectbox(key="modality").value == "histopathology", "a visit to Cytology keeps the image modality"


def test_the_first_visit_shows_the_page_without_loading_tensorflow():
    """The Classify page appears before any model loads: TensorFlow is imported with the first image, not the page."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    script = ("import sys\nfrom streamlit.testing.v1 import AppTest\n"
              "at = AppTest.from_file('app.py', default_timeout=600).run()\n"
              "assert not at.exception, [e.message for e in at.exception]\n"
              "assert any('Upload' in u.label for u in at.get('file_uploader')), 'the uploaders are on the page'\n"
              "print('tensorflow loaded:', 'tensorflow' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "tensorflow loaded: False" in done.stdout, done.stdout + done.stderr[-2000:]
