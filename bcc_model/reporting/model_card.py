"""Render MODEL_CARD.md from a bundle's model.json and metrics.json (``templates/model_card.md.j2``).

The card follows the sections of Mitchell et al. (2019) so a reader finds, in a fixed place,
what the model is for, what it must not be used for, how it was evaluated and where it
fails. Every figure is read from the two dictionaries written by training and evaluation;
the card holds no numbers of its own, so it cannot drift from the bundle it describes. A
value that was not recorded is shown as "not recorded" instead of failing the render.

This module only computes the values the template shows (rows of tables, sentences that
depend on the data); the wording lives in the template.

References:
    Mitchell et al. (2019). Model Cards for Model Reporting. FAT* '19, 220-229.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Mapping, Sequence

from bcc_model import RESEARCH_USE_NOTICE
from bcc_model.reporting.formatting import (NOT_RECORDED, count, estimate, get, interval, is_number, num,
                                            percent, text)
from bcc_model.reporting.templates import render
from bcc_model.registry import MODALITY_MODULES, load_modality

__all__ = ["NOT_RECORDED", "CardSection", "card_sections", "render_model_card", "selection_tables"]

_METRIC_MEANINGS = {
    "accuracy": ("Accuracy", "share of images whose predicted class is the true class"),
    "balanced_accuracy": ("Balanced accuracy", "mean recall over the classes; insensitive to class balance"),
    "roc_auc": ("ROC AUC", "probability that a random positive image scores above a random negative one"),
    "sensitivity": ("Sensitivity", "share of positive images called positive (recall of the positive label)"),
    "specificity": ("Specificity", "share of the other images not called positive"),
    "f1": ("F1", "harmonic mean of precision and recall for the positive label"),
    "ece": ("ECE", "expected calibration error: bin-weighted gap between predicted probability and observed "
                   "frequency of the positive label (Naeini et al. 2015; Guo et al. 2017); lower is better"),
    "brier": ("Brier score", "mean squared error of the positive-label probability (Brier 1950); lower is better"),
}


_PATIENT_FACTOR = ("- **Patient:** images from one patient are correlated; evaluation therefore holds out whole "
                   "patients, resamples patients for the intervals and reports accuracy per patient.")


def _modality(info: Mapping) -> ModuleType | None:
    """The bundle's modality module (its card sections), or ``None`` for a modality this version lacks."""
    key = get(info, "modality")
    return load_modality(key) if isinstance(key, str) and key in MODALITY_MODULES else None


def _whole_image(info: Mapping) -> bool:
    """Greyscale whole images resized to the input (no fixed physical scale)."""
    module = _modality(info)
    return bool(module and module.SPEC.whole_image)


def _is_tabular(info: Mapping) -> bool:
    """Tabular bundles (e.g. cytology features) name their input columns in ``feature_names``."""
    names = get(info, "feature_names")
    return isinstance(names, Sequence) and not isinstance(names, str) and len(names) > 0


def _scale(info: Mapping) -> str:
    """Training input scale, e.g. ``50×50×3 input at 4.0 µm/px (2.5x)`` or ``30 raw features per case``."""
    if _is_tabular(info):
        return f"{len(get(info, 'feature_names'))} raw features per case, standardised inside the model"
    shape = get(info, "input_shape")
    dims = "×".join(str(d) for d in shape) if isinstance(shape, Sequence) and shape else NOT_RECORDED
    if _whole_image(info):
        # Whole images resized to the input: the scale depends on the source (and the breast crop).
        mpp = get(info, "mpp")
        return f"{dims} whole-image input" + (f", nominal {mpp:.0f} µm/px" if is_number(mpp) else
                                              ", no recorded pixel spacing")
    return f"{dims} input at {text(get(info, 'mpp'))} µm/px ({text(get(info, 'magnification'))})"


def _epoch_time(seconds: Any) -> str:
    """Summed epoch times per architecture (recorded by the trainer's epoch timer)."""
    if not isinstance(seconds, Mapping) or not any(is_number(v) for v in seconds.values()):
        return ""
    return "; summed epoch time " + ", ".join(f"{arch} {num(v, 0)} s" for arch, v in seconds.items() if is_number(v))


def _records(info: Mapping) -> list[tuple[str, Mapping]]:
    """Optional training steps the bundle recorded (older bundles lack them), in card order."""
    found = [("initial_weights", get(info, "architecture", "initial_weights")), ("pretraining", get(info, "pretraining")),
             ("lesion_supervision", get(info, "lesion_supervision"))]
    return [(kind, record) for kind, record in found if isinstance(record, Mapping)]


def _split_overlap(groups: Any) -> str:
    """Sentence on whether any patient appears in two splits, checked from the lists if present."""
    if not isinstance(groups, Mapping) or not groups:
        return ("No patient is shared across splits: the split assigns whole patients. "
                "(The per-split patient lists were not recorded, so this card cannot re-check it.)")
    seen: dict[str, str] = {}
    shared = set()
    for split, ids in groups.items():
        for group in ids or []:
            if seen.get(str(group), split) != split:
                shared.add(str(group))
            seen[str(group)] = split
    if shared:
        return (f"**Warning: {len(shared)} patient(s) appear in more than one split "
                f"({', '.join(sorted(shared))}); the test figures are not from unseen patients.**")
    return ("No patient is shared across splits: each patient's images are all in one split "
            "(checked against the patient lists in model.json).")


def _split_rows(info: Mapping) -> list[list[str]]:
    splits = get(info, "data", "splits")
    rows = []
    if isinstance(splits, Mapping):
        for split, entry in splits.items():
            per_class = get(entry, "per_class")
            classes = (", ".join(f"{k}: {count(v)}" for k, v in per_class.items())
                       if isinstance(per_class, Mapping) else "")
            rows.append([str(split), count(get(entry, "images")), count(get(entry, "groups")), text(classes)])
    return rows


def _per_patient(metrics: Mapping) -> str:
    per_group = get(metrics, "per_group")
    scored = ({str(g): get(v, "accuracy") for g, v in per_group.items()}
              if isinstance(per_group, Mapping) else {})
    scored = {g: a for g, a in scored.items() if is_number(a)}
    if not scored:
        return f"Per-patient accuracy: {NOT_RECORDED}."
    ordered = sorted(scored, key=scored.get)
    worst = ", ".join(f"{g} ({scored[g]:.3f}, n = {count(get(per_group, g, 'n'))})" for g in ordered[:3])
    return (f"Per-patient accuracy over {len(scored)} patients ranges from {scored[ordered[0]]:.3f} "
            f"to {scored[ordered[-1]]:.3f}; lowest: {worst}.")


def _class_rows(metrics: Mapping) -> list[list[str]]:
    per_class = get(metrics, "per_class")
    if not isinstance(per_class, Mapping):
        return []
    return [[str(label), estimate(get(e, "precision")), estimate(get(e, "recall")), estimate(get(e, "f1")),
             count(get(e, "support"))] for label, e in per_class.items()]


def _confusion(metrics: Mapping) -> tuple[list[str], list[list[str]]] | None:
    labels = get(metrics, "confusion_matrix", "labels")
    matrix = get(metrics, "confusion_matrix", "matrix")
    if isinstance(labels, Sequence) and isinstance(matrix, Sequence) and matrix:
        return (["true \\ predicted", *map(str, labels)],
                [[str(label), *map(count, row)] for label, row in zip(labels, matrix)])
    return None


def _task_rows(metrics: Mapping) -> list[list[str]]:
    """Extra one-vs-rest tasks (e.g. abnormal vs normal); none when none were recorded."""
    tasks = get(metrics, "binary_tasks")
    if not isinstance(tasks, Mapping):
        return []
    return [[str(name).replace("_", " "), text(get(task, "positive_labels")), estimate(get(task, "roc_auc"))]
            for name, task in tasks.items()]


def _localisation_rows(block: Mapping, suffix: str) -> list[list[str]]:
    rows = [[f"Pointing game{suffix}", estimate(get(block, "pointing_game")), count(get(block, "pointing_game", "n"))]]
    if get(block, "energy_inside") is not None:
        rows.append([f"Energy inside lesion{suffix}", estimate(get(block, "energy_inside")),
                     count(get(block, "energy_inside", "n"))])
    return rows


def _comparison_rows(info: Mapping) -> list[list[str]]:
    entries = get(info, "comparison")
    if not isinstance(entries, Sequence) or not entries:
        return []
    return [[text(get(e, "architecture")), count(get(e, "n_parameters")),
             num(get(e, "validation", "balanced_accuracy")), num(get(e, "validation", "roc_auc")),
             num(get(e, "validation", "loss")), estimate(get(e, "test", "balanced_accuracy")),
             "yes" if get(e, "selected") is True else "no"] for e in entries]


def _cv_table(block: Any) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the cross-validation table; image runs add balanced accuracy and per-patient spread."""
    def mean_sd(entry: Any) -> str:
        return f"{num(get(entry, 'mean'))} ± {num(get(entry, 'sd'))}"

    def spread(entry: Any) -> str:
        quartiles = get(entry, "quartiles")
        middle = ", ".join(num(q) for q in quartiles) if isinstance(quartiles, Sequence) else NOT_RECORDED
        return f"min {num(get(entry, 'min'))}; quartiles {middle}; {count(get(entry, 'below_0.80'))} below 0.80"

    models = [m for m in (get(block, "models") or []) if isinstance(m, Mapping)] \
        if isinstance(get(block, "models"), Sequence) else []
    per_patient = any(isinstance(get(m, "per_patient"), Mapping) for m in models)
    header = ["Model", "Accuracy (mean ± sd)", "ROC AUC (mean ± sd)", "Bundled"]
    if per_patient:
        header = [*header[:3], "Balanced accuracy (mean ± sd)", "Per-patient accuracy (out of fold)", "Bundled"]
    rows = []
    for m in models:
        row = [text(get(m, "name")), mean_sd(get(m, "accuracy")), mean_sd(get(m, "roc_auc"))]
        if per_patient:
            row += [mean_sd(get(m, "balanced_accuracy")), spread(get(m, "per_patient"))]
        rows.append(row + ["yes" if get(m, "bundled") is True else "no"])
    return header, rows


def _robustness_rows(block: Any) -> list[list[str]]:
    """One row for the original images, then one per codec; none when not measured."""
    if not isinstance(block, Mapping) or not isinstance(get(block, "codecs"), Mapping):
        return []
    original = get(block, "original")
    rows = [["original files", num(get(original, "balanced_accuracy")), num(get(original, "roc_auc")), "—", "—"]]
    return rows + [[str(codec), num(get(entry, "balanced_accuracy")), num(get(entry, "roc_auc")),
                    percent(get(entry, "decisions_changed")), num(get(entry, "mean_abs_change_positive"))]
                   for codec, entry in get(block, "codecs").items()]


def _reliability_rows(metrics: Mapping) -> list[list[str]]:
    """The reliability diagram as a table: per bin of P(positive), mean prediction against observed share."""
    block = get(metrics, "calibration")
    edges, predicted, observed, counts = (get(block, key) for key in ("bin_edges", "mean_predicted",
                                                                      "fraction_positive", "count"))
    if not all(isinstance(v, Sequence) for v in (edges, predicted, observed, counts)):
        return []
    return [[f"{num(edges[i], 1)}–{num(edges[i + 1], 1)}", num(predicted[i]), num(observed[i]), count(counts[i])]
            for i in range(len(counts)) if counts[i]]


_SLIDE_HEADER = ["Patient", "Tiles scored", "Skipped", "Tile ROC AUC, patch alone", "Context (weight, radius)",
                 "Tile ROC AUC, with context", "True IDC share", "IDC share at threshold",
                 "Expected IDC share [95% interval]", "Tiles indeterminate", "Tile ECE"]
_TEACHER_HEADER = ["Model", "Networks", "Parameters", "Balanced acc. [95% CI]", "ROC AUC [95% CI]", "F1 [95% CI]",
                   "ECE [95% CI]", "ms per patch"]


def _slide_rows(metrics: Mapping, pictures: bool = True) -> list[list[str]]:
    rows = get(metrics, "slides", "slides")
    if not isinstance(rows, Sequence):
        return []
    link = lambda r: (f"![slide {text(get(r, 'patient'))}: truth left, model right]({text(get(r, 'picture'))})"  # noqa: E731
                      if get(r, "picture") else NOT_RECORDED)
    def context(r: Mapping) -> str:
        weight, radius = get(r, "context", "weight"), get(r, "context", "radius")
        return NOT_RECORDED if weight is None else ("none" if not weight else f"{num(weight, 1)}, {count(radius)}")

    return [[text(get(r, "patient")), count(get(r, "n_scored")), count(get(r, "n_skipped")),
             num(get(r, "roc_auc_patch_only")), context(r), num(get(r, "roc_auc")),
             num(get(r, "true_positive_share_scored")), num(get(r, "predicted_positive_share")),
             " ".join([num(get(r, "expected_positive_share")),
                       *([interval(get(r, "expected_share_interval"))] if get(r, "expected_share_interval") else [])]),
             percent(get(r, "indeterminate_share")), num(get(r, "tile_ece")),
             *([link(r)] if pictures else [])] for r in rows]


def selection_tables(model_info: Mapping, metrics: Mapping) -> dict[str, tuple[list[str], list[list[str]]]]:
    """The card's cross-validation, teacher/student and whole-slide tables as ``(header, rows)``, for the app.

    Only the tables the bundle has data for are returned (keys ``cross_validation``,
    ``teacher``, ``slides``); the slide pictures are left out (the app shows the files).
    """
    tables = {"cross_validation": _cv_table(get(model_info, "cross_validation")),
              "teacher": (_TEACHER_HEADER, _teacher_rows(model_info)),
              "slides": (_SLIDE_HEADER, _slide_rows(metrics, pictures=False))}
    return {key: table for key, table in tables.items() if table[1]}


def _teacher_rows(info: Mapping) -> list[list[str]]:
    block = get(info, "teacher")
    rows = []
    for role in ("teacher", "student"):
        entry = get(block, role)
        if isinstance(entry, Mapping):
            headline = get(entry, "headline")
            rows.append([role, count(get(entry, "n_models")), count(get(entry, "n_parameters")),
                         *[f"{num(get(headline, k, 'value'))} {interval(get(headline, k, 'ci95'))}"
                           for k in ("balanced_accuracy", "roc_auc", "f1", "ece")],
                         num(get(entry, "ms_per_patch"), 2)])
    return rows


def _errors(metrics: Mapping) -> str:
    """Misclassified test cases: off-diagonal sum of the confusion matrix."""
    matrix = get(metrics, "confusion_matrix", "matrix")
    try:
        return f"{sum(map(sum, matrix)) - sum(row[i] for i, row in enumerate(matrix)):,}"
    except (TypeError, IndexError):
        return NOT_RECORDED


def _validation_optimism(info: Mapping, metrics: Mapping) -> tuple[float, Sequence] | None:
    """``(validation BA, test CI)`` when the selected model's validation balanced accuracy lies above the test interval.

    The validation split picked the epoch, temperature, threshold, architecture and the registry's
    settings; the more choices it made, the more its own figures flatter the model. When the gap
    exceeds the test interval, a reader must be told which figure to believe.
    """
    comparison = get(info, "comparison")
    selected = next((c for c in comparison if get(c, "selected") is True), None) \
        if isinstance(comparison, Sequence) else None
    validation = get(selected, "validation", "balanced_accuracy") if selected is not None else None
    ci = get(metrics, "headline", "balanced_accuracy", "ci95")
    upper = ci[1] if isinstance(ci, Sequence) and len(ci) == 2 else None
    if not isinstance(validation, (int, float)) or not isinstance(upper, (int, float)) or validation <= upper:
        return None
    return validation, ci


def _context(info: Mapping, metrics: Mapping) -> dict:
    """Everything ``model_card.md.j2`` shows that is more than one looked-up value."""
    tabular = _is_tabular(info)
    scale = _scale(info)
    arch = get(info, "architecture")
    versions = get(info, "versions")
    sha = get(info, "model_sha256")
    labels = get(info, "labels")
    localisation = get(metrics, "localisation")
    lesion_map = get(metrics, "lesion_map_localisation")
    cross_validation = get(info, "cross_validation")
    selected = [text(get(e, "architecture")) for e in (get(info, "comparison") or []) if get(e, "selected") is True] \
        if isinstance(get(info, "comparison"), Sequence) else []
    return {
        "info": info, "metrics": metrics, "g": get, "notice": RESEARCH_USE_NOTICE, "not_recorded": NOT_RECORDED,
        "tabular": tabular, "modality": get(info, "modality"),
        "grey": _whole_image(info), "scale": scale,
        "use_subject": (f"cases described by the training features ({scale})" if tabular
                        else f"images at the training scale, {scale}"),
        "params_json": json.dumps(get(arch, "params"), default=str) if get(arch, "params") else None,
        "short_sha": sha[:12] if isinstance(sha, str) and sha else NOT_RECORDED,
        "libraries": ", ".join(f"{k} {v}" for k, v in versions.items()) if isinstance(versions, Mapping) else "",
        "epoch_time": _epoch_time(get(info, "training", "training_seconds")),
        "records": _records(info),
        "metric_meanings": list(_METRIC_MEANINGS.values()),
        "metric_rows": [[title, num(get(metrics, "headline", key, "value")),
                         interval(get(metrics, "headline", key, "ci95"))]
                        for key, (title, _) in _METRIC_MEANINGS.items()],
        "split_rows": _split_rows(info), "split_overlap": _split_overlap(get(info, "data", "groups")),
        "class_rows": _class_rows(metrics), "confusion": _confusion(metrics), "per_patient": _per_patient(metrics),
        "task_rows": _task_rows(metrics),
        "localisation": localisation if isinstance(localisation, Mapping) else None,
        "localisation_rows": (_localisation_rows(localisation, "") if isinstance(localisation, Mapping) else [])
        + (_localisation_rows(lesion_map, " (lesion map)") if isinstance(lesion_map, Mapping) else []),
        "has_lesion_map": isinstance(lesion_map, Mapping),
        "robustness": get(metrics, "robustness"), "robustness_rows": _robustness_rows(get(metrics, "robustness")),
        "comparison_rows": _comparison_rows(info),
        "selected": selected or get(info, "architecture", "name"),
        "cross_validation": cross_validation if isinstance(cross_validation, Mapping) else None,
        "cv_header": _cv_table(cross_validation)[0], "cv_rows": _cv_table(cross_validation)[1], "cv_fits": get(cross_validation, "n_fits") or get(cross_validation, "n_splits"),
        "errors": _errors(metrics),
        "reliability_rows": _reliability_rows(metrics),
        "slides": get(metrics, "slides"), "slide_rows": _slide_rows(metrics),
        "teacher": get(info, "teacher"), "teacher_rows": _teacher_rows(info),
        "slide_header": [*_SLIDE_HEADER, "Truth vs map"], "teacher_header": _TEACHER_HEADER,
        "separable": (get(info, "decision", "validation_accuracy_outside_band") == 1.0
                      and get(info, "decision", "validation_fraction_indeterminate") == 0.0),
        "negatives": ([str(label) for label in labels if label != get(info, "positive_label")]
                      if isinstance(labels, Sequence) else []),
        "optimism": _validation_optimism(info, metrics),
        # Bundles calibrated on out-of-fold predictions say so, not "the validation patients only".
        "cross_validated": str(get(info, "calibration", "fitted_on") or "").startswith("out-of-fold"),
        "patient_factor": _PATIENT_FACTOR,
    }


def render_model_card(model_info: dict, metrics: dict) -> str:
    """Render MODEL_CARD.md from a bundle's model.json and metrics.json.

    Args:
        model_info: the model.json dictionary (docs/SCHEMAS.md), including ``comparison``.
        metrics: the metrics.json dictionary of the test split.

    Returns:
        Markdown text, research-use notice first, then the sections of Mitchell et al. (2019):
        model details, intended use (with out-of-scope uses), factors, metrics, evaluation
        data, training data, quantitative analyses, architecture comparison, ethical
        considerations, caveats and recommendations. Missing values read "not recorded".
    """
    info, metrics = model_info or {}, metrics or {}
    module = _modality(info)
    context = _context(info, metrics)
    card_context = getattr(module, "card_context", None)
    if card_context:
        context.update(card_context(info, metrics))
    return render(getattr(module, "CARD_TEMPLATE", "model_card.md.j2"), **context)


_PICTURE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")


@dataclass(frozen=True)
class CardSection:
    """One ``## `` section of a model card: its title, its text with pictures named, and the pictures."""

    title: str
    body: str
    pictures: tuple[tuple[Path, str], ...] = ()


def card_sections(markdown: str, folder: Path) -> tuple[str, list[CardSection]]:
    """``(preamble, sections)`` of a card, for a page that folds long sections.

    Why: a card's pictures are relative links (``slide_8916.png``) that a file viewer resolves
    beside the card but a web page cannot; here each becomes "(picture N below)" in the text and
    a path in ``pictures`` (only files inside ``folder``), for the page to draw under the section.
    """
    parts = re.split(r"^## ", markdown, flags=re.MULTILINE)
    preamble, sections = parts[0], []
    root = folder.resolve()
    for part in parts[1:]:
        title, _, body = part.partition("\n")
        pictures: list[tuple[Path, str]] = []

        def named(match: re.Match) -> str:
            path = (folder / match.group(2)).resolve()
            if path.parent != root or not path.is_file():
                return match.group(1)
            pictures.append((path, match.group(1)))
            return f"(picture {len(pictures)} below)"

        sections.append(CardSection(title.strip(), _PICTURE.sub(named, body), tuple(pictures)))
    return preamble, sections
