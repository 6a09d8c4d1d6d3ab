"""Training data: discovery, group-wise split, manifest, and the tf.data pipeline.

Patches of one patient are strongly correlated (they overlap and share stain and scanner), so
every split keeps each ``group`` whole: a model is always scored on patients it never saw.
"""

from __future__ import annotations

import hashlib
import io as _stdio
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .io import ImageReadError, read_image
from .modalities import ModalitySpec
from .preprocess import to_model_input

__all__ = [
    "DataError", "LesionTargets", "SPLITS", "discover", "split_by_group", "add_hashes", "manifest_sha256",
    "load_images", "sample_images", "class_weights", "make_dataset", "expected_layout",
]

SPLITS = ("train", "validation", "test")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".pgm", ".ppm", ".webp", ".dcm"}


@dataclass(frozen=True)
class LesionTargets:
    """Lesion masks of a split for lesion-map supervision (``lesion_head.py``).

    Attributes:
        masks: uint8 (N, S, S), 1 on lesion pixels of the model input.
        known: bool (N,), False where the image's lesion geometry is unknown (its mask is empty).
        grid: side of the lesion-map grid the masks are pooled to.
    """

    masks: np.ndarray
    known: np.ndarray
    grid: int

    @classmethod
    def from_masks(cls, masks: Sequence[np.ndarray | None], size: int, grid: int) -> "LesionTargets":
        """From ``lesions.model_space_masks`` entries (``None``: unknown geometry)."""
        stacked = np.zeros((len(masks), size, size), dtype=np.uint8)
        for i, mask in enumerate(masks):
            if mask is not None:
                stacked[i] = mask
        return cls(stacked, np.array([m is not None for m in masks], dtype=bool), grid)


class DataError(ValueError):
    """The data folder is missing, malformed, or cannot be split as asked."""


def expected_layout(spec: ModalitySpec) -> str:
    labels = "\n".join(f"    {label}/<image>.png" for label in spec.labels)
    return (
        f"Expected layout for {spec.key}:\n  <data folder>/\n{labels}\n"
        "    labels.csv   (optional: file,label,group[,...]; group = patient, never split)"
    )


def discover(data_dir: str | Path, spec: ModalitySpec) -> pd.DataFrame:
    """Index a ``<label>/<image>`` folder as a table ``file, label, group``.

    ``labels.csv`` is used when present (its ``group`` keeps patients together). Without it,
    each image becomes its own group, which is only safe when images are independent; a warning
    says so.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"data folder not found: {root}\n{expected_layout(spec)}")
    csv_path = root / "labels.csv"
    if csv_path.is_file():
        table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
        missing_cols = {"file", "label"} - set(table.columns)
        if missing_cols:
            raise DataError(f"{csv_path} lacks column(s) {sorted(missing_cols)}\n{expected_layout(spec)}")
        if "group" not in table.columns:
            warnings.warn("labels.csv has no 'group' column: every image is its own group", stacklevel=2)
            table["group"] = table["file"]
        table = table[["file", "label", "group"]]
    else:
        rows = [
            (path.relative_to(root).as_posix(), label, path.relative_to(root).as_posix())
            for label in spec.labels if (root / label).is_dir()
            for path in sorted((root / label).iterdir()) if path.suffix.lower() in IMAGE_SUFFIXES
        ]
        warnings.warn("no labels.csv: every image is its own group (patients may leak across splits)", stacklevel=2)
        table = pd.DataFrame(rows, columns=["file", "label", "group"])
    if table.empty:
        raise DataError(f"no images found in {root}\n{expected_layout(spec)}")
    unknown = sorted(set(table["label"]) - set(spec.labels))
    if unknown:
        raise DataError(f"labels {unknown} are not classes of {spec.key} {list(spec.labels)}")
    absent = [f for f in table["file"] if not (root / f).is_file()]
    if absent:
        raise DataError(f"{len(absent)} file(s) listed in labels.csv do not exist, e.g. {absent[0]}")
    return table.sort_values("file", kind="stable").reset_index(drop=True)


def _pick_fold(table: pd.DataFrame, n_splits: int, seed: int) -> np.ndarray:
    """Boolean mask of one stratified group fold (about 1/n_splits of the groups)."""
    from sklearn.model_selection import StratifiedGroupKFold

    n_groups = table["group"].nunique()
    n_splits = max(2, min(n_splits, n_groups))
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    _, held = next(folds.split(table, table["label"], table["group"]))
    mask = np.zeros(len(table), dtype=bool)
    mask[held] = True
    return mask


def split_by_group(table: pd.DataFrame, *, seed: int, test_fraction: float = 0.2,
                   validation_fraction: float = 0.15) -> pd.DataFrame:
    """Add a ``split`` column: stratified by label, whole groups only, seeded.

    Uses ``StratifiedGroupKFold``: one fold of ~``test_fraction`` of the groups becomes the test
    split, then one fold of the rest becomes validation.
    """
    if table["group"].nunique() < 3:
        raise DataError(f"need at least 3 groups (patients) to split, found {table['group'].nunique()}")
    out = table.copy()
    test = _pick_fold(out, round(1 / test_fraction), seed)
    rest = out[~test]
    rest_fraction = validation_fraction / (1 - test_fraction)
    validation = _pick_fold(rest.reset_index(drop=True), round(1 / rest_fraction), seed)
    out["split"] = "test"
    rest_index = rest.index.to_numpy()
    out.loc[rest_index, "split"] = np.where(validation, "validation", "train")
    by_group = out.groupby("group")["split"].nunique()
    if (by_group > 1).any():
        raise AssertionError("a group was split across train/validation/test")
    return out


def sample_images(spec: ModalitySpec) -> list[Path]:
    """The bundled sample images of ``spec``: those its ``labels.csv`` lists (lesion masks may lie
    beside them), or every image under ``samples/<key>/<label>/`` when it has none."""
    folder = spec.sample_dir
    listing = folder / "labels.csv"
    if listing.is_file():
        return sorted(folder / name for name in pd.read_csv(listing, dtype=str)["file"])
    return sorted(p for p in folder.glob("*/*") if p.suffix.lower() in IMAGE_SUFFIXES)


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
    buffer = _stdio.StringIO()
    manifest.to_csv(buffer, index=False, lineterminator="\n")
    return hashlib.sha256(buffer.getvalue().encode()).hexdigest()


def _load_one(path: Path, spec: ModalitySpec) -> np.ndarray:
    try:
        image = read_image(path)
    except ImageReadError as err:
        raise DataError(f"cannot read training image {path}: {err}") from err
    return to_model_input(image.pixels, spec).astype(np.uint8)


def load_images(table: pd.DataFrame, data_dir: str | Path, spec: ModalitySpec) -> np.ndarray:
    """Decode and preprocess every image of ``table``: uint8 (N, H, W, C), the model's input size.

    Kept as uint8 (a quarter of float32) because the whole set is held in memory and cached.
    """
    root = Path(data_dir)
    with ThreadPoolExecutor(max_workers=4) as pool:
        images = list(pool.map(lambda f: _load_one(root / f, spec), table["file"]))
    return np.stack(images) if images else np.zeros((0, *spec.input_shape), dtype=np.uint8)


def class_weights(y: np.ndarray, n_classes: int) -> dict[int, float]:
    """Balanced weights ``n / (k * n_c)`` so each class carries equal total weight in the loss."""
    counts = np.bincount(y, minlength=n_classes).astype(float)
    return {c: float(len(y) / (n_classes * counts[c])) if counts[c] else 0.0 for c in range(n_classes)}


def make_dataset(images: np.ndarray, y: np.ndarray, spec: ModalitySpec, *, batch_size: int, training: bool,
                 seed: int, lesion: LesionTargets | None = None):
    """A tf.data pipeline: cache decoded pixels, shuffle + augment (training only), batch, prefetch.

    Augmentation seeds come from ``Dataset.random(seed)``, re-drawn every epoch but identical
    between runs with the same seed.

    With ``lesion`` the elements are ``(x, targets, sample_weights)`` for a model with a lesion
    head (``lesion_head.py``): targets hold the one-hot class and the mask max-pooled to the
    lesion grid (a cell is 1 when any of its pixels is lesion), moved by the same augmentation
    as the image; sample weights carry the class weights (training only) and switch the lesion
    loss off for images of unknown geometry.
    """
    import tensorflow as tf

    from .augment import augment
    from .lesion_head import CLASS_OUTPUT, LESION_OUTPUT

    n_classes = len(spec.labels)
    names = tuple(spec.augmentation)
    onehot = tf.one_hot(y, n_classes)
    if lesion is None:
        ds = tf.data.Dataset.from_tensor_slices((images, onehot)).cache()
    else:
        weights = class_weights(y, n_classes) if training else {c: 1.0 for c in range(n_classes)}
        ds = tf.data.Dataset.from_tensor_slices((images, onehot, lesion.masks[..., None], {
            CLASS_OUTPUT: np.array([weights[int(c)] for c in y], dtype=np.float32),
            LESION_OUTPUT: lesion.known.astype(np.float32)})).cache()
    if training:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds))

    def prepare(element, seed_pair=None):
        image = tf.cast(element[0], tf.float32)
        if lesion is None:
            return (augment(image, seed_pair, names) if training else image), element[1]
        mask = tf.cast(element[2], tf.float32)
        if training:
            image, mask = augment(image, seed_pair, names, mask)
        cells = tf.image.resize(tf.cast(mask > 0.5, tf.float32), (lesion.grid, lesion.grid), method="area") > 0
        return image, {CLASS_OUTPUT: element[1], LESION_OUTPUT: tf.reshape(tf.cast(cells, tf.float32), [-1])}, element[3]

    ds = ds.map(prepare if training else lambda *element: prepare(element),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
