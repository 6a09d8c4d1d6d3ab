"""Display tables of a bundle's metrics and data: value with its 95% CI, never a bare number.

Each builder reads one part of ``model.json`` or ``metrics.json`` (schemas in
``docs/SCHEMAS.md``) and returns a ``pd.DataFrame`` that a page or the model card page only has
to render. A single number from one test split overstates what is known, so metrics carry
their bootstrap interval. A malformed or missing section raises ``ValueError`` naming it.
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
import pandas as pd

__all__ = ["headline_table", "task_scores_table", "per_class_table", "split_table", "comparison_table",
           "metric_name", "format_metric", "metric_value", "number", "require_section"]

METRIC_NAMES = {
    "accuracy": "Accuracy",
    "balanced_accuracy": "Balanced accuracy",
    "roc_auc": "ROC AUC ({pos} vs rest)",
    "sensitivity": "Sensitivity (recall of {pos})",
    "specificity": "Specificity (recall of not {pos})",
    "f1": "F1 ({pos})",
    "ece": "Expected calibration error (lower is better)",
    "brier": "Brier score (lower is better)",
    "loss": "Loss",
}


def metric_name(key: str, positive_label: str) -> str:
    """Human-readable metric name; unknown keys fall back to the key in words."""
    template = METRIC_NAMES.get(key, key.replace("_", " ").capitalize())
    return template.format(pos=positive_label)


def require_section(data: Mapping, key: str, source: str) -> object:
    """Return ``data[key]``, refusing a missing or empty section with a clear message."""
    value = data.get(key)
    if value is None or (hasattr(value, "__len__") and len(value) == 0):
        raise ValueError(f"{source} has no {key!r} section (see docs/SCHEMAS.md)")
    return value


def number(value: object) -> str:
    """Three decimals, or "n/a" for a value metrics.json stores as null (undefined)."""
    if value is None or not np.isfinite(float(value)):
        return "n/a"
    return f"{float(value):.3f}"


def format_metric(entry: object) -> str:
    """Format a metric as ``"0.912 [0.881, 0.940]"``.

    ``entry`` is ``{"value": v, "ci95": [lo, hi]}`` (any of them may be null, shown "n/a", e.g.
    a CI with fewer than two groups to resample) or a bare number (shown without brackets).
    """
    if not isinstance(entry, Mapping):
        return number(entry)
    text = number(entry.get("value"))
    ci = entry.get("ci95")
    return text if ci is None else f"{text} [{number(ci[0])}, {number(ci[1])}]"


def metric_value(entry: object) -> float:
    """The point value of a metric entry as a float, NaN when undefined."""
    value = entry.get("value") if isinstance(entry, Mapping) else entry
    return float("nan") if value is None else float(value)



def headline_table(metrics: dict, display: Callable[[str], str] = str) -> pd.DataFrame:
    """Headline test metrics with their 95% bootstrap CIs.

    Args:
        metrics: ``metrics.json`` contents.
        display: the modality's word for a label (``ModalitySpec.display``: H&E "IDC", not "malignant").

    Returns:
        Index ``metric`` (human-readable names, in file order); columns ``value`` (float, NaN
        when undefined) and ``95% CI`` (str, e.g. ``"0.912 [0.881, 0.940]"``; "n/a" for a null
        value or bound).

    Raises:
        ValueError: no ``headline`` section.
    """
    headline = require_section(metrics, "headline", "metrics")
    positive = display(metrics.get("positive_label", "positive class"))
    table = pd.DataFrame(
        {
            "value": [metric_value(entry) for entry in headline.values()],
            "95% CI": [format_metric(entry) for entry in headline.values()],
        },
        index=pd.Index([metric_name(key, positive) for key in headline], name="metric"),
    )
    return table


def task_scores_table(metrics: Mapping) -> pd.DataFrame:
    """Localisation scores and extra one-vs-rest tasks (e.g. abnormal vs normal), with 95% CIs and n.

    These sit outside ``headline`` because they answer other questions: does the heatmap point at
    the annotated lesion (pointing game, Zhang et al. 2018; energy inside the lesion), and can the
    model tell any lesion from none, whatever its class. A page shows the table only when it has rows.

    Args:
        metrics: ``metrics.json`` contents; reads the optional ``localisation``,
            ``lesion_map_localisation`` and ``binary_tasks`` sections.

    Returns:
        Index ``score`` (e.g. "Pointing game (Grad-CAM, true class)", "ROC AUC: abnormal vs
        normal"); columns ``value`` (float, NaN when undefined), ``95% CI`` (str) and ``n``
        (Int64 test images scored). Empty (no rows) when neither section exists.

    Examples:
        >>> task_scores_table({}).empty
        True
    """
    names, entries, counts = [], [], []
    for block_name in ("localisation", "lesion_map_localisation"):
        localisation = metrics.get(block_name)
        if not isinstance(localisation, Mapping):
            continue
        how = f"{localisation.get('method', 'heatmap')}, {localisation.get('target', 'true class')}"
        for key, name in (("pointing_game", "Pointing game"), ("energy_inside", "Energy inside lesion")):
            entry = localisation.get(key)
            if isinstance(entry, Mapping):
                names.append(f"{name} ({how})")
                entries.append(entry)
                counts.append(entry.get("n"))
    tasks = metrics.get("binary_tasks")
    if isinstance(tasks, Mapping):
        for task, block in tasks.items():
            positives = ", ".join(block.get("positive_labels", ()))
            names.append(f"ROC AUC: {task.replace('_', ' ')}" + (f" ({positives} positive)" if positives else ""))
            entries.append(block.get("roc_auc"))
            counts.append(metrics.get("n_images"))
    return pd.DataFrame(
        {
            "value": [metric_value(entry) for entry in entries],
            "95% CI": [format_metric(entry) for entry in entries],
            "n": pd.array(counts, dtype="Int64"),
        },
        index=pd.Index(names, name="score"),
    )


def per_class_table(metrics: dict, display: Callable[[str], str] = str) -> pd.DataFrame:
    """Per-class precision, recall and F1 with 95% CIs, and the class's image count.

    Args:
        metrics: ``metrics.json`` contents.

    Returns:
        Index ``class`` (in ``labels`` order when given); columns ``precision (95% CI)``,
        ``recall (95% CI)``, ``F1 (95% CI)`` (str) and ``support`` (int images).

    Raises:
        ValueError: no ``per_class`` section.
    """
    per_class = require_section(metrics, "per_class", "metrics")
    classes = [label for label in metrics.get("labels", per_class) if label in per_class]
    rows = {
        "precision (95% CI)": [format_metric(per_class[c]["precision"]) for c in classes],
        "recall (95% CI)": [format_metric(per_class[c]["recall"]) for c in classes],
        "F1 (95% CI)": [format_metric(per_class[c]["f1"]) for c in classes],
        "support": pd.array([per_class[c].get("support") for c in classes], dtype="Int64"),
    }
    return pd.DataFrame(rows, index=pd.Index([display(label) for label in classes], name="class"))


def split_table(model_info: dict) -> pd.DataFrame:
    """Images, patients and per-class counts of each data split.

    Args:
        model_info: ``model.json`` contents; uses ``data.splits`` and ``labels``.

    Returns:
        Index ``split``; columns ``images``, ``patients (groups)`` and one per label (image
        counts; missing counts are ``<NA>``), all nullable ``Int64``.

    Raises:
        ValueError: no ``data.splits`` section.
    """
    splits = require_section(require_section(model_info, "data", "model.json"), "splits", "model.json data")
    labels = model_info.get("labels") or sorted(
        {label for split in splits.values() for label in split.get("per_class", {})}
    )
    columns: dict[str, list] = {"images": [], "patients (groups)": []} | {label: [] for label in labels}
    for split in splits.values():
        columns["images"].append(split.get("images"))
        columns["patients (groups)"].append(split.get("groups"))
        for label in labels:
            columns[label].append(split.get("per_class", {}).get(label))
    return pd.DataFrame(
        {name: pd.array(values, dtype="Int64") for name, values in columns.items()},
        index=pd.Index(list(splits), name="split"),
    )


def comparison_table(model_info: dict) -> pd.DataFrame:
    """Architectures tried for this bundle, side by side, with the selected one marked.

    Rows come from ``model.json`` ``comparison``; when no entry is marked ``selected``, the
    bundle's own architecture is added as the selected row (its metrics then show as "–").

    Args:
        model_info: ``model.json`` contents.

    Returns:
        Index ``architecture``; columns ``parameters`` (Int64), one str column per
        split/metric found (e.g. ``"validation ROC AUC (malignant vs rest)"``, ``"test
        Balanced accuracy"``, formatted like ``"0.880 [0.850, 0.910]"``), and ``selected``
        (bool).
    """
    rows = list(model_info.get("comparison", []))
    if not any(row.get("selected") for row in rows):
        architecture = model_info.get("architecture", {})
        rows.append({"architecture": architecture.get("name", model_info.get("name", "this model")),
                     "n_parameters": architecture.get("n_parameters"), "selected": True})
    positive = model_info.get("positive_label", "positive class")
    metric_columns: dict[tuple[str, str], str] = {}
    for row in rows:
        for split in ("validation", "test"):
            for key in row.get(split, {}):
                metric_columns.setdefault((split, key), f"{split} {metric_name(key, positive)}")
    table = {"parameters": pd.array([row.get("n_parameters") for row in rows], dtype="Int64")}
    for (split, key), column in metric_columns.items():
        table[column] = [
            format_metric(row[split][key]) if key in row.get(split, {}) else "–" for row in rows
        ]
    table["selected"] = [bool(row.get("selected")) for row in rows]
    return pd.DataFrame(table, index=pd.Index([row.get("architecture") for row in rows],
                                               name="architecture"))
