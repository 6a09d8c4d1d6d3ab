"""A downloadable, printable HTML report of a batch of predictions.

The report is one self-contained HTML file: images are embedded as base64 PNG and the styling
is inline, so it opens offline, can be archived as is, and never contacts a server (no CDN,
fonts or scripts). The print stylesheet puts each image on its own page, so the browser's
"Print → Save as PDF" gives a clean PDF without a PDF library.

Every string that came from a user or a file (file names, error messages, labels, model
metadata) is HTML-escaped: an uploaded file named ``<script>…`` must not run in the reader's
browser.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from types import MappingProxyType
from typing import Mapping, Sequence

import numpy as np

from bcc_model.explain.overlay import encode_png, shrink_to_fit

__all__ = ["ReportEntry", "build_report_html"]

# Longest side in px of an embedded image: sharp on an A4 page at ~150 dpi, and keeps a report
# of a few dozen large H&E regions to tens of MB instead of gigabytes.
_REPORT_IMAGE_MAX_PX = 1200

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1f2a37;
       max-width: 60rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.4; }
h1 { color: #2b5d8a; margin-bottom: 0.2rem; }
.notice { border: 2px solid #b45309; background: #fff7ed; padding: 0.6rem 1rem; font-weight: 600; }
table { border-collapse: collapse; margin: 0.5rem 0; }
th, td { border: 1px solid #cbd5e1; padding: 0.25rem 0.6rem; text-align: left; }
th { background: #f1f5f9; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.images { display: flex; flex-wrap: wrap; gap: 1rem; }
figure { margin: 0; }
figure img { max-width: 28rem; max-height: 28rem; border: 1px solid #cbd5e1; }
.error { color: #991b1b; font-weight: 600; }
.flag { color: #b45309; font-weight: 600; }
code { word-break: break-all; }
@page { size: A4; margin: 15mm; }
@media print {
  body { margin: 0; max-width: none; }
  .entry { break-before: page; page-break-before: always; break-inside: avoid; }
  figure img { max-width: 85mm; max-height: 110mm; }
}
"""


@dataclass(frozen=True)
class ReportEntry:
    """One uploaded file's result, as the report shows it.

    Attributes:
        file_name: the uploaded file's name (untrusted; escaped in the report).
        image: uint8 HxW grey or HxWx3 RGB as analysed; ``None`` when the file could not be
            read.
        heatmap_overlay: uint8 RGB explanation overlay (``overlay.overlay_heatmap``), or
            ``None`` when no heatmap was made. Heatmaps live in model-input pixels, so for
            modalities that crop or flip it is drawn on ``preprocess.model_view``, not ``image``.
        heatmap_caption: caption under the overlay; say which frame it is drawn on when that is
            not the uploaded image (e.g. ``preprocess.model_view_caption``).
        lesion_map_overlay: uint8 RGB overlay of the bundle's lesion map (``lesion_head.py``) on
            the same frame, or ``None`` for bundles without one.
        lesion_map_caption: caption under it (``lesion_head.LESION_MAP_CAPTION``).
        probabilities: label -> calibrated probability in [0, 1], in model-output order.
        predicted_label: label chosen by the decision rule.
        indeterminate: the positive probability fell inside the indeterminate band.
        message: why the file could not be analysed; set means the entry is an error and the
            prediction fields are ignored.
    """

    file_name: str
    image: np.ndarray | None
    heatmap_overlay: np.ndarray | None = None
    heatmap_caption: str = "Heatmap overlay (regions that drove the prediction)"
    lesion_map_overlay: np.ndarray | None = None
    lesion_map_caption: str = "Lesion map"
    probabilities: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    predicted_label: str = ""
    indeterminate: bool = False
    message: str | None = None

    def __post_init__(self) -> None:
        if self.message is not None:
            return
        if self.image is None:
            raise ValueError(f"{self.file_name!r}: an entry without an error message needs an image")
        if self.predicted_label not in self.probabilities:
            raise ValueError(
                f"{self.file_name!r}: predicted_label {self.predicted_label!r} is not among the "
                f"probabilities' labels {list(self.probabilities)}"
            )


def _required(model_info: Mapping, *path: str) -> object:
    """``model_info[path[0]][path[1]]...``, refusing a missing key with the dotted path."""
    value: object = model_info
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            raise ValueError(f"model_info lacks {'.'.join(path)} (see docs/SCHEMAS.md model.json)")
        value = value[key]
    return value


def _img_tag(image: np.ndarray, alt: str) -> str:
    data = base64.b64encode(encode_png(shrink_to_fit(image, _REPORT_IMAGE_MAX_PX))).decode("ascii")
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def _model_section(model_info: Mapping, generated_at: datetime) -> str:
    sha = str(_required(model_info, "model_sha256"))
    low, high = _required(model_info, "decision", "indeterminate_band")
    threshold = float(_required(model_info, "decision", "threshold"))
    positive = str(_required(model_info, "positive_label"))
    rows = {
        "Model": escape(str(_required(model_info, "name"))),
        "Architecture": escape(str(_required(model_info, "architecture", "name"))),
        "Modality": escape(str(_required(model_info, "modality"))),
        "Version": f"<code>{escape(sha[:12])}</code> (short sha256 of the model file)",
        "Model file sha256": f"<code>{escape(sha)}</code>",
        "Model created": escape(str(_required(model_info, "created"))),
        "Report generated": escape(generated_at.isoformat(timespec="seconds")),
        "Decision rule": escape(f"{positive} when P({positive}) ≥ {threshold:g}"),
        "Indeterminate band": escape(
            f"{float(low):g} ≤ P({positive}) < {float(high):g}: label reported, flagged for review"
        ),
    }
    body = "".join(f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in rows.items())
    return f'<table class="model">{body}</table>'


def _entry_section(entry: ReportEntry, index: int) -> str:
    heading = f"<h2>{index}. {escape(entry.file_name)}</h2>"
    if entry.message is not None:
        return (f'<section class="entry">{heading}<p class="error">Not analysed: '
                f"{escape(entry.message)}</p></section>")
    figures = f"<figure>{_img_tag(entry.image, 'image')}<figcaption>Image as uploaded</figcaption></figure>"
    if entry.heatmap_overlay is not None:
        figures += (f"<figure>{_img_tag(entry.heatmap_overlay, 'heatmap overlay')}"
                    f"<figcaption>{escape(entry.heatmap_caption)}</figcaption></figure>")
    if entry.lesion_map_overlay is not None:
        figures += (f"<figure>{_img_tag(entry.lesion_map_overlay, 'lesion map overlay')}"
                    f"<figcaption>{escape(entry.lesion_map_caption)}</figcaption></figure>")
    prob_rows = "".join(
        f'<tr><td>{escape(label)}</td><td class="num">{p:.1%}</td></tr>'
        for label, p in entry.probabilities.items()
    )
    flag = (' <span class="flag">— indeterminate: probability inside the indeterminate band, '
            "review needed</span>" if entry.indeterminate else "")
    return (
        f'<section class="entry">{heading}<div class="images">{figures}</div>'
        f"<p><strong>Prediction: {escape(entry.predicted_label)}</strong>{flag}</p>"
        f"<table><tr><th>Class</th><th>Probability (calibrated)</th></tr>{prob_rows}</table>"
        "</section>"
    )


def build_report_html(
    entries: Sequence[ReportEntry],
    *,
    model_info: dict,
    generated_at: datetime,
    notice: str,
) -> str:
    """Render the report as one self-contained HTML document.

    Args:
        entries: one per uploaded file, in upload order.
        model_info: the bundle's ``model.json`` contents (name, architecture, modality,
            model_sha256, created, positive_label, decision threshold and band are shown).
        generated_at: when the predictions were made; must be timezone-aware so the time is
            unambiguous in an archived report.
        notice: the research-use notice (``bcc_model.RESEARCH_USE_NOTICE``), shown at the top
            and at the bottom.

    Returns:
        The HTML text (UTF-8 when saved).

    Raises:
        ValueError: ``generated_at`` is naive, or ``model_info`` lacks a shown field.
    """
    if generated_at.tzinfo is None or generated_at.utcoffset() is None:
        raise ValueError("generated_at must be timezone-aware, e.g. datetime.now(timezone.utc)")
    notice_html = f'<p class="notice" role="note">{escape(notice)}</p>'
    title = f"Classification report: {escape(str(_required(model_info, 'name')))}"
    sections = "".join(_entry_section(entry, i) for i, entry in enumerate(entries, start=1))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{title}</h1>{notice_html}"
        f"{_model_section(model_info, generated_at)}"
        f"<p>{len(entries)} file(s).</p></header>"
        f"<main>{sections}</main>"
        f'<footer>{notice_html}</footer>'
        "</body></html>\n"
    )
