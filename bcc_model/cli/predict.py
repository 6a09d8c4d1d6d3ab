"""``python -m bcc_model.predict`` (also ``bcc-predict``): classify files, folders and zip archives.

Command line only: it parses arguments and hands each input to ``analysis.batch`` (the same
``analyse`` as the app) or, with ``--region``, to ``analysis.wsi`` (tile maps of slides and large
images); ``reporting.batch`` writes the files. A bad file is a row with its error, never the end
of the batch. Research use only.

Usage:
    python -m bcc_model.predict --modality histopathology samples/histopathology/*/*.png
    python -m bcc_model.predict --modality ultrasound scans/ cases.zip --out results/ --heatmaps
    python -m bcc_model.predict --region slide.svs --out results/          # H&E: tile maps for QuPath
    python -m bcc_model.predict --engine ray --workers 4 --region slides/ --out results/  # on Ray

Exit status: 0 when every input was analysed, 1 when any could not be, 2 when the bundle is unusable.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Iterator, Sequence

from bcc_model.analysis.batch import BatchResult, BatchSettings, process_item
from bcc_model.analysis.image import make_explainer
from bcc_model.analysis.rows import ResultRow
from bcc_model.imaging.sources import iter_inputs
from bcc_model.models.bundle import BundleError, load_bundle
from bcc_model.registry import default_modality, get_modality, modality_keys
from bcc_model.reporting.batch import output_stem, write_extras, write_predictions

__all__ = ["main"]


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bcc_model.predict",
        description="Calibrated class probabilities for images, folders (recursive) and zip archives; tile maps of "
                    "whole slides with --region (research use only).",
    )
    parser.add_argument("inputs", nargs="+", type=Path,
                        help="image files (PNG, JPEG, TIFF, BMP, PGM/PPM, WebP, DICOM), whole slides (.svs, .ndpi, "
                             ".mrxs, tiled TIFF, ...), folders and .zip archives")
    parser.add_argument("--modality", default=default_modality(), choices=modality_keys(), help="which model to use (default: %(default)s)")
    parser.add_argument("--weights", type=Path, default=None, help="bundle folder (default: weights/<modality>)")
    parser.add_argument("--out", type=Path, default=None,
                        help="write predictions.csv and predictions.json (and any heatmaps or tile maps) here")
    parser.add_argument("--heatmaps", action="store_true", help="with --out: a Grad-CAM overlay PNG per image")
    parser.add_argument("--region", action="store_true",
                        help="tile every input at the model's scale (H&E): <stem>.tiles.csv, .geojson, .heatmap.png")
    parser.add_argument("--tile-batch", type=int, default=64,
                        help="--region: tiles classified at a time; memory grows with it, not with the slide "
                             "(default %(default)s: about 1.5 GB resident; 256: 3.6 GB and 25%% faster)")
    parser.add_argument("--mpp", type=float, default=None,
                        help="µm per pixel of the inputs, for --region on images (and slides) without that metadata")
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="local: one process, files in turn; ray: Ray Data over an actor pool, one bundle per "
                             "worker, on a local Ray instance or the cluster at RAY_ADDRESS (default %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="--engine ray: actors in the pool (default %(default)s)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    return args


def _provenance(bundle) -> str:
    if bundle.verified:
        return "verified: the shipped bundle pinned in bcc_model/modalities"
    return "unverified: not the shipped bundle pinned in bcc_model/modalities (retrained or from elsewhere)"


def _line(row: ResultRow, verified: bool) -> str:
    """The terminal line of one analysed input (the CSV and JSON hold the full row)."""
    probs = "  ".join(f"{label}={value:.3f}" for label, value in row.probabilities.items() if value is not None)
    flag = " (indeterminate)" if row.indeterminate else ""
    verdict = f"NOT ASSESSED ({row.reason}); model output {row.label}" if row.status == "not assessed" \
        else row.label or row.verdict
    return f"{row.file}: {verdict}{flag}  {probs}" + ("" if verified else "  [unverified model]")


def _local_results(bundle, items: list, settings: BatchSettings) -> Iterator[BatchResult]:
    """Each item's result in turn, with progress on the terminal (the local engine)."""
    explainer = make_explainer(bundle) if settings.heatmaps else None
    for index, item in enumerate(items, start=1):
        print(f"[{index}/{len(items)}]", end="\r", file=sys.stderr, flush=True)

        def tiles(done: int, total: int, index: int = index) -> None:
            print(f"[{index}/{len(items)}] {done:,} of {total:,} tissue tiles", end="\r", file=sys.stderr, flush=True)

        yield process_item(bundle, item, settings, explainer=explainer, progress=tiles)


def main(argv: Sequence[str] | None = None) -> int:
    """Analyse every input; see the module docstring for the exit status."""
    args = _parse_args(argv)
    try:
        bundle = load_bundle(get_modality(args.modality), args.weights)
    except BundleError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"model: {bundle.meta.name} {bundle.short_sha} ({_provenance(bundle)})", file=sys.stderr)
    settings = BatchSettings(region=args.region, mpp=args.mpp, tile_batch=args.tile_batch,
                             heatmaps=bool(args.heatmaps and args.out))
    results, failures = [], 0
    items = list(iter_inputs(args.inputs))
    if args.engine == "ray":
        from bcc_model.analysis.ray_engine import ray_results

        print(f"engine: Ray Data, {args.workers} worker(s)", file=sys.stderr)
        stream = ray_results(args.modality, args.weights, items, settings, args.workers)
    else:
        stream = _local_results(bundle, items, settings)
    for index, (item, result) in enumerate(zip(items, stream), start=1):
        results.append(result)
        if not result.row.analysed:
            failures += 1
            print(f"{item.name}: cannot classify: {result.row.error}", file=sys.stderr)
            continue
        print(_line(result.row, bundle.verified))
        if result.row.warnings and not args.region:
            print(f"{item.name}: warning: {' | '.join(result.row.warnings)}", file=sys.stderr)
        if args.out:
            write_extras(result, args.out, output_stem(index, item.name), bundle.band, args.heatmaps)
    if args.out:
        written = write_predictions(results, args.out)
        print(f"{len(results)} input(s), {failures} failed; wrote {', '.join(p.name for p in written)} to {args.out}",
              file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
