"""Region mode scored on rebuilt whole slides: tile-level discrimination and the slide's IDC share.

A pathologist uploads a field or a slide, not a 50 px patch. Running region mode
(``analysis.region``) on a slide rebuilt from its labelled patches (``datasets.slides``) scores
what that user sees: every tissue tile against its patch label (ROC AUC, balanced accuracy at
the bundle's threshold) and the share of tissue the map calls IDC against the true share.
Patches that region mode skipped as glass are counted, not silently dropped.

The same slides choose the slide context (``analysis.context``) by leave-one-slide-out: each
slide is scored with the context that won on the *other* slides (mean tile ROC AUC), so no
reported figure comes from a choice that saw it; the bundle keeps the context that wins on all.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from bcc_model import RESEARCH_USE_NOTICE
from bcc_model.analysis.context import CONTEXT_CANDIDATES, NO_CONTEXT, RegionContext, contextual_probabilities
from bcc_model.analysis.region import RegionResult, analyse_region
from bcc_model.datasets.slides import RebuiltSlide
from bcc_model.models.bundle import Bundle

__all__ = ["slide_scores", "tile_ece", "choose_context", "validate_slides"]


def _scored_tiles(result: RegionResult, slide: RebuiltSlide) -> tuple[np.ndarray, np.ndarray]:
    """``(tile indices, labels)`` of the slide's patches that region mode classified as one tile each."""
    by_corner = {(int(x0), int(y0)): i for i, (x0, y0, _, _) in enumerate(result.tiles.boxes.tolist())}
    pairs = [(by_corner[(int(x0), int(y0))], label) for (x0, y0, x1, y1), label in zip(slide.boxes.tolist(),
                                                                                       slide.labels.tolist())
             if (int(x0), int(y0)) in by_corner and (x1 - x0, y1 - y0) == result.tiles.patches.shape[1:3]]
    return np.array([tile for tile, _ in pairs], np.int64), np.array([label for _, label in pairs], np.int64)


def _auc(truth: np.ndarray, p: np.ndarray) -> float | None:
    return float(roc_auc_score(truth, p)) if len(set(truth.tolist())) == 2 else None


def slide_scores(bundle: Bundle, slide: RebuiltSlide, context: RegionContext | None = None
                 ) -> tuple[dict, RegionResult]:
    """Region mode on ``slide`` at the model's own scale, scored against the patch labels.

    Args:
        bundle: the bundle to score.
        slide: a rebuilt slide with its patch labels.
        context: the slide context to run with (default: the bundle's).

    Returns:
        ``(scores, result)``: scores hold ``patient``, ``n_patches``, ``n_scored`` (patches whose
        tile region mode classified), ``n_skipped`` (patches it took for glass, or edge patches
        smaller than a tile), ``roc_auc`` and ``balanced_accuracy`` over scored tiles (with the
        context), ``roc_auc_patch_only`` (each tile's own patch), ``context``,
        ``true_positive_share`` (all patches), ``true_positive_share_scored``,
        ``predicted_positive_share`` (scored tiles called IDC at the bundle's threshold) and
        ``expected_positive_share`` (the mean calibrated P(IDC) of the scored tiles: with
        calibrated probabilities, the unbiased estimate of the share, where thresholding each
        tile overcalls a slide whose tiles sit near the threshold) with its block-bootstrap
        ``expected_share_interval`` and whether it holds the truth, ``indeterminate_share``,
        ``scored_fraction`` (labelled patches scored) and ``tile_ece`` (expected calibration
        error of the tiles' P(IDC) against their labels: calibration on a whole patient's tissue);
        ``result`` is the region result, for pictures.
    """
    result = analyse_region(bundle, slide.rgb, bundle.spec.model_mpp, context=context)
    tiles, truth = _scored_tiles(result, slide)
    p = result.positive_probabilities[tiles] if len(tiles) else np.zeros(0, np.float32)
    own = result.patch_probabilities[tiles, bundle.spec.positive_index] if len(tiles) else p
    predicted = (p >= result.threshold).astype(int)
    both = len(set(truth.tolist())) == 2
    shares = result.shares
    truth_share = float(truth.mean()) if len(truth) else None
    return {
        "patient": slide.patient,
        "n_patches": int(len(slide.labels)),
        "n_scored": int(len(tiles)),
        "n_skipped": int(len(slide.labels) - len(tiles)),
        "context": result.context.to_json(),
        "roc_auc": _auc(truth, p),
        "roc_auc_patch_only": _auc(truth, own),
        "balanced_accuracy": float(balanced_accuracy_score(truth, predicted)) if both else None,
        "true_positive_share": slide.positive_share,
        "true_positive_share_scored": float(truth.mean()) if len(truth) else None,
        "predicted_positive_share": float(predicted.mean()) if len(predicted) else None,
        "expected_positive_share": float(p.mean()) if len(p) else None,
        "expected_share_interval": None if shares is None or shares.interval is None
        else [float(v) for v in shares.interval],
        "interval_holds_truth": (None if shares is None or shares.interval is None or truth_share is None else
                                 bool(shares.interval[0] <= truth_share <= shares.interval[1])),
        "indeterminate_share": None if shares is None else float(shares.indeterminate),
        "scored_fraction": float(len(tiles) / max(1, len(slide.labels))),
        "tile_ece": tile_ece(p, truth) if len(p) else None,
    }, result


def tile_ece(p: np.ndarray, truth: np.ndarray, n_bins: int = 10) -> float:
    """Expected calibration error of P(positive) over tiles: |observed - predicted| per equal-width bin, weighted by tiles.

    The ECE of ``evaluation.metrics`` pools patches of many patients; on one slide every tile
    of the tissue counts, which is the mix a pathologist reads.
    """
    bins = np.clip((np.asarray(p) * n_bins).astype(int), 0, n_bins - 1)
    gap = sum(abs(float(truth[bins == b].mean()) - float(p[bins == b].mean())) * int((bins == b).sum())
              for b in range(n_bins) if (bins == b).any())
    return float(gap / len(p))


def choose_context(slides: list[tuple[np.ndarray, np.ndarray, np.ndarray]], positive_index: int) -> RegionContext:
    """The candidate context with the best mean tile ROC AUC over ``slides`` (ties: the weaker context).

    Args:
        slides: per slide ``(labels, patch probabilities (N, K), boxes (N, 4))`` of its scored
            tiles, from region mode without context.
        positive_index: the column of the positive class.

    Returns:
        ``NO_CONTEXT`` when no slide has both classes (nothing to choose on).
    """
    def mean_auc(context: RegionContext) -> float:
        aucs = [_auc(truth, contextual_probabilities(probabilities, boxes, context)[:, positive_index])
                for truth, probabilities, boxes in slides]
        finite = [a for a in aucs if a is not None]
        return float(np.mean(finite)) if finite else float("nan")

    scored = [(mean_auc(c), -c.weight, -c.radius, c) for c in CONTEXT_CANDIDATES]
    scored = [row for row in scored if np.isfinite(row[0])]
    return max(scored, key=lambda row: row[:3])[3] if scored else NO_CONTEXT


def validate_slides(bundle: Bundle, table, data_dir, patients: list[str]
                    ) -> tuple[dict, list[tuple[str, bytes]], RegionContext]:
    """Region mode on the rebuilt slides of ``patients`` (complete slides the bundle never trained on).

    Args:
        bundle: the bundle to score.
        table: ``labels.csv`` of the data folder (``file, label, group, coverage``).
        data_dir: the data folder.
        patients: whose slides to rebuild (``datasets.slides.complete_patients`` in the test split).

    Returns:
        ``(block, pictures, context)``: the metrics.json ``slides`` block (method, one row per
        slide as :func:`slide_scores` with the context chosen on the other slides, and a summary:
        mean tile ROC AUC with and without context, mean and largest absolute error of the
        thresholded and of the expected IDC share against the true share of the scored tiles,
        the context chosen on all slides); per slide a PNG of its truth beside the model's map,
        drawn on blank glass (no tissue pixels leave the data folder); and that chosen context,
        for the bundle's ``model.json``.
    """
    from bcc_model.datasets.slides import rebuild_slide
    from bcc_model.reporting.slide_maps import truth_beside_map

    slides = [rebuild_slide(table, data_dir, patient, bundle.labels) for patient in patients]
    plain = []
    for slide in slides:
        result = analyse_region(bundle, slide.rgb, bundle.spec.model_mpp, context=NO_CONTEXT)
        tiles, truth = _scored_tiles(result, slide)
        plain.append((truth, result.patch_probabilities[tiles], result.tiles.boxes[tiles]))
    positive = bundle.spec.positive_index
    label = bundle.spec.display(bundle.spec.positive_label)
    footer = (f"Complete slide of a test patient; model {bundle.meta.name}, version {bundle.short_sha}.", RESEARCH_USE_NOTICE)
    rows, pictures = [], []
    for i, slide in enumerate(slides):
        context = choose_context(plain[:i] + plain[i + 1:], positive)
        scores, result = slide_scores(bundle, slide, context)
        rows.append(scores)
        pictures.append((slide.patient, truth_beside_map(slide, result, tissue=False, label=label, footer=footer)))
    chosen = choose_context(plain, positive)

    def share_errors(key: str) -> list[float]:
        return [abs(r[key] - r["true_positive_share_scored"]) for r in rows
                if r[key] is not None and r["true_positive_share_scored"] is not None]

    def mean_of(key: str) -> float | None:
        values = [r[key] for r in rows if r[key] is not None]
        return float(np.mean(values)) if values else None

    errors, expected_errors = share_errors("predicted_positive_share"), share_errors("expected_positive_share")
    held = [r["interval_holds_truth"] for r in rows if r["interval_holds_truth"] is not None]
    return {
        "method": "region mode at the model's scale on each complete slide of a test patient, rebuilt from its "
                  "labelled patches; every tissue tile scored against its patch label, IDC share at the bundle's "
                  "threshold against the true share of the scored tiles. Slide context chosen by "
                  "leave-one-slide-out: each slide is scored with the context that had the best mean tile ROC AUC "
                  "on the other slides",
        "slides": rows,
        "summary": {"n_slides": len(rows), "mean_roc_auc": mean_of("roc_auc"),
                    "mean_roc_auc_patch_only": mean_of("roc_auc_patch_only"),
                    "context": {**chosen.to_json(), "chosen_on": f"mean tile ROC AUC over {len(rows)} complete "
                                                                 "test slides", "description": chosen.describe()},
                    "mean_abs_share_error": float(np.mean(errors)) if errors else None,
                    "max_abs_share_error": float(np.max(errors)) if errors else None,
                    "mean_abs_expected_share_error": float(np.mean(expected_errors)) if expected_errors else None,
                    "max_abs_expected_share_error": float(np.max(expected_errors)) if expected_errors else None,
                    "slides_within_0.10": int(sum(e <= 0.10 for e in expected_errors)),
                    "intervals_holding_truth": int(sum(held)),
                    "mean_tile_ece": mean_of("tile_ece"),
                    "min_scored_fraction": min((r["scored_fraction"] for r in rows), default=None)},
    }, pictures, chosen
