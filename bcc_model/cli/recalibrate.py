"""``python -m bcc_model.recalibrate``: a bundle refitted to a new site's labelled patients, as a new bundle.

Command line only: ``training.recalibrate`` does the work. Half the folder's patients refit the
temperature, the operating point and the conformal sets; the other half are scored once.

With ``--own-patients`` it instead refits a bundle's conformal sets and band on its own
validation patients (``training.own_sets``), ``--data`` being the folder its manifest's paths are
relative to; the weights are untouched, and ``--out`` may be the bundle's own folder.

Usage:
    python -m bcc_model.recalibrate --modality histopathology --data DIR --out DIR [--weights DIR]
    python -m bcc_model.recalibrate --modality histopathology --own-patients --data DIR --out DIR
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Sequence

from bcc_model.registry import get_modality, modality_keys

__all__ = ["main"]


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bcc_model.recalibrate",
                                     description="Recalibrate a bundle on a labelled folder of a new site's patients.")
    parser.add_argument("--modality", required=True, choices=modality_keys(), help="modality of the bundle")
    parser.add_argument("--data", required=True, type=Path,
                        help="folder with <label>/<image> and labels.csv (its group column keeps patients together)")
    parser.add_argument("--out", required=True, type=Path, help="folder to write the recalibrated bundle to")
    parser.add_argument("--weights", type=Path, default=None, help="bundle to start from (default: weights/<modality>)")
    parser.add_argument("--allow-unverified", action="store_true", help="start from a bundle that is not the shipped one")
    parser.add_argument("--check-fraction", type=float, default=0.5,
                        help="share of the patients kept apart to check the refit (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the patient split (default: %(default)s)")
    parser.add_argument("--own-patients", action="store_true",
                        help="refit the sets and band on the bundle's own validation patients (manifest.csv) instead")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the CIs (default: %(default)s)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    from bcc_model.cli.console import log_to_console
    from bcc_model.datasets.folders import DataError
    from bcc_model.evaluation.metrics import format_metrics_table
    from bcc_model.models.bundle import BundleError, load_bundle
    from bcc_model.training.config import TrainingError
    from bcc_model.training.recalibrate import recalibrate

    args = _parse_args(argv)
    log_to_console()
    command = "python -m bcc_model.recalibrate " + shlex.join(sys.argv[1:] if argv is None else list(argv))
    if not args.own_patients and args.out.resolve() == get_modality(args.modality).bundle_dir.resolve():
        print("error: --out must not be the shipped bundle's folder; write the recalibrated bundle beside it",
              file=sys.stderr)
        return 2
    try:
        spec = get_modality(args.modality)
        if args.own_patients:
            from bcc_model.training.own_sets import check_refittable, refit_own_sets

            check_refittable(spec)  # before the network loads
        bundle = load_bundle(spec, args.weights, allow_unverified=args.allow_unverified)
        if args.own_patients:
            out = refit_own_sets(bundle, args.data, args.out, n_resamples=args.bootstrap, seed=args.seed)
        else:
            out = recalibrate(bundle, args.data, args.out, check_fraction=args.check_fraction, seed=args.seed,
                              n_resamples=args.bootstrap, command=command)
        new = load_bundle(spec, out, allow_unverified=True)
    except (BundleError, DataError, TrainingError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    import json

    if args.own_patients:
        print(f"Conformal sets and band of {new.meta.name} refitted on its validation patients, written to {out} "
              "(its model.json and metrics.json changed: where it replaces the shipped bundle, pin their new "
              "hashes in the modality's shipped_files)")
    else:
        print(f"Recalibrated bundle {new.meta.name} written to {out} (unverified: run it with --allow-unverified, "
              f"or BCC_ALLOW_UNVERIFIED=1 for the app)")
    print(format_metrics_table(json.loads((out / "metrics.json").read_text(encoding="utf-8"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
