"""The files of a batch run: ``predictions.csv`` and ``.json``, heatmap overlays, tile maps.

File names inside ``--out`` are made from a running number and the input's stem with anything
but letters, digits, ``-``, ``_`` and ``.`` replaced, so an input name can never point outside
the output folder.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Sequence

import pandas as pd

from bcc_model.analysis.batch import BatchResult
from bcc_model.analysis.breasts import breast_rows
from bcc_model.analysis.rows import ResultRow
from bcc_model.models.bundle import Bundle
from bcc_model.explain.overlay import encode_png, overlay_heatmap
from bcc_model.reporting.exports import to_safe_csv
from bcc_model.reporting.tilemaps import summary_row, write_tile_maps

__all__ = ["OUTPUTS", "OutputError", "output_stem", "prepare_output", "results_table", "write_extras",
           "write_predictions"]

OUTPUTS = ("predictions.csv", "predictions.json", "slides.csv", "breasts.csv", "heatmaps", "tiles", "dicom")
"""What a run writes into ``--out``: removed by ``--overwrite`` before a new run writes there."""


class OutputError(ValueError):
    """The output folder cannot be used (a file, not empty without overwrite, not writable); the message says which."""


def prepare_output(out_dir: Path, *, overwrite: bool = False) -> None:
    """Check ``out_dir`` before any work, and with ``overwrite`` remove an earlier run's outputs from it.

    Why first: a batch of slides can take hours, and an output folder that turns out to be a file,
    or to hold another run's tile maps (whose numbered names would mix with this run's), must
    fail before that work, not after it. Links among the earlier outputs are removed, never
    followed, so a link planted in the folder cannot make a run write elsewhere.

    Raises:
        OutputError: ``out_dir`` is a file or a link, is not empty and ``overwrite`` is off, or cannot be created.
    """
    if out_dir.is_symlink() or (out_dir.exists() and not out_dir.is_dir()):
        raise OutputError(f"--out {out_dir} is a file or a link, not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise OutputError(f"--out {out_dir} is not empty; choose an empty folder, or pass --overwrite to replace "
                              "an earlier run's outputs there")
        for name in OUTPUTS:
            target = out_dir / name
            if target.is_symlink() or target.is_file():
                target.unlink()
            elif target.is_dir():
                shutil.rmtree(target)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"--out {out_dir} cannot be created ({err.strerror})") from None


def output_stem(index: int, name: str) -> str:
    """``0007_patch_name``: numbered (unique) and safe as a file name."""
    stem = Path(name.split("!")[-1]).stem
    return f"{index:04d}_" + (re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "file")[:80]


def write_extras(result: BatchResult, bundle: Bundle, out_dir: Path, stem: str, heatmaps: bool,
                 level: float | None = None) -> None:
    """The heatmap overlay of an analysed image, or the tile maps of a tiled one (undecided at ``level``)."""
    if result.slide is not None:
        write_tile_maps(result.slide, bundle, out_dir / "tiles", stem, level)
    elif heatmaps and result.analysis is not None and result.analysis.heatmaps:
        heat = next(iter(result.analysis.heatmaps.values()))
        (out_dir / "heatmaps").mkdir(parents=True, exist_ok=True)
        (out_dir / "heatmaps" / f"{stem}.png").write_bytes(encode_png(overlay_heatmap(result.analysis.view, heat)))


def results_table(rows: Sequence[ResultRow], truth: Sequence[str | None] | None = None) -> pd.DataFrame:
    """The rows as one table in ``ResultRow``'s columns: what the app shows and both CSVs hold.

    Args:
        rows: one per file, in input order.
        truth: the true class of each file where it is known (the bundled samples are named by
            theirs), else ``None``; when any is known, ``true label`` and ``correct?`` columns
            follow ``file``, so a new user sees what the model gets wrong.
    """
    table = pd.DataFrame([row.as_dict() for row in rows])
    if truth is not None and any(label is not None for label in truth):
        table.insert(1, "true label", [label or "" for label in truth])
        table.insert(2, "correct?", [None if label is None or row.status != "ok" or row.verdict not in row.labels
                                     else row.verdict == label for label, row in zip(truth, rows)])
    return table


def write_predictions(results: list[BatchResult], out_dir: Path, bundle: Bundle | None = None) -> list[Path]:
    """``predictions.csv`` (spreadsheet-safe) and ``predictions.json`` in ``ResultRow``'s columns; ``slides.csv``
    when any file was tiled; ``breasts.csv`` (``analysis.breasts``, needs ``bundle``) when any view's side is known."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [result.row for result in results]
    paths = [out_dir / "predictions.csv", out_dir / "predictions.json"]
    paths[0].write_text(to_safe_csv(results_table(rows)), encoding="utf-8")
    paths[1].write_text(json.dumps([row.as_dict() for row in rows], indent=1) + "\n", encoding="utf-8")
    slides = [summary_row(result.row.file, result.slide) for result in results if result.slide is not None]
    if slides:
        paths.append(out_dir / "slides.csv")
        paths[-1].write_text(to_safe_csv(pd.DataFrame(slides)), encoding="utf-8")
    breasts = [] if bundle is None else breast_rows(rows, [result.view for result in results], bundle)
    if breasts:
        positive = bundle.spec.display(bundle.spec.positive_label)
        paths.append(out_dir / "breasts.csv")
        paths[-1].write_text(to_safe_csv(pd.DataFrame([b.as_dict(positive) for b in breasts])), encoding="utf-8")
    return paths
