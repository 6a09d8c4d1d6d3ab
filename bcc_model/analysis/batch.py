"""A batch of files, one result row each: the engine behind ``python -m bcc_model.predict --out``.

Every file goes through the same ``analysis.image.analyse`` as an upload, or, in region mode,
through ``analysis.wsi.analyse_slide``. A file that cannot be read becomes a row with its error;
nothing stops the batch. Rows carry no DICOM tag and no pixel data, only the name the user gave.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bcc_model.analysis.image import Analysis, HeatmapRequest, analyse
from bcc_model.analysis.wsi import SlideResult, analyse_slide
from bcc_model.explain.cams import Explainer
from bcc_model.imaging.io import read_image
from bcc_model.imaging.pixels import ImageReadError
from bcc_model.imaging.sources import InputItem
from bcc_model.imaging.wsi import open_slide
from bcc_model.models.bundle import Bundle

__all__ = ["BatchResult", "BatchSettings", "analyse_item", "slide_item", "process_item"]


@dataclass(frozen=True)
class BatchResult:
    """One file's row, with what it takes to write its extra files (heatmap overlay, tile maps)."""

    row: dict
    analysis: Analysis | None = None
    slide: SlideResult | None = None
    extras: dict = field(default_factory=dict)


@dataclass(frozen=True)
class BatchSettings:
    """How every file of a batch is analysed: whole images, or tile maps (``region``) at ``mpp``."""

    region: bool = False
    mpp: float | None = None
    tile_batch: int = 64
    heatmaps: bool = False


def process_item(bundle: Bundle, item: InputItem, settings: BatchSettings, *, explainer: Explainer | None = None,
                 progress=None) -> BatchResult:
    """One file as the command line asks: the function both engines (local, Ray) run per file."""
    if settings.region:
        return slide_item(bundle, item, mpp=settings.mpp, progress=progress, batch_tiles=settings.tile_batch)
    return analyse_item(bundle, item, explainer=explainer)


def _base_row(bundle: Bundle, name: str) -> dict:
    return {"file": name, "status": "error", "verdict": "", "label": "", "indeterminate": None,
            **{f"P({label})": None for label in bundle.labels}, "reason": "", "warnings": "", "error": "",
            "model": bundle.meta.name, "model_version": bundle.short_sha, "provenance": bundle.provenance}


def analyse_item(bundle: Bundle, item: InputItem, *, explainer: Explainer | None = None) -> BatchResult:
    """One file through ``analyse``; with ``explainer``, the Grad-CAM of the positive class too."""
    row = _base_row(bundle, item.name)
    try:
        image = read_image(item.source())
        result = analyse(bundle, image.pixels, explain=[HeatmapRequest()] if explainer else (), explainer=explainer,
                         image_warnings=image.warnings)
    except (ImageReadError, ValueError, OSError) as err:
        row["error"] = str(err) if isinstance(err, (ImageReadError, ValueError)) else "file could not be read"
        return BatchResult(row)
    prediction = result.prediction
    row.update({"status": "not assessed" if result.refusal else "ok", "verdict": result.verdict,
                "label": prediction.label, "indeterminate": prediction.indeterminate,
                **{f"P({label})": round(float(p), 6) for label, p in prediction.probabilities.items()},
                "reason": result.refusal or "", "warnings": " | ".join(result.warnings)})
    return BatchResult(row, analysis=result)


def slide_item(bundle: Bundle, item: InputItem, *, mpp: float | None = None, progress=None,
               batch_tiles: int = 64) -> BatchResult:
    """One file (slide or plain image) tiled at the model's scale; the row summarises its tile map."""
    row = _base_row(bundle, item.name)
    try:
        slide = open_slide(item.source(), mpp=mpp)
    except (ImageReadError, ValueError, OSError) as err:
        row["error"] = str(err) if isinstance(err, (ImageReadError, ValueError)) else "file could not be read"
        return BatchResult(row)
    try:
        result = analyse_slide(bundle, slide, progress=progress, batch_tiles=batch_tiles)
    except ValueError as err:
        row["error"] = str(err)
        return BatchResult(row)
    finally:
        slide.close()
    share = result.positive_share
    row.update({"status": "ok", "verdict": "tile map", "label": "",
                f"P({bundle.spec.positive_label})": None if share is None else round(share, 6),
                "reason": "" if len(result.boxes) else "no tissue found",
                "warnings": f"P({bundle.spec.positive_label}) column: share of {len(result.boxes)} tissue tiles at or "
                            f"above the threshold"})
    return BatchResult(row, slide=result, extras={"tiles": int(len(result.boxes)),
                                                  "max_positive": float(np.max(result.positive)) if len(result.boxes) else None})
