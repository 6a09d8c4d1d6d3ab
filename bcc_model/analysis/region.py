"""Region mode: classify an H&E image larger than one model patch, tile by tile.

The model only ever saw 50 px patches at its training scale, so a larger field of view is cut
into tiles at that scale (``tiling.tile_image``: glass is skipped), every tissue tile is
classified with the same calibrated probabilities and decision rule as a single upload
(``predict``), and the tile results are painted back onto the image (``tiling.merge_to_map``).
The few most suspicious tiles get a Grad-CAM so a reader can check what drove them. Where the
bundle records a ``region_context`` (``analysis.context``), each tile's probabilities also borrow
from its neighbours', as chosen on whole slides at training time.

The result is a plain dataclass of numpy arrays: picklable, so the app can cache it per image.
Nothing here imports Streamlit; callers that share one model between threads must serialise
calls (the app holds its TensorFlow lock around ``analyse_region``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from bcc_model.models.bundle import Bundle
from bcc_model.analysis.context import RegionContext, bundle_context, contextual_probabilities
from bcc_model.analysis.predictions import Prediction, calibrated_probabilities, predictions_from_probabilities
from bcc_model.imaging.preprocess import to_model_batch
from bcc_model.analysis.shares import ShareSummary, share_summary
from bcc_model.imaging.tiling import Tiles, flagged_fraction, merge_to_map, tile_image, top_tiles

__all__ = ["RegionResult", "TileView", "analyse_region", "explain_tile", "PROGRESS_TILES"]

PROGRESS_TILES = 512
"""Tiles classified between two progress reports."""


def _classified(bundle: Bundle, chunk: np.ndarray, start: int, total: int,
                progress: Callable[[int, int], None] | None) -> np.ndarray:
    probabilities = calibrated_probabilities(bundle, chunk)
    if progress is not None:
        progress(start + len(chunk), total)
    return probabilities


@dataclass(frozen=True)
class RegionResult:
    """Tile-level results of one region, in the original image's pixel grid.

    Attributes:
        prob_map: float32 HxW, P(``positive_label``) averaged over the tiles covering each
            pixel; NaN where nothing was analysed (glass, or the right/bottom margin narrower
            than one tile).
        tiles: the tissue tiles (model-scale patches, boxes ``x0, y0, x1, y1`` in original
            px, count of skipped background tiles).
        probabilities: float32 (N, K) calibrated probabilities per tile, columns in ``labels``
            order, with the slide context applied (what the map, flags and decisions use).
        patch_probabilities: float32 (N, K) the same from each tile's own patch alone.
        context: the slide context applied (``NO_CONTEXT`` leaves the two arrays equal).
        labels: class names, model-output order.
        positive_label: the class the map, threshold and flags refer to.
        threshold: decision threshold on P(``positive_label``) (from the bundle).
        band: the bundle's indeterminate band on P(``positive_label``).
        flagged_fraction: share of tissue tiles with P(``positive_label``) >= ``threshold``;
            ``None`` when the image has no tissue tile (undefined, not 0).
        top_indices: int64 (k,) tile indices, most suspicious first.
        top_predictions: the decision (label, indeterminate flag) for each top tile.
        top_heatmaps: float32 (k, p, p) Grad-CAM of ``positive_label`` in [0, 1] on each top
            tile's model-scale patch, or ``None`` when no explainer was given.
        top_crops: uint8 RGB crops of the original image under each top tile's box (full
            resolution, for display next to the heatmap).
        image_mpp: scale of the analysed image in µm per pixel.
        model_mpp: the model's training scale in µm per pixel.
    """

    prob_map: np.ndarray
    tiles: Tiles
    probabilities: np.ndarray
    patch_probabilities: np.ndarray
    context: RegionContext
    labels: tuple[str, ...]
    positive_label: str
    threshold: float
    band: tuple[float, float]
    flagged_fraction: float | None
    top_indices: np.ndarray
    top_predictions: tuple[Prediction, ...]
    top_heatmaps: np.ndarray | None
    top_crops: tuple[np.ndarray, ...]
    image_mpp: float
    model_mpp: float

    @property
    def n_tiles(self) -> int:
        """Number of tissue tiles classified."""
        return int(self.probabilities.shape[0])

    @property
    def shares(self) -> ShareSummary | None:
        """Flagged, expected (with its interval) and indeterminate shares of the tissue tiles."""
        positive = self.probabilities[:, self.labels.index(self.positive_label)]
        return share_summary(positive, self.tiles.boxes, self.threshold, self.band)

    @property
    def top_boxes(self) -> list[tuple[int, int, int, int]]:
        """``(x0, y0, x1, y1)`` in original px of each top tile, most suspicious first."""
        return [tuple(box) for box in self.tiles.boxes[self.top_indices].tolist()]

    @property
    def positive_probabilities(self) -> np.ndarray:
        """float32 (N,) P(``positive_label``) per tile."""
        return self.probabilities[:, self.labels.index(self.positive_label)]


def analyse_region(
    bundle: Bundle,
    rgb: np.ndarray,
    image_mpp: float,
    *,
    explainer=None,
    top_k: int = 4,
    stride_px: int | None = None,
    context: RegionContext | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RegionResult:
    """Tile, classify and map an H&E region with a loaded bundle.

    Args:
        bundle: a loaded histopathology bundle (its spec gives patch size and ``mpp``).
        rgb: uint8 HxWx3 RGB image, larger than one patch at the model's scale.
        image_mpp: scale of ``rgb`` in µm per pixel (e.g. 0.25 for a 40x scan;
            ``tiling.magnification_to_mpp`` converts a magnification).
        explainer: an ``explain.Explainer`` for ``bundle.model``; when given, the ``top_k``
            tiles get a Grad-CAM of the positive label.
        top_k: how many of the most suspicious tiles to return (fewer if fewer tiles).
        stride_px: step between tiles in model-scale px (default: the patch size, no overlap).
        context: slide context to apply; default: the bundle's (``model.json`` ``region_context``).
        progress: called as ``progress(tiles_done, tiles_total)`` after each batch of tiles, so
            a caller can show progress (and stop the run by raising from it).

    Returns:
        The map, the per-tile probabilities, the flagged share and the top tiles.

    Raises:
        ValueError: the modality is not a fixed-scale patch model (no ``mpp``, or a whole-image
            model with ``mpp_at_size``), the image is not colour, or it is smaller than one patch
            at the model's scale (message says how large it must be).
    """
    spec = bundle.spec
    model_mpp = spec.model_mpp
    if model_mpp is None or spec.mpp_at_size is not None:
        raise ValueError(
            f"the {spec.key} model is not a fixed-scale patch model (mpp {spec.mpp}, mpp_at_size "
            f"{spec.mpp_at_size}), so it cannot tile a region"
        )
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(
            f"region mode needs a colour (RGB) H&E image; this image has shape {rgb.shape} (greyscale?)"
        )
    tiles = tile_image(rgb, image_mpp=float(image_mpp), model_mpp=float(model_mpp), patch_px=spec.input_size,
                       stride_px=stride_px)
    labels = bundle.labels
    positive_label = spec.positive_label
    context = bundle_context(bundle.meta.extras) if context is None else context
    if len(tiles.patches) == 0:
        return RegionResult(
            prob_map=np.full(tiles.image_shape, np.nan, np.float32),
            tiles=tiles,
            probabilities=np.zeros((0, len(labels)), np.float32),
            patch_probabilities=np.zeros((0, len(labels)), np.float32),
            context=context,
            labels=labels,
            positive_label=positive_label,
            threshold=bundle.threshold,
            band=bundle.band,
            flagged_fraction=None,
            top_indices=np.zeros(0, np.int64),
            top_predictions=(),
            top_heatmaps=None if explainer is None else np.zeros((0, spec.input_size, spec.input_size), np.float32),
            top_crops=(),
            image_mpp=float(image_mpp),
            model_mpp=float(model_mpp),
        )

    batch = to_model_batch(tiles.patches, spec)
    own = np.concatenate([
        _classified(bundle, batch[start:start + PROGRESS_TILES], start, len(batch), progress)
        for start in range(0, len(batch), PROGRESS_TILES)])
    step = None if stride_px is None else stride_px * model_mpp / float(image_mpp)
    probabilities = contextual_probabilities(own, tiles.boxes, context, step)
    positive = probabilities[:, spec.positive_index]
    top = top_tiles(positive, top_k)
    heatmaps = None
    if explainer is not None:
        heatmaps = explainer.heatmaps(batch[top], positive_label)
    crops = tuple(
        np.ascontiguousarray(rgb[y0:y1, x0:x1]) for x0, y0, x1, y1 in tiles.boxes[top].tolist()
    )
    return RegionResult(
        prob_map=merge_to_map(tiles.boxes, positive, tiles.image_shape),
        tiles=tiles,
        probabilities=probabilities,
        patch_probabilities=own,
        context=context,
        labels=labels,
        positive_label=positive_label,
        threshold=bundle.threshold,
        band=bundle.band,
        flagged_fraction=flagged_fraction(positive, bundle.threshold),
        top_indices=top,
        top_predictions=tuple(predictions_from_probabilities(bundle, probabilities[top])),
        top_heatmaps=heatmaps,
        top_crops=crops,
        image_mpp=float(image_mpp),
        model_mpp=float(model_mpp),
    )


@dataclass(frozen=True)
class TileView:
    """One tissue tile as the user asked to see it: where it is, its crop, decision and heatmap.

    Attributes:
        index: the tile's index in ``RegionResult.tiles``.
        box: ``x0, y0, x1, y1`` in original-image px.
        crop: uint8 RGB of the original image under the box (full resolution).
        prediction: the bundle's decision on the tile.
        heatmap: float32 (p, p) Grad-CAM of the positive label on the tile's model-scale patch.
    """

    index: int
    box: tuple[int, int, int, int]
    crop: np.ndarray
    prediction: Prediction
    heatmap: np.ndarray


def explain_tile(bundle, result: RegionResult, rgb: np.ndarray, index: int, explainer) -> TileView:
    """The crop, decision and Grad-CAM of tile ``index`` of ``result`` (a tile clicked on the map).

    Raises:
        IndexError: ``index`` is not a tile of ``result``.
    """
    if not 0 <= index < len(result.tiles.boxes):
        raise IndexError(f"tile {index} is not one of the {len(result.tiles.boxes)} tissue tiles")
    x0, y0, x1, y1 = (int(v) for v in result.tiles.boxes[index])
    batch = to_model_batch(result.tiles.patches[index:index + 1], bundle.spec)
    heatmap = explainer.heatmaps(batch, result.positive_label)[0]
    prediction = predictions_from_probabilities(bundle, result.probabilities[index:index + 1])[0]
    return TileView(index, (x0, y0, x1, y1), np.ascontiguousarray(rgb[y0:y1, x0:x1]), prediction, heatmap)
