"""Training data: discovery, group-wise split, manifest, and the tf.data pipeline.

Patches of one patient are strongly correlated (they overlap and share stain and scanner), so
every split keeps each ``group`` whole: a model is always scored on patients it never saw.
"""

from __future__ import annotations

import hashlib
import io as _stdio
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from .io import ImageReadError, read_image
from .modalities import ModalitySpec
from .preprocess import to_model_input

__all__ = [
    "DataError", "SPLITS", "discover", "split_by_group", "add_hashes", "manifest_sha256",
    "load_images", "class_weights", "make_dataset", "expected_layout",
]

SPLITS = ("train", "validation", "test")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".pgm", ".ppm", ".webp", ".dcm"}


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
                 seed: int):
    """A tf.data pipeline: cache decoded pixels, shuffle + augment (training only), batch, prefetch.

    Augmentation seeds come from ``Dataset.random(seed)``, re-drawn every epoch but identical
    between runs with the same seed.
    """
    import tensorflow as tf

    from .augment import augment

    n_classes = len(spec.labels)
    ds = tf.data.Dataset.from_tensor_slices((images, tf.one_hot(y, n_classes))).cache()
    if training:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        names = tuple(spec.augmentation)
        ds = tf.data.Dataset.zip((ds, seeds)).map(
            lambda xy, s: (augment(tf.cast(xy[0], tf.float32), s, names), xy[1]),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True,
        )
    else:
        ds = ds.map(lambda x, t: (tf.cast(x, tf.float32), t), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
