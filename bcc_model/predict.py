"""``python -m bcc_model.predict``: calibrated class probabilities for image files (research use only).

Command line only: it parses arguments and hands each file to ``analysis``; the app, evaluation
and the HTML report use the same functions, so they cannot disagree.

Usage:
    python -m bcc_model.predict --modality histopathology samples/histopathology/*/*.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from bcc_model.analysis.image import analyse
from bcc_model.imaging.pixels import ImageReadError
from bcc_model.imaging.io import read_image
from bcc_model.models.bundle import BundleError, load_bundle
from bcc_model.modalities import get_modality, modality_keys

__all__ = ["main"]


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bcc_model.predict",
        description="Print calibrated class probabilities for each image (research use only).",
    )
    parser.add_argument("images", nargs="+", type=Path, help="image files (PNG, JPEG, TIFF, BMP, PGM/PPM, WebP, DICOM)")
    parser.add_argument("--modality", default="histopathology", choices=modality_keys(), help="which model to use")
    parser.add_argument("--weights", type=Path, default=None, help="bundle folder (default: weights/<modality>)")
    return parser.parse_args(argv)


def _provenance(bundle) -> str:
    if bundle.verified:
        return "verified: the shipped bundle pinned in bcc_model/modalities.py"
    return "unverified: not the shipped bundle pinned in bcc_model/modalities.py (retrained or from elsewhere)"


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status 0 when every image was classified, 1 when any could not be read, 2 when the bundle is unusable."""
    args = _parse_args(argv)
    try:
        bundle = load_bundle(get_modality(args.modality), args.weights)
    except BundleError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"model: {bundle.meta.name} {bundle.short_sha} ({_provenance(bundle)})", file=sys.stderr)
    mark = "" if bundle.verified else "  [unverified model]"
    failures = 0
    for path in args.images:
        try:
            image = read_image(path)
        except ImageReadError as err:
            failures += 1
            print(f"{path}: cannot classify: {err}", file=sys.stderr)
            continue
        analysis = analyse(bundle, image.pixels, lesion_map=False, image_warnings=image.warnings)
        result = analysis.prediction
        probs = "  ".join(f"{label}={p:.3f}" for label, p in result.probabilities.items())
        flag = " (indeterminate)" if result.indeterminate else ""
        verdict = f"NOT ASSESSED ({analysis.refusal}); model output {result.label}" if analysis.refusal else result.label
        print(f"{path}: {verdict}{flag}  {probs}{mark}")
        for warning in analysis.warnings:
            print(f"{path}: warning: {warning}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
