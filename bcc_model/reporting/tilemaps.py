"""Tile-map files for other tools: CSV for spreadsheets, GeoJSON for QuPath, a PNG heatmap.

* ``<stem>.tiles.csv``: one row per tissue tile, ``x0,y0,x1,y1`` in level-0 pixels, ``P(<class>)``
  per class, then the tile's ``decision`` (the class, or ``indeterminate``: its conformal set
  holds both classes), the ``threshold`` it was decided with, and the ``model``,
  ``model_version`` and ``caution`` of the bundle: a file read away from the app says which
  model said it and how far to trust it.
* ``<stem>.geojson``: a FeatureCollection QuPath imports (File > Import objects, or drag the
  file onto the open slide): each tile a ``tile`` object whose polygon is its box in level-0
  pixels, with a ``classification`` (the same decision word as the CSV and the screen) and the
  class probabilities as ``measurements``; with a conformal level, each tile's ``conformal_set``
  and ``conformal_level`` too.

Classes are the modality's display names (H&E: ``IDC``, ``no IDC``), spelled as on the screen.
* ``<stem>.heatmap.png``: P(positive) over the slide's thumbnail, standing alone: title, colour
  bar, µm scale bar, legend, model and version, research-use notice (``reporting.map_frame``).
* a summary row per slide: tile count, the positive share, and the top tiles.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from bcc_model.analysis.wsi import SlideResult
from bcc_model.models.quality import performance_caution
from bcc_model.models.bundle import Bundle
from bcc_model.models.decision import decide
from bcc_model import RESEARCH_USE_NOTICE
from bcc_model.explain.overlay import map_over, scale_bar
from bcc_model.models.conformal import level_text
from bcc_model.reporting.map_frame import framed_map_png
from bcc_model.reporting.exports import to_safe_csv

__all__ = ["INDETERMINATE", "map_png", "tile_decisions", "tiles_table", "tiles_csv", "geojson", "geojson_text", "box_of_feature",
           "summary_row", "write_tile_maps"]

INDETERMINATE = "indeterminate"
"""A tile's decision when its conformal set holds both classes (the table's verdict word)."""
_COLOURS = {"positive": -3407872, "negative": -16744448, INDETERMINATE: -256}  # QuPath packed ARGB ints


def tile_decisions(result: SlideResult, display=lambda label: label) -> list[str]:
    """Each tile's decision word at ``result.band``: its class (through ``display``) or ``indeterminate``."""
    if not len(result.probabilities):  # no tissue tile: an empty map, not an error
        return []
    positive = result.labels.index(result.positive_label)
    predicted, indeterminate = decide(result.probabilities, positive, result.threshold, result.band)
    return [INDETERMINATE if flag else display(result.labels[int(k)]) for k, flag in zip(predicted, indeterminate)]


def tiles_table(result: SlideResult, bundle: Bundle) -> pd.DataFrame:
    """One row per tissue tile: box in level-0 px, P(class) per class, decision, threshold and the model's identity."""
    show = bundle.spec.display
    table = pd.DataFrame(result.boxes, columns=["x0", "y0", "x1", "y1"])
    for i, label in enumerate(result.labels):
        table[f"P({show(label)})"] = result.probabilities[:, i].astype(float).round(6)
    table["decision"] = tile_decisions(result, show)
    table["threshold"] = round(float(result.threshold), 4)
    table["model"], table["model_version"] = bundle.meta.name, bundle.short_sha
    table["caution"] = performance_caution(bundle.metrics) or ""
    return table


def geojson(result: SlideResult, bundle: Bundle, level: float | None = None) -> dict:
    """A QuPath-importable FeatureCollection of the tissue tiles (level-0 px coordinates).

    ``result.band`` is the bundle's band at ``level`` (``Bundle.band_at``): a tile inside it is
    undecided, its set holding both classes; the set and level go into each tile's properties.
    """
    show = bundle.spec.display
    labels = [show(label) for label in result.labels]
    features = []
    for (x0, y0, x1, y1), name, probs in zip(result.boxes.tolist(), tile_decisions(result, show),
                                             result.probabilities.tolist()):
        colour = _COLOURS[INDETERMINATE if name == INDETERMINATE else
                          "positive" if name == show(result.positive_label) else "negative"]
        conformal = {} if level is None else {
            "conformal_set": " or ".join(labels) if name == INDETERMINATE else name,
            "conformal_level": level}
        features.append({
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]},
            "properties": {"objectType": "tile", "classification": {"name": name, "color": colour},
                           "measurements": {f"P({label})": round(float(p), 6) for label, p in zip(labels, probs)},
                           **conformal, "isLocked": True},
        })
    return {"type": "FeatureCollection", "features": features}


def box_of_feature(feature: dict) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` of a tile feature's polygon (the inverse of :func:`geojson`)."""
    points = np.asarray(feature["geometry"]["coordinates"][0])
    return (int(points[:, 0].min()), int(points[:, 1].min()), int(points[:, 0].max()), int(points[:, 1].max()))


def summary_row(name: str, result: SlideResult, top_k: int = 3) -> dict:
    """One slide's line of the batch summary: tiles, the flagged, expected (95 % interval) and indeterminate
    shares (``analysis.shares``) and the most suspicious tiles."""
    order = np.argsort(-result.positive, kind="stable")[:top_k]
    top = "; ".join(f"({x0},{y0}) {p:.2f}" for (x0, y0, _, _), p in zip(result.boxes[order].tolist(),
                                                                          result.positive[order].tolist()))
    shares, label = result.shares, result.positive_label
    figures = {} if shares is None else {
        f"{label}_share": round(shares.flagged, 4), f"expected_{label}_share": round(shares.expected, 4),
        "expected_share_ci95_low": None if shares.interval is None else round(shares.interval[0], 4),
        "expected_share_ci95_high": None if shares.interval is None else round(shares.interval[1], 4),
        "indeterminate_share": round(shares.indeterminate, 4)}
    empty = dict.fromkeys((f"{label}_share", f"expected_{label}_share", "expected_share_ci95_low",
                           "expected_share_ci95_high", "indeterminate_share"))
    return {"file": name, "tissue_tiles": int(len(result.boxes)), "background_tiles": result.n_background,
            **(figures or empty), "slide_mpp": result.slide_mpp, "model_mpp": result.model_mpp, "top_tiles": top}


def tiles_csv(result: SlideResult, bundle: Bundle) -> str:
    """``<stem>.tiles.csv`` as text (spreadsheet-safe)."""
    return to_safe_csv(tiles_table(result, bundle))


def geojson_text(result: SlideResult, bundle: Bundle, level: float | None = None) -> str:
    """``<stem>.geojson`` as text."""
    return json.dumps(geojson(result, bundle, level))


def map_png(result: SlideResult, bundle: Bundle, level: float | None = None) -> bytes:
    """The tile map over the slide's thumbnail as a PNG that stands alone (what, which model, how sure, the notice)."""
    show = bundle.spec.display
    label = show(result.positive_label)
    picture = scale_bar(map_over(result.thumbnail, result.thumbnail_map()), result.slide_mpp * result.thumbnail_factor)
    shares = result.shares
    legend = ["Uncoloured: not analysed (glass, or outside the tiles)."]
    if shares is not None:
        undecided = f" at {level_text(level)}" if level is not None else ""
        legend.append(f"Expected {label} share {shares.expected:.1%} ({shares.interval_text()}); "
                      f"{shares.indeterminate:.1%} of {shares.n_tiles:,} tiles undecided{undecided}.")
    legend.append(f"Decision threshold P({label}) >= {result.threshold:.2f}; undecided while P({label}) is in "
                  f"{result.band[0]:.2f}-{result.band[1]:.2f}.")
    caution = performance_caution(bundle.metrics)
    footer = [f"Model {bundle.meta.name}, version {bundle.short_sha}" + ("" if bundle.verified else " (unverified)"),
              *([caution] if caution else []), RESEARCH_USE_NOTICE]
    return framed_map_png(picture, title=f"P({label}) per tissue tile", bar_label=f"P({label})", legend=legend,
                          footer=footer)


def write_tile_maps(result: SlideResult, bundle: Bundle, out_dir: Path, stem: str,
                    level: float | None = None) -> list[Path]:
    """Write ``<stem>.tiles.csv``, ``<stem>.geojson`` and ``<stem>.heatmap.png`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.tiles.csv", out_dir / f"{stem}.geojson", out_dir / f"{stem}.heatmap.png"]
    paths[0].write_text(tiles_csv(result, bundle), encoding="utf-8")
    paths[1].write_text(geojson_text(result, bundle, level), encoding="utf-8")
    paths[2].write_bytes(map_png(result, bundle, level))
    return paths
