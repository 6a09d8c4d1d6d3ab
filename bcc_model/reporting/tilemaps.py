"""Tile-map files for other tools: CSV for spreadsheets, GeoJSON for QuPath, a PNG heatmap.

* ``<stem>.tiles.csv``: one row per tissue tile, ``x0,y0,x1,y1`` in level-0 pixels and one
  probability column per class, named after the class.
* ``<stem>.geojson``: a FeatureCollection QuPath imports (File > Import objects, or drag the
  file onto the open slide): each tile a ``tile`` object whose polygon is its box in level-0
  pixels, with a ``classification`` (the decided class, or "Indeterminate": its conformal set
  holds both classes) and the class probabilities as ``measurements``; with a conformal level,
  each tile's ``conformal_set`` and ``conformal_level`` too.
* ``<stem>.heatmap.png``: P(positive) over the slide's thumbnail.
* a summary row per slide: tile count, the positive share, and the top tiles.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from bcc_model.analysis.wsi import SlideResult
from bcc_model.models.decision import decide
from bcc_model.explain.overlay import map_to_png
from bcc_model.reporting.exports import to_safe_csv

__all__ = ["tiles_table", "tiles_csv", "geojson", "geojson_text", "box_of_feature", "summary_row", "write_tile_maps"]

_COLOURS = {"positive": -3407872, "negative": -16744448, "Indeterminate": -256}  # QuPath packed ARGB ints


def tiles_table(result: SlideResult) -> pd.DataFrame:
    """One row per tissue tile: box in level-0 px, then P(class) per class."""
    table = pd.DataFrame(result.boxes, columns=["x0", "y0", "x1", "y1"])
    for i, label in enumerate(result.labels):
        table[label] = result.probabilities[:, i].astype(float).round(6)
    return table


def _decisions(result: SlideResult, band: tuple[float, float]) -> list[str]:
    if not len(result.probabilities):  # no tissue tile: an empty map, not an error
        return []
    positive = result.labels.index(result.positive_label)
    predicted, indeterminate = decide(result.probabilities, positive, result.threshold, band)
    return ["Indeterminate" if flag else result.labels[int(k)] for k, flag in zip(predicted, indeterminate)]


def geojson(result: SlideResult, band: tuple[float, float], level: float | None = None) -> dict:
    """A QuPath-importable FeatureCollection of the tissue tiles (level-0 px coordinates).

    ``band`` is the bundle's band at ``level`` (``Bundle.band_at``): a tile inside it is undecided,
    its set holding both classes; the set and level go into each tile's properties.
    """
    features = []
    for (x0, y0, x1, y1), name, probs in zip(result.boxes.tolist(), _decisions(result, band),
                                             result.probabilities.tolist()):
        colour = _COLOURS["Indeterminate" if name == "Indeterminate" else
                          "positive" if name == result.positive_label else "negative"]
        conformal = {} if level is None else {
            "conformal_set": " or ".join(result.labels) if name == "Indeterminate" else name,
            "conformal_level": level}
        features.append({
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]},
            "properties": {"objectType": "tile", "classification": {"name": name, "color": colour},
                           "measurements": {f"P({label})": round(float(p), 6) for label, p in zip(result.labels, probs)},
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
        "expected_share_ci95_low": round(shares.interval[0], 4), "expected_share_ci95_high": round(shares.interval[1], 4),
        "indeterminate_share": round(shares.indeterminate, 4)}
    empty = dict.fromkeys((f"{label}_share", f"expected_{label}_share", "expected_share_ci95_low",
                           "expected_share_ci95_high", "indeterminate_share"))
    return {"file": name, "tissue_tiles": int(len(result.boxes)), "background_tiles": result.n_background,
            **(figures or empty), "slide_mpp": result.slide_mpp, "model_mpp": result.model_mpp, "top_tiles": top}


def tiles_csv(result: SlideResult) -> str:
    """``<stem>.tiles.csv`` as text (spreadsheet-safe)."""
    return to_safe_csv(tiles_table(result))


def geojson_text(result: SlideResult, band: tuple[float, float], level: float | None = None) -> str:
    """``<stem>.geojson`` as text."""
    return json.dumps(geojson(result, band, level))


def write_tile_maps(result: SlideResult, out_dir: Path, stem: str, band: tuple[float, float],
                    level: float | None = None) -> list[Path]:
    """Write ``<stem>.tiles.csv``, ``<stem>.geojson`` and ``<stem>.heatmap.png`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.tiles.csv", out_dir / f"{stem}.geojson", out_dir / f"{stem}.heatmap.png"]
    paths[0].write_text(tiles_csv(result), encoding="utf-8")
    paths[1].write_text(geojson_text(result, band, level), encoding="utf-8")
    paths[2].write_bytes(map_to_png(result.thumbnail, result.thumbnail_map()))
    return paths
