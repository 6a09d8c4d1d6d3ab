"""The data manifest: a content hash of every training file, saved beside the weights.

Why: a bundle must say exactly which bytes it learnt from, so a retrain on changed data is
visible, and ``manifest_sha256`` pins the manifest itself in ``model.json``.
"""

from __future__ import annotations

import hashlib
import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

__all__ = ["add_hashes", "manifest_sha256"]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def add_hashes(table: pd.DataFrame, data_dir: str | Path) -> pd.DataFrame:
    """Add a ``sha256`` column, the content hash of every file (the data manifest)."""
    root = Path(data_dir)
    with ThreadPoolExecutor(max_workers=4) as pool:
        hashes = list(pool.map(_sha256, (root / f for f in table["file"])))
    return table.assign(sha256=hashes)


def manifest_sha256(manifest: pd.DataFrame) -> str:
    """Hash of the manifest as written to ``manifest.csv`` (files, labels, groups, splits, hashes)."""
    buffer = io.StringIO()
    manifest.to_csv(buffer, index=False, lineterminator="\n")
    return hashlib.sha256(buffer.getvalue().encode()).hexdigest()
