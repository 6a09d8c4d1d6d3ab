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
from dataclasses import dataclass
from datetime import datetime
from typing import Mapping, Sequence

import numpy as np

from bcc_model.analysis.rows import ResultRow
from bcc_model.explain.overlay import encode_png, shrink_to_fit
from bcc_model.reporting.templates import render

__all__ = ["ReportEntry", "build_report_html"]

# Longest side in px of an embedded image: sharp on an A4 page at ~150 dpi, and keeps a report
# of a few dozen large H&E regions to tens of MB instead of gigabytes.
_REPORT_IMAGE_MAX_PX = 1200


@dataclass(frozen=True)
class ReportEntry:
    """One uploaded file's result, as the report shows it: its ``ResultRow`` and its pictures.

    Attributes:
        row: the file's result row (``analysis.rows.ResultRow``), the same the app's table and
            the CSV show; the file name in it is untrusted and escaped in the report.
        image: uint8 HxW grey or HxWx3 RGB as analysed; ``None`` when the file could not be read.
        heatmap_overlay: uint8 RGB explanation overlay (``overlay.overlay_heatmap``), or
            ``None`` when no heatmap was made. Heatmaps live in model-input pixels, so for
            modalities that crop or flip it is drawn on ``preprocess.model_view``, not ``image``.
        heatmap_caption: caption under the overlay; say which frame it is drawn on when that is
            not the uploaded image (e.g. ``preprocess.model_view_caption``).
        lesion_map_overlay: uint8 RGB overlay of the bundle's lesion map (``models/lesion_head.py``) on
            the same frame, or ``None`` for bundles without one.
        lesion_map_caption: caption under it (``explain.cams.LESION_MAP_CAPTION``).
    """

    row: ResultRow
    image: np.ndarray | None = None
    heatmap_overlay: np.ndarray | None = None
    heatmap_caption: str = "Heatmap overlay (regions that drove the prediction)"
    lesion_map_overlay: np.ndarray | None = None
    lesion_map_caption: str = "Lesion map"

    def __post_init__(self) -> None:
        if not self.row.analysed:
            return
        if self.image is None:
            raise ValueError(f"{self.row.file!r}: an analysed entry needs an image")
        if self.row.statement.shows_output and set(self.row.probabilities) != set(self.row.labels):
            raise ValueError(f"{self.row.file!r}: probabilities {list(self.row.probabilities)} are not one per class "
                             f"{list(self.row.labels)}")


def _required(model_info: Mapping, *path: str) -> object:
    """``model_info[path[0]][path[1]]...``, refusing a missing key with the dotted path."""
    value: object = model_info
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            raise ValueError(f"model_info lacks {'.'.join(path)} (see docs/SCHEMAS.md model.json)")
        value = value[key]
    return value


def _data_uri(image: np.ndarray) -> str:
    data = base64.b64encode(encode_png(shrink_to_fit(image, _REPORT_IMAGE_MAX_PX))).decode("ascii")
    return f"data:image/png;base64,{data}"


def _model(model_info: Mapping, display_names: Mapping[str, str]) -> dict:
    """The model facts the report's header table shows; each one is required (classes in display names)."""
    low, high = _required(model_info, "decision", "indeterminate_band")
    positive = str(_required(model_info, "positive_label"))
    return {"name": str(_required(model_info, "name")), "architecture": str(_required(model_info, "architecture", "name")),
            "modality": str(_required(model_info, "modality")), "sha": str(_required(model_info, "model_sha256")),
            "created": str(_required(model_info, "created")), "positive": display_names.get(positive, positive),
            "threshold": float(_required(model_info, "decision", "threshold")), "band": (float(low), float(high))}


def _figures(entry: ReportEntry) -> list[dict]:
    """The entry's images in report order: upload, heatmap overlay, lesion map overlay.

    A refused image shows only itself: its heatmap and lesion map are things the model said.
    """
    if not entry.row.analysed or entry.row.burned_in:  # pixels that may identify the patient stay out
        return []
    if not entry.row.statement.shows_output:
        return [{"src": _data_uri(entry.image), "alt": "image", "caption": "Image as uploaded"}]
    shown = [(entry.image, "image", "Image as uploaded"),
             (entry.heatmap_overlay, "heatmap overlay", entry.heatmap_caption),
             (entry.lesion_map_overlay, "lesion map overlay", entry.lesion_map_caption)]
    return [{"src": _data_uri(image), "alt": alt, "caption": caption} for image, alt, caption in shown
            if image is not None]


def build_report_html(
    entries: Sequence[ReportEntry],
    *,
    model_info: dict,
    generated_at: datetime,
    notice: str,
    verified: bool = False,
    caution: str | None = None,
    display_names: Mapping[str, str] | None = None,
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
        verified: the bundle's files are the shipped ones pinned in the package
            (``Bundle.verified``); otherwise the report says "unverified" beside the version.
        caution: the model's weak-discrimination caution (``performance_caution``), shown above
            the results when given.
        display_names: the modality's words for its labels (``ModalitySpec.display_names``), as the rows use.

    Returns:
        The HTML text (UTF-8 when saved).

    Raises:
        ValueError: ``generated_at`` is naive, or ``model_info`` lacks a shown field.
    """
    if generated_at.tzinfo is None or generated_at.utcoffset() is None:
        raise ValueError("generated_at must be timezone-aware, e.g. datetime.now(timezone.utc)")
    rows = [{"row": e.row, "figures": _figures(e)} for e in entries]
    return render("report.html.j2", model=_model(model_info, display_names or {}), entries=rows, notice=notice,
                  generated=generated_at.isoformat(timespec="seconds"), verified=verified, caution=caution)
