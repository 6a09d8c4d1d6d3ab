"""A batch of files, one result row each: the engine behind ``python -m bcc_model.predict --out``.

Every file goes through the same ``analysis.image.analyse`` as an upload, or, in region mode,
through ``analysis.wsi.analyse_slide``. A file that cannot be read becomes a row with its error;
nothing stops the batch. Rows carry no DICOM tag and no pixel data, only the name the user gave.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import numpy as np

from bcc_model.analysis.image import Analysis, HeatmapRequest, analyse
from bcc_model.analysis.wording import Statement
from bcc_model.analysis.rows import ResultRow
from bcc_model.analysis.wsi import SlideResult, analyse_slide
from bcc_model.explain.cams import Explainer
from bcc_model.imaging.io import read_image
from bcc_model.imaging.pixels import ImageReadError
from bcc_model.imaging.sources import InputItem
from bcc_model.imaging.views import ViewInfo, view_from_name, view_of
from bcc_model.imaging.wsi import open_slide
from bcc_model.models.bundle import Bundle

log = logging.getLogger(__name__)

__all__ = ["BatchResult", "BatchSettings", "analyse_item", "slide_item", "process_item"]


@dataclass(frozen=True)
class BatchResult:
    """One file's row, with what it takes to write its extra files (heatmap overlay, tile maps).

    ``view``: which breast and projection a mammogram shows (header first, then the file name), for
    the per-breast rows; ``None`` for other modalities.
    """

    row: ResultRow
    analysis: Analysis | None = None
    slide: SlideResult | None = None
    extras: dict = field(default_factory=dict)
    view: ViewInfo | None = None


@dataclass(frozen=True)
class BatchSettings:
    """How every file of a batch is analysed: whole images, or tile maps (``region``) at ``mpp``."""

    region: bool = False
    mpp: float | None = None
    tile_batch: int = 64
    heatmaps: bool = False
    level: float | None = None  # conformal level of the sets and the band (None: the bundle's default)


def process_item(bundle: Bundle, item: InputItem, settings: BatchSettings, *, explainer: Explainer | None = None,
                 progress=None) -> BatchResult:
    """One file as the command line asks: the function both engines (local, Ray) run per file.

    Never raises: a skipped input gets its reason, and anything unexpected (out of memory, a
    decoder's own bug) becomes an error row, logged without the file's name, so one input can
    never end the batch.
    """
    if item.skip is not None:
        return BatchResult(ResultRow.skipped(bundle, item.name, item.skip))
    try:
        if settings.region:
            return slide_item(bundle, item, mpp=settings.mpp, progress=progress, batch_tiles=settings.tile_batch,
                              level=settings.level)
        return analyse_item(bundle, item, explainer=explainer, level=settings.level)
    except MemoryError:
        return BatchResult(ResultRow.failed(bundle, item.name, "out of memory while reading or analysing this file"))
    except Exception:  # noqa: BLE001 - the row says so; the log holds the traceback, never the name
        log.exception("an input could not be analysed (name withheld)")
        return BatchResult(ResultRow.failed(bundle, item.name, "unexpected error while analysing this file (logged)"))


def _read_error(err: Exception) -> str:
    """What a row says about a file that could not be read (an OS error's text may hold a path)."""
    return str(err) if isinstance(err, (ImageReadError, ValueError)) else "file could not be read"


def analyse_item(bundle: Bundle, item: InputItem, *, explainer: Explainer | None = None,
                 level: float | None = None) -> BatchResult:
    """One file through ``analyse`` (sets at ``level``); with ``explainer``, the Grad-CAM of the positive class too."""
    named = view_from_name(item.name) if bundle.spec.breast_views else None
    try:
        image = read_image(item.source())
        result = analyse(bundle, image.pixels, explain=[HeatmapRequest()] if explainer else (), explainer=explainer,
                         image_warnings=image.warnings, level=level, header=image.dicom_modality)
    except (ImageReadError, ValueError, OSError) as err:
        return BatchResult(ResultRow.failed(bundle, item.name, _read_error(err)), view=named)
    view = None if named is None else view_of(item.name, image.view)
    return BatchResult(ResultRow.of_analysis(bundle, item.name, result, burned_in=image.burned_in), analysis=result,
                       view=view)


def slide_item(bundle: Bundle, item: InputItem, *, mpp: float | None = None, progress=None,
               batch_tiles: int = 64, level: float | None = None) -> BatchResult:
    """One file (slide or plain image) tiled at the model's scale; the row summarises its tile map (band at ``level``)."""
    failed = ResultRow.failed(bundle, item.name, "")
    try:
        slide = open_slide(item.source(), mpp=mpp)
    except (ImageReadError, ValueError, OSError) as err:
        return BatchResult(replace(failed, error=_read_error(err)))
    try:
        result = analyse_slide(bundle, slide, progress=progress, batch_tiles=batch_tiles, level=level)
    except ValueError as err:
        return BatchResult(replace(failed, error=str(err)))
    finally:
        slide.close()
    share, positive = result.positive_share, bundle.spec.display(bundle.spec.positive_label)
    row = replace(failed, status="ok", verdict="tile map", words=Statement("tile map", "tile map", "Tile map"),
                  probabilities={positive: None if share is None else round(share, 6)},
                  reason="" if len(result.boxes) else "no tissue found",
                  warnings=(f"P({positive}) column: share of {len(result.boxes)} tissue tiles at or above the threshold",
                            *(() if result.shares is None else (result.shares.describe(positive),))))
    return BatchResult(row, slide=result, extras={"tiles": int(len(result.boxes)),
                                                  "max_positive": float(np.max(result.positive)) if len(result.boxes) else None})
