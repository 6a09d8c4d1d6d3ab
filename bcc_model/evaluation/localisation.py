"""Does the heatmap point at the lesion? Localisation scores of Grad-CAM against lesion geometry.

A classifier can be right for the wrong reason (a film label, a caliper, the breast's density),
and a heatmap alone does not tell. With annotated lesions we can count how often the heatmap
lands on them:

* **pointing game** (Zhang et al. 2018): a hit when the heatmap's maximum lies inside the lesion
  mask (within ``tolerance_px`` of it); the score is the share of hits;
* **energy inside** (the "proportion" of Wang et al. 2020, Score-CAM, sec. 4.3): the share of the
  heatmap's total mass that falls inside the mask; it rewards compact maps on the lesion and
  penalises maps that also light up elsewhere. Only meaningful for outlines (masks); a MIAS
  circle is a loose bound, so it is reported for mask sources only.

Both are computed on test images of the lesion classes, for the true class, with the bundle's
Grad-CAM (``explain.Explainer``). Images whose geometry is unknown are excluded and counted.
Intervals resample whole groups (patients), like every other test figure.

References:
    Zhang, Bargal, Lin, Brandt, Shen & Sclaroff (2018). Top-down neural attention by excitation
        backprop. IJCV 126:1084-1102.
    Wang et al. (2020). Score-CAM: Score-weighted visual explanations for convolutional neural
        networks. CVPR Workshops.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from bcc_model.evaluation.bootstrap import group_bootstrap_mean
from bcc_model.registry import ModalitySpec

__all__ = ["pointing_hit", "energy_inside", "localisation_scores", "explain_and_score", "lesion_map_localisation"]


def _check_pair(heatmap: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    heat = np.asarray(heatmap, dtype=np.float64)
    region = np.asarray(mask).astype(bool)
    if heat.ndim != 2 or heat.shape != region.shape:
        raise ValueError(f"heatmap {heat.shape} and mask {region.shape} must be equal 2-D shapes")
    if not np.all(np.isfinite(heat)) or heat.min() < 0:
        raise ValueError("heatmap must be finite and non-negative")
    if not region.any():
        raise ValueError("mask is empty: no lesion to point at")
    return heat, region


def pointing_hit(heatmap: np.ndarray, mask: np.ndarray, *, tolerance_px: float = 0.0) -> bool:
    """Whether the heatmap's maximum lies on the lesion (Zhang et al. 2018).

    Args:
        heatmap: HxW non-negative map (any scale).
        mask: HxW lesion mask, same shape.
        tolerance_px: a peak within this distance (px) of the mask still counts; Zhang et al. use
            15 px at 224 px input. Ties between equal maxima: the first in row-major order.

    Returns:
        True for a hit. An all-zero map has no peak and is a miss.
    """
    heat, region = _check_pair(heatmap, mask)
    if heat.max() <= 0:
        return False
    row, col = np.unravel_index(int(np.argmax(heat)), heat.shape)
    if tolerance_px <= 0:
        return bool(region[row, col])
    distance = cv2.distanceTransform((~region).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return bool(distance[row, col] <= tolerance_px)


def energy_inside(heatmap: np.ndarray, mask: np.ndarray) -> float:
    """Share of the heatmap's mass inside the mask: ``sum(h * m) / sum(h)``, in [0, 1].

    An all-zero map puts no mass on the lesion and scores 0.
    """
    heat, region = _check_pair(heatmap, mask)
    total = heat.sum()
    return float(heat[region].sum() / total) if total > 0 else 0.0


def localisation_scores(heatmaps: Sequence[np.ndarray], masks: Sequence[np.ndarray | None], groups: Sequence[str],
                        *, energy: bool, tolerance_px: float = 0.0, n_resamples: int = 1000, seed: int = 0) -> dict:
    """Pointing game (and energy inside) over images, with group-bootstrap intervals.

    Args:
        heatmaps: one HxW non-negative map per image.
        masks: the lesion mask of each image in the same pixels, ``None`` when unknown (excluded).
        groups: group (patient) of each image.
        energy: also report ``energy_inside`` (for outline masks, not loose circles).
        tolerance_px: pointing-game tolerance (see ``pointing_hit``).
        n_resamples: bootstrap resamples over groups.
        seed: bootstrap seed.

    Returns:
        The metrics.json ``localisation`` block: ``pointing_game`` (and ``energy_inside``) as
        ``{"value", "ci95", "n"}``, ``n_excluded`` and ``tolerance_px``.
    """
    if not len(heatmaps) == len(masks) == len(groups):
        raise ValueError(f"need one mask and group per heatmap, got {len(heatmaps)}, {len(masks)}, {len(groups)}")
    kept = [i for i, mask in enumerate(masks) if mask is not None and np.asarray(mask).any()]
    kept_groups = [groups[i] for i in kept]
    hits = [float(pointing_hit(heatmaps[i], masks[i], tolerance_px=tolerance_px)) for i in kept]
    block = {"pointing_game": group_bootstrap_mean(np.array(hits), kept_groups, n_resamples=n_resamples, seed=seed)}
    if energy:
        shares = [energy_inside(heatmaps[i], masks[i]) for i in kept]
        block["energy_inside"] = group_bootstrap_mean(np.array(shares), kept_groups, n_resamples=n_resamples, seed=seed)
    return {**block, "n_excluded": len(masks) - len(kept), "tolerance_px": float(tolerance_px)}


def explain_and_score(model, images: np.ndarray, y: np.ndarray, masks: Sequence[np.ndarray | None],
                      groups: Sequence[str], spec: ModalitySpec, *, method: str = "Grad-CAM", batch_size: int = 8,
                      n_resamples: int = 1000, seed: int = 0) -> dict:
    """Heatmaps for the true class of every lesion-class image, scored against its mask.

    Args:
        model: the trained Keras classifier.
        images: (N, H, W, C) model inputs (uint8 or float32 in [0, 255]).
        y: (N,) true class indices into ``spec.labels``.
        masks: per image, a bool HxW model-space lesion mask or ``None`` (``lesions.model_space_masks``).
        groups: per image, its group (patient).
        spec: the modality: its ``lesion_labels``, ``cam_layer`` and ``lesion_source``.
        method: heatmap method of ``explain.CAM_METHODS``.
        batch_size: images per heatmap call.
        n_resamples: bootstrap resamples over groups.
        seed: bootstrap seed.

    Returns:
        The ``localisation`` block of ``localisation_scores`` plus ``method``, ``target``
        (``"true class"``) and ``labels`` (the lesion classes scored).
    """
    from bcc_model.explain.cams import Explainer

    explainer = Explainer(model, spec.labels, spec.cam_layer)
    heatmaps: list[np.ndarray] = []
    order: list[int] = []
    for label in spec.recipe.lesion_labels:
        members = np.flatnonzero(np.asarray(y) == spec.labels.index(label)).tolist()
        for start in range(0, len(members), batch_size):
            part = members[start:start + batch_size]
            heatmaps += list(explainer.heatmaps(images[part].astype(np.float32), label, method=method))
        order += members
    block = localisation_scores(heatmaps, [masks[i] for i in order], [groups[i] for i in order],
                                energy=spec.recipe.lesion_source == "masks", n_resamples=n_resamples, seed=seed)
    return {**block, "method": method, "target": "true class", "labels": list(spec.recipe.lesion_labels)}


def lesion_map_localisation(map_model, images: np.ndarray, y: np.ndarray,
                            masks: Sequence[np.ndarray | None], groups: Sequence[str], spec: ModalitySpec, *,
                            n_resamples: int = 1000, seed: int = 0) -> dict:
    """Pointing game (and energy inside, for outlines) of the lesion map on lesion-class images.

    Scored exactly as the Grad-CAM ``localisation`` block (:func:`localisation_scores`),
    so the two rows of a model card compare like with like.
    """
    from bcc_model.models.lesion_head import lesion_maps

    lesion_index = [spec.labels.index(label) for label in spec.recipe.lesion_labels]
    members = [i for i, c in enumerate(y) if int(c) in lesion_index]
    maps = lesion_maps(map_model, images[members], batch_size=8)
    block = localisation_scores(list(maps), [masks[i] for i in members], [groups[i] for i in members],
                                energy=spec.recipe.lesion_source == "masks", n_resamples=n_resamples, seed=seed)
    return {**block, "method": "lesion map", "target": "lesion (any class)", "labels": list(spec.recipe.lesion_labels)}
