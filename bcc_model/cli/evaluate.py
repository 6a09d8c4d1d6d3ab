"""``python -m bcc_model.evaluate``: a bundle's metrics on any labelled folder (or cytology CSV).

Command line only: ``evaluation.external`` does the work. Every image is treated as test data,
so this is how anyone checks a shipped model on patients it has never seen.

Usage:
    python -m bcc_model.evaluate --modality histopathology --data DIR [--weights DIR] [--json OUT]
    python -m bcc_model.evaluate --modality cytology --data CASES.csv [--weights DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from bcc_model.evaluation.external import evaluate_folder
from bcc_model.registry import get_modality, modality_hook, modality_keys

__all__ = ["main"]


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bcc_model.evaluate", description="Evaluate a bundle on a labelled folder or CSV: every item is test data.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modality", required=True, choices=modality_keys(), help="modality of the bundle")
    parser.add_argument("--data", required=True, type=Path,
                        help="folder with <label>/<image> and optional labels.csv; for tabular modalities a CSV file")
    parser.add_argument("--weights", type=Path, default=None, help="bundle folder (default: weights/<modality>)")
    parser.add_argument("--allow-unverified", action="store_true",
                        help="run a bundle that is not the shipped one (your own retrained model); it is marked "
                             "unverified, with its own hash as its version")
    parser.add_argument("--json", type=Path, default=None, help="write the metrics as JSON to this file")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the CIs (default: %(default)s)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    from bcc_model.models.bundle import BundleError, load_bundle
    from bcc_model.datasets.folders import DataError
    from bcc_model.evaluation.metrics import format_metrics_table

    args = _parse_args(argv)
    try:
        bundle = load_bundle(get_modality(args.modality), args.weights, allow_unverified=args.allow_unverified)
        evaluate = modality_hook(args.modality, "evaluate_external") or evaluate_folder
        metrics = evaluate(bundle, args.data, n_resamples=args.bootstrap)
    except (BundleError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"Bundle {bundle.meta.name} ({bundle.short_sha}, {bundle.provenance}) on {args.data}: "
          f"{metrics['n_images']} images, {metrics['n_groups']} groups (all treated as test data)")
    print(format_metrics_table(metrics))
    if args.json:
        args.json.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        print(f"Metrics written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
