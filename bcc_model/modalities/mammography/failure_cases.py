"""The model card's failure cases: the test images the mammography model got most confidently wrong.

A clinician learns more about where a model fails from four pictures than from a table: each
shows what the model read (the preprocessed breast with its mask outlined in blue), the annotated
lesion (MIAS, in green), and the lesion map with its numbered marks. Picked per data set among the
errors at the bundle's threshold: the cancers with the lowest P(malignant) and the non-cancers
with the highest.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CASES_PER_KIND", "failure_case_pictures"]

CASES_PER_KIND = 2


def _picture(image: np.ndarray, lesion_map: np.ndarray, lesion: np.ndarray | None) -> bytes:
    from bcc_model.explain.marks import draw_marks, lesion_marks
    from bcc_model.explain.overlay import encode_png, outline_region, overlay_heatmap
    from bcc_model.modalities.mammography.hygiene import breast_region

    view = np.clip(image[..., 0], 0, 255).astype(np.uint8)
    breast = breast_region(view)
    left = outline_region(view, breast, colour=(80, 160, 255))
    if lesion is not None and lesion.any():
        left = outline_region(left, lesion)
    right = draw_marks(overlay_heatmap(view, lesion_map, opacity=0.45), lesion_marks(lesion_map, region=breast))
    return encode_png(np.concatenate([left, np.full((view.shape[0], 8, 3), 255, np.uint8), right], axis=1))


def failure_case_pictures(cases: dict, data_dirs: dict, spec, threshold: float) -> tuple[list[dict], dict[str, bytes]]:
    """``(records, files)``: per data set the most confident misses and false alarms at ``threshold``, as PNG files."""
    from bcc_model.datasets.lesions import model_space_masks

    records, files = [], {}
    for name, case in cases.items():
        p, positive, test = case["p"], case["positive"], case["test"]
        missed = [i for i in np.argsort(p) if positive[i] and p[i] < threshold][:CASES_PER_KIND]
        alarms = [i for i in np.argsort(-p) if not positive[i] and p[i] >= threshold][:CASES_PER_KIND]
        picked = [(i, "missed cancer") for i in missed] + [(i, "false alarm") for i in alarms]
        lesions = (model_space_masks(test.iloc[[i for i, _ in picked]], data_dirs[name], spec)
                   if set(test["label"]) <= set(spec.labels) else [None] * len(picked))
        for n, ((i, kind), lesion) in enumerate(zip(picked, lesions), start=1):
            file = f"failure_{name}_{n}.png"
            files[file] = _picture(case["images"][i], case["maps"][i], lesion)
            records.append({"data_set": name, "kind": kind, "label": str(test["label"].iloc[i]),
                            "p_malignant": float(p[i]), "picture": file})
    return records, files
