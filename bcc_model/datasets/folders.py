"""A data folder: ``<label>/<image>`` plus ``labels.csv``, indexed, read and preprocessed.

Patches of one patient are strongly correlated (they overlap and share stain and scanner), so
every split keeps each ``group`` whole: a model is always scored on patients it never saw.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from bcc_model.imaging.pixels import ImageReadError
from bcc_model.imaging.io import IMAGE_SUFFIXES, read_image
from bcc_model.registry import ModalitySpec
from bcc_model.imaging.preprocess import to_model_input

__all__ = ["DataError", "IMAGE_SUFFIXES", "discover", "load_images", "sample_images", "expected_layout"]



class DataError(ValueError):
    """The data folder is missing, malformed, or cannot be split as asked."""


def expected_layout(spec: ModalitySpec) -> str:
    labels = "\n".join(f"    {label}/<image>.png" for label in spec.labels)
    return (
        f"Expected layout for {spec.key}:\n  <data folder>/\n{labels}\n"
        "    labels.csv   (optional: file,label,group[,...]; group = patient, never split)"
    )


def discover(data_dir: str | Path, spec: ModalitySpec, *, negatives: bool = False) -> pd.DataFrame:
    """Index a ``<label>/<image>`` folder as a table ``file, label, group``.

    With ``negatives`` (evaluation), the registry's ``negative_labels`` (RSNA's ``negative``)
    are accepted besides the classes; training never accepts them (they name no class).

    ``labels.csv`` is used when present (its ``group`` keeps patients together). Without it,
    each image becomes its own group, which is only safe when images are independent; a warning
    says so. Where the registry's ``test_always`` names a column of ``labels.csv``, a bool
    ``always_test`` column marks the rows it selects (``splits.split_by_group`` puts them in test).
    Where its ``sampled_fraction`` names one, a float ``prevalence_weight`` column holds
    ``1 / fraction`` on the under-sampled rows and 1 elsewhere (``training.weights``).
    """
    root = Path(data_dir)
    accepted = spec.labels + (spec.recipe.negative_labels if negatives else ())
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
        column, value = spec.recipe.test_always or (None, None)
        table = table[["file", "label", "group"]].assign(
            **({"always_test": table[column] == value} if column in table.columns else {}),
            **_prevalence_weight(table, spec))
    else:
        rows = [
            (path.relative_to(root).as_posix(), label, path.relative_to(root).as_posix())
            for label in accepted if (root / label).is_dir()
            for path in sorted((root / label).iterdir()) if path.suffix.lower() in IMAGE_SUFFIXES
        ]
        warnings.warn("no labels.csv: every image is its own group (patients may leak across splits)", stacklevel=2)
        table = pd.DataFrame(rows, columns=["file", "label", "group"])
    if table.empty:
        raise DataError(f"no images found in {root}\n{expected_layout(spec)}")
    unknown = sorted(set(table["label"]) - set(accepted))
    if unknown:
        raise DataError(f"labels {unknown} are not classes of {spec.key} {list(accepted)}")
    absent = [f for f in table["file"] if not (root / f).is_file()]
    if absent:
        raise DataError(f"{len(absent)} file(s) listed in labels.csv do not exist, e.g. {absent[0]}")
    return table.sort_values("file", kind="stable").reset_index(drop=True)


def _prevalence_weight(table: pd.DataFrame, spec: ModalitySpec) -> dict:
    """``{"prevalence_weight": (N,) float}`` from the recipe's ``sampled_fraction``, or ``{}`` when it does not apply."""
    if spec.recipe.sampled_fraction is None or spec.recipe.sampled_fraction[0] not in table.columns:
        return {}
    column, value, label, fraction = spec.recipe.sampled_fraction
    under_sampled = (table[column] == value) & (table["label"] == label)
    return {"prevalence_weight": np.where(under_sampled, 1.0 / fraction, 1.0)}


def sample_images(spec: ModalitySpec) -> list[Path]:
    """The bundled sample images of ``spec``: those its ``labels.csv`` lists (lesion masks may lie
    beside them), or every image under ``samples/<key>/<label>/`` when it has none."""
    folder = spec.sample_dir
    listing = folder / "labels.csv"
    if listing.is_file():
        return sorted(folder / name for name in pd.read_csv(listing, dtype=str)["file"])
    return sorted(p for p in folder.glob("*/*") if p.suffix.lower() in IMAGE_SUFFIXES)


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


