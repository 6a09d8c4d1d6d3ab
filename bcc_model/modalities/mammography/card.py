"""Rows of the model card sections that only a cell (lesion-first) mammography bundle has.

Per data set test figures beside the histogram-only baseline, where the lesion map's maximum
falls, FROC of the marks, results per abnormality class, the pooling comparison of
cross-validation and the failure-case pictures (``modalities/mammography/scoring.py`` writes them). A bundle
without them (every other modality) gets empty rows and the template skips the sections.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from bcc_model.reporting.formatting import count, estimate, get, num, percent, text

__all__ = ["mammography_context"]


def _dataset_rows(metrics: Mapping) -> list[list[str]]:
    blocks = get(metrics, "datasets")
    if not isinstance(blocks, Mapping):
        return []
    return [[str(name), f"{count(get(b, 'n_images'))} / {count(get(b, 'n_groups'))}",
             estimate(get(b, "headline", "roc_auc")), estimate(get(b, "histogram_baseline", "roc_auc")),
             estimate(get(b, "binary_tasks", "abnormal_vs_normal", "roc_auc")) if get(b, "binary_tasks") else "—",
             (f"{estimate(get(b, 'patient_level', 'roc_auc'))} ({text(get(b, 'patient_level', 'rule'))} of "
              f"{count(get(b, 'patient_level', 'groups'))})") if get(b, "patient_level") else "—",
             percent(get(b, "map_peak", "outside_breast")), percent(get(b, "map_peak", "on_bright_mark"))]
            for name, b in blocks.items()]


def _froc_rows(metrics: Mapping) -> list[list[str]]:
    block = get(metrics, "froc", "sensitivity")
    return [[str(rate), estimate(entry)] for rate, entry in block.items()] if isinstance(block, Mapping) else []


def _abnormality_rows(metrics: Mapping) -> list[list[str]]:
    rows = get(metrics, "per_abnormality")
    if not isinstance(rows, Sequence):
        return []
    return [[text(get(r, "abnormality")), count(get(r, "images")), num(get(r, "abnormal_vs_normal_auc")),
             f"{count(get(r, 'pointing_hits'))} of {count(get(r, 'pointing_scored'))}"] for r in rows]


def _pooling_rows(info: Mapping) -> list[list[str]]:
    candidates = get(info, "pooling_cross_validation", "candidates")
    chosen = get(info, "pooling_cross_validation", "chosen")
    if not isinstance(candidates, Mapping):
        return []
    bundled = get(info, "architecture", "name")  # records before the trunk comparison name no architecture
    return [[text(get(c, "architecture") or bundled), text(get(c, "pooling")), text(get(c, "epochs")),
             ", ".join(f"{k} {num(v)}" for k, v in (get(c, "roc_auc") or {}).items()), num(get(c, "mean_roc_auc")),
             "yes" if key == chosen else "no"] for key, c in candidates.items()]


def mammography_context(info: Mapping, metrics: Mapping) -> dict[str, Any]:
    """The template values of the cell-model sections (empty lists when the bundle has none)."""
    cases = get(metrics, "failure_cases")
    return {"dataset_rows": _dataset_rows(metrics), "froc_rows": _froc_rows(metrics), "froc": get(metrics, "froc"),
            "abnormality_rows": _abnormality_rows(metrics), "pooling_rows": _pooling_rows(info),
            "pooling_cv": get(info, "pooling_cross_validation"),
            "failure_cases": list(cases) if isinstance(cases, Sequence) else []}
