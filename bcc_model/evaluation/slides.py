"""Region mode scored on rebuilt whole slides: tile-level discrimination and the slide's IDC share.

A pathologist uploads a field or a slide, not a 50 px patch. Running region mode
(``analysis.region``) on a slide rebuilt from its labelled patches (``datasets.slides``) scores
what that user sees: every tissue tile against its patch label (ROC AUC, balanced accuracy at
the bundle's threshold) and the share of tissue the map calls IDC against the true share.
Patches that region mode skipped as glass are counted, not silently dropped.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from bcc_model.analysis.region import RegionResult, analyse_region
from bcc_model.datasets.slides import RebuiltSlide
from bcc_model.models.bundle import Bundle

__all__ = ["slide_scores"]


def slide_scores(bundle: Bundle, slide: RebuiltSlide) -> tuple[dict, RegionResult]:
    """Region mode on ``slide`` at the model's own scale, scored against the patch labels.

    Returns:
        ``(scores, result)``: scores hold ``patient``, ``n_patches``, ``n_scored`` (patches whose
        tile region mode classified), ``n_skipped`` (patches it took for glass, or edge patches
        smaller than a tile), ``roc_auc`` and ``balanced_accuracy`` over scored tiles,
        ``true_positive_share`` (all patches), ``true_positive_share_scored``,
        ``predicted_positive_share`` (scored tiles called IDC at the bundle's threshold) and
        ``expected_positive_share`` (the mean calibrated P(IDC) of the scored tiles: with
        calibrated probabilities, the unbiased estimate of the share, where thresholding each
        tile overcalls a slide whose tiles sit near the threshold);
        ``result`` is the region result, for pictures.
    """
    result = analyse_region(bundle, slide.rgb, bundle.spec.model_mpp)
    by_corner = {(int(x0), int(y0)): i for i, (x0, y0, _, _) in enumerate(result.tiles.boxes.tolist())}
    pairs = [(by_corner[(int(x0), int(y0))], label) for (x0, y0, x1, y1), label in zip(slide.boxes.tolist(),
                                                                                       slide.labels.tolist())
             if (int(x0), int(y0)) in by_corner and (x1 - x0, y1 - y0) == result.tiles.patches.shape[1:3]]
    tiles = np.array([tile for tile, _ in pairs], np.int64)
    truth = np.array([label for _, label in pairs], np.int64)
    p = result.positive_probabilities[tiles] if len(tiles) else np.zeros(0, np.float32)
    predicted = (p >= result.threshold).astype(int)
    both = len(set(truth.tolist())) == 2
    return {
        "patient": slide.patient,
        "n_patches": int(len(slide.labels)),
        "n_scored": int(len(tiles)),
        "n_skipped": int(len(slide.labels) - len(tiles)),
        "roc_auc": float(roc_auc_score(truth, p)) if both else None,
        "balanced_accuracy": float(balanced_accuracy_score(truth, predicted)) if both else None,
        "true_positive_share": slide.positive_share,
        "true_positive_share_scored": float(truth.mean()) if len(truth) else None,
        "predicted_positive_share": float(predicted.mean()) if len(predicted) else None,
        "expected_positive_share": float(p.mean()) if len(p) else None,
    }, result


def validate_slides(bundle: Bundle, table, data_dir, patients: list[str]) -> tuple[dict, list[tuple[str, bytes]]]:
    """Region mode on the rebuilt slides of ``patients`` (complete slides the bundle never trained on).

    Args:
        bundle: the bundle to score.
        table: ``labels.csv`` of the data folder (``file, label, group, coverage``).
        data_dir: the data folder.
        patients: whose slides to rebuild (``datasets.slides.complete_patients`` in the test split).

    Returns:
        ``(block, pictures)``: the metrics.json ``slides`` block (method, one row per slide as
        :func:`slide_scores`, and a summary: mean tile ROC AUC, mean and largest absolute error of
        the thresholded and of the expected IDC share against the true share of the scored
        tiles), and per slide a PNG
        of its truth beside the model's map, drawn on blank glass (no tissue pixels leave the
        data folder).
    """
    from bcc_model.datasets.slides import rebuild_slide
    from bcc_model.reporting.slide_maps import truth_beside_map

    rows, pictures = [], []
    for patient in patients:
        slide = rebuild_slide(table, data_dir, patient, bundle.labels)
        scores, result = slide_scores(bundle, slide)
        rows.append(scores)
        pictures.append((patient, truth_beside_map(slide, result, tissue=False)))
    def share_errors(key: str) -> list[float]:
        return [abs(r[key] - r["true_positive_share_scored"]) for r in rows
                if r[key] is not None and r["true_positive_share_scored"] is not None]

    errors, expected_errors = share_errors("predicted_positive_share"), share_errors("expected_positive_share")
    aucs = [r["roc_auc"] for r in rows if r["roc_auc"] is not None]
    return {
        "method": "region mode at the model's scale on each complete slide of a test patient, rebuilt from its "
                  "labelled patches; every tissue tile scored against its patch label, IDC share at the bundle's "
                  "threshold against the true share of the scored tiles",
        "slides": rows,
        "summary": {"n_slides": len(rows), "mean_roc_auc": float(np.mean(aucs)) if aucs else None,
                    "mean_abs_share_error": float(np.mean(errors)) if errors else None,
                    "max_abs_share_error": float(np.max(errors)) if errors else None,
                    "mean_abs_expected_share_error": float(np.mean(expected_errors)) if expected_errors else None,
                    "max_abs_expected_share_error": float(np.max(expected_errors)) if expected_errors else None},
    }, pictures
