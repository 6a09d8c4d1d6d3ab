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

With ``--dicom``, each DICOM input's result also goes back as DICOM (``reporting.dicom_results``):
a TID 1500 Structured Report and map Segmentations that reference the source image.

Mammograms are also read per breast: views grouped by exam and side (DICOM header, else tokens
such as ``R_CC`` in the file name) are pooled into ``breasts.csv`` (``analysis.breasts``).

Every file and zip member gives one row, in input order: analysed, not assessed, skipped (with
why) or an error; the last line counts each. Limits (``--max-*``) are checked before the bytes
they protect are read. ``--out`` is checked before any work: an existing non-empty folder is
refused unless ``--overwrite`` is given, which first removes this command's earlier outputs there
(links are removed, never followed); the folder itself is never read as input.

Exit status: 0 when every input was analysed or skipped with its reason (a folder's labels.csv or
README), 1 when any input gave an error or none could be analysed, 2 when the options, the output
folder or the bundle are unusable.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Iterator, Sequence

from bcc_model.analysis.batch import BatchResult, BatchSettings, process_item
from bcc_model.analysis.image import make_explainer
from bcc_model.analysis.rows import ResultRow
from bcc_model.cli.console import release_memory, terminal_safe
from bcc_model.imaging.sources import MIB, InputLimits, iter_inputs
from bcc_model.models.bundle import BundleError, load_bundle
from bcc_model.models.conformal import DEFAULT_LEVEL, LEVELS, level_text
from bcc_model.registry import default_modality, get_modality, modality_keys
from bcc_model.reporting.batch import OutputError, output_stem, prepare_output, write_extras, write_predictions
from bcc_model.reporting.dicom_results import write_dicom_results

__all__ = ["main"]

_LOG = logging.getLogger(__name__)

MPP_RANGE = (0.05, 64.0)
"""µm per pixel accepted by ``--mpp``: the app's range (a 40x scan is 0.25; 64 is a thumbnail)."""


def _bounded(kind: type, low: float, high: float):
    """An argparse type: ``kind`` within ``[low, high]``, else a usage error naming the range."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is outside {low:g}-{high:g}")
        return value
    return parse


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
    parser.add_argument("--allow-unverified", action="store_true",
                        help="run a bundle that is not the shipped one (your own retrained model); it is marked "
                             "unverified, with its own hash as its version")
    parser.add_argument("--out", type=Path, default=None,
                        help="write predictions.csv and predictions.json (and any heatmaps or tile maps) here, and "
                             "for mammograms whose side is known breasts.csv (views of one exam and side pooled); an "
                             "existing non-empty folder needs --overwrite")
    parser.add_argument("--overwrite", action="store_true",
                        help="--out may be a non-empty folder: this command's earlier outputs there are removed first")
    parser.add_argument("--heatmaps", action="store_true", help="with --out: a Grad-CAM overlay PNG per image")
    parser.add_argument("--dicom", action="store_true",
                        help="with --out: for each DICOM input, dicom/<stem>.sr.dcm (a TID 1500 Structured Report of "
                             "the result) and fractional Segmentations of its lesion map and (with --heatmaps) its "
                             "Grad-CAM on the source's pixels, for a PACS viewer")
    parser.add_argument("--level", type=float, choices=LEVELS, default=DEFAULT_LEVEL,
                        help="conformal level of each result's set and of the band (default: %(default)s)")
    parser.add_argument("--region", action="store_true",
                        help="tile every input at the model's scale (H&E): <stem>.tiles.csv, .geojson, .heatmap.png")
    parser.add_argument("--tile-batch", type=_bounded(int, 1, 4096), default=64,
                        help="--region: tiles classified at a time; memory grows with it, not with the slide "
                             "(default %(default)s: about 1.5 GB resident; 256: 3.6 GB and 25%% faster)")
    parser.add_argument("--mpp", type=_bounded(float, *MPP_RANGE), default=None,
                        help=f"µm per pixel of the inputs, for --region on images (and slides) without that metadata "
                             f"({MPP_RANGE[0]:g}-{MPP_RANGE[1]:g})")
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="local: one process, files in turn; ray: Ray Data over an actor pool, one bundle per "
                             "worker, on a local Ray instance or the cluster at RAY_ADDRESS (default %(default)s)")
    parser.add_argument("--workers", type=_bounded(int, 1, 256), default=2,
                        help="--engine ray: actors in the pool (default %(default)s)")
    limits = InputLimits()
    parser.add_argument("--max-file-mb", type=_bounded(int, 1, 1 << 20), default=limits.file_bytes // MIB,
                        help="largest image file read, in MiB (whole-slide formats are read by region; default "
                             "%(default)s)")
    parser.add_argument("--max-member-mb", type=_bounded(int, 1, 1 << 20), default=limits.member_bytes // MIB,
                        help="largest zip member, uncompressed, in MiB (default %(default)s)")
    parser.add_argument("--max-ratio", type=_bounded(float, 1, 1e6), default=limits.ratio,
                        help="largest compression ratio of a zip member over 1 MiB (default %(default)s)")
    parser.add_argument("--max-members", type=_bounded(int, 1, 10_000_000), default=limits.members,
                        help="most members of one zip archive (default %(default)s)")
    return parser.parse_args(argv)


def _provenance(bundle) -> str:
    if bundle.verified:
        return "verified: the shipped bundle pinned in bcc_model/modalities"
    return "unverified: not the shipped bundle pinned in bcc_model/modalities (retrained or from elsewhere)"


def _line(row: ResultRow, verified: bool) -> str:
    """The terminal line of one analysed input (the CSV and JSON hold the full row, and the true name)."""
    words = row.statement
    probs = "  ".join(f"{label}={value:.3f}" for label, value in row.probabilities.items() if value is not None)
    detail = f" ({words.detail})" if words.kind in ("not assessed", "indeterminate") else ""
    if row.conformal_set and row.set_level and words.kind != "indeterminate":
        detail += f"  set at {level_text(row.set_level)}: {row.conformal_set}"
    caution = "  [weak model: output only]" if words.kind == "model output" else ""
    return (f"{terminal_safe(row.file)}: {words.verdict.upper() if words.kind == 'not assessed' else words.verdict}"
            f"{detail}  {probs}{caution}" + ("" if verified else "  [unverified model]"))


def _summary(results: list[BatchResult]) -> str:
    """``12 input(s): 9 ok, 1 not assessed, 1 skipped, 1 error``."""
    counts = {status: sum(r.row.status == status for r in results) for status in ("ok", "not assessed", "skipped",
                                                                                   "error")}
    return f"{len(results)} input(s): " + ", ".join(f"{n} {status}" for status, n in counts.items())


def _local_results(bundle, items: list, settings: BatchSettings) -> Iterator[BatchResult]:
    """Each item's result in turn, with progress on the terminal (the local engine)."""
    explainer = make_explainer(bundle) if settings.heatmaps else None
    for index, item in enumerate(items, start=1):
        print(f"[{index}/{len(items)}]", end="\r", file=sys.stderr, flush=True)

        def tiles(done: int, total: int, index: int = index) -> None:
            print(f"[{index}/{len(items)}] {done:,} of {total:,} tissue tiles", end="\r", file=sys.stderr, flush=True)

        yield process_item(bundle, item, settings, explainer=explainer, progress=tiles)
        release_memory()  # one large image's buffers must not stay to add to the next one's


def _dicom_results(item, result: BatchResult, bundle, out_dir: Path, stem: str) -> None:
    """``reporting.dicom_results`` for one input; a file whose header highdicom refuses is said, never fatal."""
    try:
        write_dicom_results(item.source(), result, bundle, out_dir, stem)
    except Exception:  # noqa: BLE001 - the batch goes on; the log has the traceback, the terminal no header values
        _LOG.exception("DICOM results could not be written for an input (name withheld)")
        print(f"{terminal_safe(item.name)}: DICOM results not written: the file's header was refused (logged)",
              file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Analyse every input; see the module docstring for the exit status."""
    args = _parse_args(argv)
    try:
        if args.out is not None:
            prepare_output(args.out, overwrite=args.overwrite)
        bundle = load_bundle(get_modality(args.modality), args.weights, allow_unverified=args.allow_unverified)
    except (BundleError, OutputError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"model: {bundle.meta.name} {bundle.short_sha} ({_provenance(bundle)})", file=sys.stderr)
    settings = BatchSettings(region=args.region, mpp=args.mpp, tile_batch=args.tile_batch,
                             heatmaps=bool(args.heatmaps and args.out), level=args.level)
    results = []
    limits = InputLimits(file_bytes=args.max_file_mb * MIB, member_bytes=args.max_member_mb * MIB,
                         ratio=args.max_ratio, members=args.max_members)
    items = list(iter_inputs(args.inputs, limits, exclude=[args.out] if args.out else ()))
    if args.engine == "ray":
        from bcc_model.analysis.ray_engine import ray_results

        print(f"engine: Ray Data, {args.workers} worker(s)", file=sys.stderr)
        stream = ray_results(args.modality, args.weights, items, settings, args.workers,
                             allow_unverified=args.allow_unverified)
    else:
        stream = _local_results(bundle, items, settings)
    for index, (item, result) in enumerate(zip(items, stream), start=1):
        results.append(result)
        name = terminal_safe(item.name)
        if not result.row.analysed:
            why = f"skipped: {result.row.reason}" if result.row.status == "skipped" else \
                f"cannot classify: {result.row.error}"
            print(f"{name}: {why}", file=sys.stderr)
            continue
        print(_line(result.row, bundle.verified))
        if result.row.warnings and not args.region:
            print(f"{name}: warning: {' | '.join(result.row.warnings)}", file=sys.stderr)
        if args.out:
            write_extras(result, bundle, args.out, output_stem(index, item.name), args.heatmaps, args.level)
            if args.dicom:
                _dicom_results(item, result, bundle, args.out / "dicom", output_stem(index, item.name))
    summary = _summary(results)
    if args.out:
        written = write_predictions(results, args.out, bundle)
        summary += f"; wrote {', '.join(p.name for p in written)} to {terminal_safe(str(args.out))}"
    print(summary, file=sys.stderr)
    errors = any(r.row.status == "error" for r in results)
    return 1 if errors or not any(r.row.analysed for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
