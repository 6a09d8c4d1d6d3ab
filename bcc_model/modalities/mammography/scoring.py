"""Scoring the mammography cell model once on each data set's test patients, through the full image model.

Per data set: the metrics.json block (patient-bootstrap CIs), the histogram-only baseline on the
same images, and where the lesion map's maximum falls (outside the breast mask, or on a bright
mark such as burnt-in text). On the lesion-annotated set (MIAS) also: the pointing game of the
lesion map and of Grad-CAM, FROC of the marks, and results per abnormality class. The first data
set's block is the bundle's main block (its labels are the model's); the others sit under
``datasets``, and the app's caution reads every one of them.
"""

from __future__ import annotations

import logging
import numpy as np
import pandas as pd

from bcc_model.modalities.mammography.features import Source
from bcc_model.registry import ModalitySpec
from bcc_model.training.config import TrainConfig

log = logging.getLogger(__name__)

__all__ = ["BRIGHT_MARK", "map_peak_places", "per_abnormality", "test_metrics", "source_metrics"]

IMAGE_BATCH = 8
"""Whole 512 px mammograms per forward pass: DenseNet121's activations at batch 32 take gigabytes."""
BRIGHT_MARK = 200
"""Grey level above which a pixel outside the breast is a bright mark (label, burnt-in text, marker)."""


def map_peak_places(maps: np.ndarray, views: np.ndarray) -> dict:
    """How often each image's lesion-map maximum lies outside the breast, and on a bright mark there.

    A map whose peak sits on the background, the blanked pectoral muscle or a film label reads
    something that is not breast tissue: the shortcut check the issue asks for.
    """
    from bcc_model.modalities.mammography.hygiene import breast_region

    outside, on_mark = 0, 0
    for lesion_map, view in zip(maps, views):
        y, x = np.unravel_index(int(np.argmax(lesion_map)), lesion_map.shape)
        if not breast_region(view)[y, x]:
            outside += 1
            near = view[max(0, y - 16):y + 16, max(0, x - 16):x + 16]
            on_mark += int((near > BRIGHT_MARK).any())
    n = max(len(maps), 1)
    return {"images": int(len(maps)), "outside_breast": outside / n, "on_bright_mark": on_mark / n}


def per_abnormality(table: pd.DataFrame, data_dir, p_abnormal: np.ndarray, peak_hits: dict[int, bool]) -> list[dict]:
    """Per MIAS abnormality class: abnormal-vs-normal ROC AUC against every normal test image, and pointing."""
    from sklearn.metrics import roc_auc_score

    lesions = pd.read_csv(data_dir / "lesions.csv", dtype=str, keep_default_na=False)
    kind = lesions.drop_duplicates("file").set_index("file")["abnormality"]
    normal = (table["label"] == "normal").to_numpy()
    rows = []
    names = {"CALC": "calcification", "CIRC": "circumscribed mass", "SPIC": "spiculated mass",
             "MISC": "ill-defined mass", "ARCH": "architectural distortion", "ASYM": "asymmetry"}
    for code, name in names.items():
        members = table["file"].map(kind).eq(code).to_numpy()
        if not members.any():
            continue
        keep = members | normal
        auc = (float(roc_auc_score(members[keep].astype(int), p_abnormal[keep]))
               if normal.any() else None)
        hits = [peak_hits[i] for i in np.flatnonzero(members) if i in peak_hits]
        rows.append({"abnormality": name, "images": int(members.sum()), "abnormal_vs_normal_auc": auc,
                     "pointing_hits": int(sum(hits)), "pointing_scored": len(hits)})
    return rows


def source_metrics(model, lesion_model, source: "Source", spec: ModalitySpec, choice: dict,
                   config: "TrainConfig") -> tuple[dict, dict]:
    """One data set's test block, and what the failure-case pictures need (images, maps, probabilities)."""
    from bcc_model.analysis.predictions import raw_probabilities
    from bcc_model.datasets.folders import load_images
    from bcc_model.evaluation.baseline import histogram_baseline
    from bcc_model.models.decision import OperatingPoint, apply_temperature
    from bcc_model.evaluation.metrics import compute_metrics
    from bcc_model.models.lesion_head import lesion_maps

    test = source.table[source.table["split"] == "test"].reset_index(drop=True)
    images = load_images(test, source.data_dir, spec).astype(np.float32)
    probs = apply_temperature(raw_probabilities(model, images, batch_size=IMAGE_BATCH,
                                                flips=spec.recipe.test_time_flips), choice["temperature"])
    groups = test["group"].tolist()
    screening = bool(set(test["label"]) - set(spec.labels))
    point = OperatingPoint(spec.labels, spec.positive_index, choice["threshold"], tuple(choice["band"]),
                           choice["temperature"], None if screening else choice.get("conformal"))
    if screening:
        point = OperatingPoint((f"not {spec.positive_label}", spec.positive_label), 1, point.threshold, point.band,
                               point.temperature)
        y = (test["label"] == spec.positive_label).to_numpy(int)
        scored = np.stack([1 - probs[:, spec.positive_index], probs[:, spec.positive_index]], axis=1)
    else:
        y, scored = test["label"].map(spec.labels.index).to_numpy(), probs
    block = compute_metrics(scored, y, groups, point, split="test", n_resamples=config.bootstrap, seed=config.seed,
                            binary_tasks=None if screening else spec.recipe.extra_binary_tasks or None)
    block["data_set"] = source.name
    if point.conformal is not None:
        from bcc_model.evaluation.conformal import conformal_report

        block["conformal"] = conformal_report(point.conformal, scored, y, groups, n_resamples=config.bootstrap,
                                              seed=config.seed)
    rule = (choice.get("patient_pooling") or {}).get(source.name, {}).get("rule")
    if screening and rule:  # read per woman, with the rule chosen out of fold
        from bcc_model.evaluation.grouped import group_roc_auc

        block["patient_level"] = group_roc_auc(probs[:, spec.positive_index], y, groups, rule,
                                               n_resamples=config.bootstrap, seed=config.seed)
    block["histogram_baseline"] = histogram_baseline(source.data_dir, test, spec.positive_label,
                                                     n_resamples=config.bootstrap, seed=config.seed)
    maps = lesion_maps(lesion_model, images, batch_size=IMAGE_BATCH)
    views = np.clip(images[..., 0], 0, 255).astype(np.uint8)
    block["map_peak"] = map_peak_places(maps, views)
    if not screening:
        block.update(_localisation(model, lesion_model, test, source, images, y, maps, spec, config,
                                   1 - probs[:, spec.labels.index("normal")]))
    return block, {"test": test, "images": images, "maps": maps, "p": probs[:, spec.positive_index],
                   "positive": (test["label"] == spec.positive_label).to_numpy()}


def _localisation(model, lesion_model, test: pd.DataFrame, source: "Source", images: np.ndarray, y: np.ndarray,
                  maps: np.ndarray, spec: ModalitySpec, config: "TrainConfig", p_abnormal: np.ndarray) -> dict:
    """Pointing game (lesion map and Grad-CAM), FROC of the marks and the per-abnormality table."""
    from bcc_model.datasets.lesions import model_space_masks
    from bcc_model.evaluation.froc import froc
    from bcc_model.evaluation.localisation import explain_and_score, pointing_hit
    from bcc_model.explain.marks import lesion_marks
    from bcc_model.modalities.mammography.hygiene import breast_region
    from bcc_model.evaluation.localisation import lesion_map_localisation

    masks = model_space_masks(test, source.data_dir, spec)
    groups = test["group"].tolist()
    out = {"localisation": explain_and_score(model, images, y, masks, groups, spec, batch_size=IMAGE_BATCH,
                                             n_resamples=config.bootstrap, seed=config.seed),
           "lesion_map_localisation": lesion_map_localisation(lesion_model, images, y, masks, groups, spec,
                                                              n_resamples=config.bootstrap, seed=config.seed)}
    known = [i for i, m in enumerate(masks) if m is not None]
    views = np.clip(images[..., 0], 0, 255).astype(np.uint8)
    marks = [lesion_marks(maps[i], region=breast_region(views[i]), floor=0.0, max_marks=20) for i in known]
    out["froc"] = froc(marks, [masks[i] for i in known], [groups[i] for i in known],
                       n_resamples=config.bootstrap, seed=config.seed)
    hits = {i: pointing_hit(maps[i], masks[i]) for i in known if masks[i].any()}
    out["per_abnormality"] = per_abnormality(test, source.data_dir, p_abnormal, hits)
    return out


def test_metrics(model, head, sources: list["Source"], spec: ModalitySpec, choice: dict,
                 config: "TrainConfig") -> tuple[dict, dict]:
    """metrics.json: the first data set's block with every data set's under ``datasets``; and the picture inputs."""
    from bcc_model.models.lesion_head import attach_lesion_head, lesion_head_only

    lesion_model = attach_lesion_head(model, lesion_head_only(head))
    blocks, cases = {}, {}
    for source in sources:
        log.info(f"Scoring the {source.name} test patients ...")
        blocks[source.name], cases[source.name] = source_metrics(model, lesion_model, source, spec, choice, config)
    main = dict(blocks[sources[0].name])
    main["datasets"] = blocks
    return main, cases
