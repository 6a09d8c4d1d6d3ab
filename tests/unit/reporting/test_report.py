"""Tests for bcc_model.report: self-contained, escaped, complete HTML."""

from __future__ import annotations

import base64
import re
from datetime import datetime, timedelta, timezone

import cv2
import numpy as np
import pytest

from bcc_model import RESEARCH_USE_NOTICE
from bcc_model.analysis.rows import ResultRow
from bcc_model.explain.overlay import overlay_heatmap
from bcc_model.analysis.wording import describe
from bcc_model.reporting.report import ReportEntry, build_report_html

SHA = "3f5a" + "0123456789abcdef" * 3 + "9c1e" * 3 + "77aa"
HOSTILE_NAME = '<script>alert("x")</script>.png'


@pytest.fixture
def model_info() -> dict:
    return {
        "modality": "histopathology",
        "name": "seresnet-50px-idc",
        "labels": ["benign", "malignant"],
        "positive_label": "malignant",
        "architecture": {"name": "se_resnet", "n_parameters": 123456},
        "decision": {"threshold": 0.47, "indeterminate_band": [0.35, 0.6]},
        "model_sha256": SHA,
        "created": "2026-11-25T16:00:00+00:00",
    }


LABELS = ("benign", "malignant")


def _row(file: str, probabilities: dict | None = None, label: str = "", indeterminate: bool = False,
         error: str = "", conformal_set: str = "") -> ResultRow:
    if error:
        return ResultRow(file=file, labels=LABELS, error=error)
    level = 0.95 if conformal_set else None
    words = describe(label=label, indeterminate=indeterminate, labels=LABELS, positive="malignant",
                     conformal_set=conformal_set.split(" or ") if conformal_set else None, level=level,
                     threshold=0.47, band=(0.35, 0.6))
    return ResultRow(file=file, labels=LABELS, status="ok", verdict=words.verdict, words=words,
                     indeterminate=indeterminate, probabilities=probabilities, conformal_set=conformal_set,
                     set_level=level)


@pytest.fixture
def entries() -> list[ReportEntry]:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (50, 50, 3), dtype=np.uint8)
    heat = rng.random((7, 7))
    return [
        ReportEntry(_row(HOSTILE_NAME, {"benign": 0.45, "malignant": 0.55}, "malignant", indeterminate=True,
                         conformal_set="benign or malignant"),
                    image, heatmap_overlay=overlay_heatmap(image, heat)),
        ReportEntry(_row("grey.png", {"benign": 0.9, "malignant": 0.1}, "benign", conformal_set="benign"),
                    np.full((30, 40), 128, np.uint8)),
        ReportEntry(_row("broken.tif", error="not a TIFF <file> & unreadable")),
    ]


@pytest.fixture
def html(entries: list[ReportEntry], model_info: dict) -> str:
    generated = datetime(2026, 11, 26, 9, 30, tzinfo=timezone(timedelta(hours=1)))
    return build_report_html(entries, model_info=model_info, generated_at=generated,
                             notice=RESEARCH_USE_NOTICE)


def test_notice_at_top_and_bottom(html: str) -> None:
    assert html.count(RESEARCH_USE_NOTICE) == 2
    assert html.index(RESEARCH_USE_NOTICE) < html.index("seresnet-50px-idc</td>")
    assert html.rindex(RESEARCH_USE_NOTICE) > html.index("broken.tif")


def test_user_strings_are_escaped(html: str) -> None:
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;.png" in html  # markupsafe writes " as &#34;
    assert "not a TIFF &lt;file&gt; &amp; unreadable" in html


def test_model_metadata(html: str) -> None:
    assert SHA in html and SHA[:12] in html
    for text in ("se_resnet", "histopathology", "2026-11-25T16:00:00+00:00",
                 "2026-11-26T09:30:00+01:00", "0.47", "0.35", "0.6"):
        assert text in html


def test_images_are_embedded_pngs(html: str) -> None:
    payloads = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(payloads) == 3  # image + heatmap, grey image; none for the unreadable file
    decoded = cv2.imdecode(np.frombuffer(base64.b64decode(payloads[0]), np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (50, 50, 3)


def test_self_contained_and_printable(html: str) -> None:
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "@media print" in html and "break-before: page" in html


def test_probabilities_and_thresholds_read_as_a_clinician_reads_them(entries, model_info) -> None:
    """One formatter: no "100.0%" for a rounded certainty, thresholds to 2 decimals, never 6."""
    certain = ReportEntry(_row("certain.png", {"benign": 3.3e-11, "malignant": 1.0}, "malignant"),
                          np.full((30, 40), 128, np.uint8))
    info = {**model_info, "decision": {"threshold": 0.339750036597, "indeterminate_band": [0.14, 0.5025]}}
    html = build_report_html([certain], model_info=info, generated_at=datetime(2026, 12, 6, tzinfo=timezone.utc),
                             notice=RESEARCH_USE_NOTICE)
    assert "&gt; 99.9%" in html and "&lt; 0.1%" in html and "100.0%" not in html and "e-11" not in html
    assert "≥ 0.34" in html and "0.14 ≤" in html and "0.339750" not in html


def test_predictions_and_flags(html: str) -> None:
    """An indeterminate result is not a class: no "Prediction: malignant" beside its doubt."""
    assert "Indeterminate: needs expert review" in html and "cannot rule out benign or malignant" in html
    assert "Result: malignant" not in html and "Prediction" not in html
    assert "Conformal set at 95 %: <strong>benign</strong> (" in html  # a single class: no doubt flagged
    assert "55.0%" in html and "Result: benign" in html
    assert html.count('class="entry"') == 3


def test_large_images_are_downscaled(model_info: dict) -> None:
    big = np.zeros((3000, 2400, 3), np.uint8)
    entry = ReportEntry(_row("big.png", {"benign": 1.0, "malignant": 0.0}, "benign"), big)
    html = build_report_html([entry], model_info=model_info,
                             generated_at=datetime.now(timezone.utc), notice="n")
    payload = re.search(r'base64,([A-Za-z0-9+/=]+)"', html).group(1)
    decoded = cv2.imdecode(np.frombuffer(base64.b64decode(payload), np.uint8), cv2.IMREAD_COLOR)
    assert max(decoded.shape[:2]) <= 1200


def test_validation(entries: list[ReportEntry], model_info: dict) -> None:
    with pytest.raises(ValueError, match="timezone"):
        build_report_html(entries, model_info=model_info, generated_at=datetime(2026, 1, 1), notice="n")
    del model_info["model_sha256"]
    with pytest.raises(ValueError, match="model_sha256"):
        build_report_html(entries, model_info=model_info, generated_at=datetime.now(timezone.utc),
                          notice="n")
    with pytest.raises(ValueError, match="not one per class"):
        ReportEntry(_row("x.png", {"benign": 1.0}, "malignant"), np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match="needs an image"):
        ReportEntry(_row("x.png", {"benign": 0.9, "malignant": 0.1}, "benign"))


def test_heatmap_caption_says_which_frame_it_is_drawn_on(entries, model_info) -> None:
    from dataclasses import replace

    framed = replace(entries[0], heatmap_caption="Grad-CAM, as the model sees it (cropped <x>)")
    html = build_report_html([framed], model_info=model_info, generated_at=datetime(2026, 1, 1, tzinfo=timezone.utc),
                             notice=RESEARCH_USE_NOTICE)
    assert "<figcaption>Image as uploaded</figcaption>" in html
    assert "<figcaption>Grad-CAM, as the model sees it (cropped &lt;x&gt;)</figcaption>" in html


def test_lesion_map_figure_only_when_the_entry_has_one(entries, model_info) -> None:
    from dataclasses import replace

    stamp = datetime(2026, 1, 1, tzinfo=timezone.utc)
    without = build_report_html([entries[0]], model_info=model_info, generated_at=stamp, notice=RESEARCH_USE_NOTICE)
    assert "lesion map overlay" not in without
    mapped = replace(entries[0], lesion_map_overlay=entries[0].heatmap_overlay, lesion_map_caption="Lesion map <a>")
    html = build_report_html([mapped], model_info=model_info, generated_at=stamp, notice=RESEARCH_USE_NOTICE)
    assert html.count("<img") == without.count("<img") + 1 and "<figcaption>Lesion map &lt;a&gt;</figcaption>" in html
