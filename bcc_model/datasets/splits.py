"""Group-wise splits: whole patients (or near-duplicate groups) go to one split only.

Patches of one patient are strongly correlated (they overlap and share stain and scanner), so
every split keeps each ``group`` whole: a model is always scored on patients it never saw.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bcc_model.datasets.folders import DataError

__all__ = ["SPLITS", "patient_folds", "pick_fold", "split_by_group"]

SPLITS = ("train", "validation", "test")


def pick_fold(table: pd.DataFrame, n_splits: int, seed: int) -> np.ndarray:
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
    split, then one fold of the rest becomes validation. Rows with a true ``always_test`` column
    (``datasets.folders.discover`` adds it from the registry's ``test_always``) are test patients
    besides that fold: the complete H&E slides are kept for the slide validation of the bundle.
    """
    if table["group"].nunique() < 3:
        raise DataError(f"need at least 3 groups (patients) to split, found {table['group'].nunique()}")
    out = table.copy()
    forced = out["always_test"].to_numpy(bool) if "always_test" in out else np.zeros(len(out), bool)
    forced = out["group"].isin(out.loc[forced, "group"]).to_numpy()
    test = forced.copy()
    test[~forced] = pick_fold(out[~forced].reset_index(drop=True), round(1 / test_fraction), seed)
    rest = out[~test]
    rest_fraction = validation_fraction / (1 - test_fraction)
    validation = pick_fold(rest.reset_index(drop=True), round(1 / rest_fraction), seed)
    out["split"] = "test"
    rest_index = rest.index.to_numpy()
    out.loc[rest_index, "split"] = np.where(validation, "validation", "train")
    by_group = out.groupby("group")["split"].nunique()
    if (by_group > 1).any():
        raise AssertionError("a group was split across train/validation/test")
    return out


def patient_folds(y: np.ndarray, groups: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """int (N,) fold of each image: stratified by label, whole patients only (``StratifiedGroupKFold``)."""
    from sklearn.model_selection import StratifiedGroupKFold

    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    out = np.full(len(y), -1, np.int64)
    for fold, (_, held) in enumerate(splitter.split(np.zeros(len(y)), y, groups)):
        out[held] = fold
    return out
