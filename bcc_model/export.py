"""``python -m bcc_model.export``: a bundle as a TensorFlow SavedModel for TF Serving (research use only).

Command line only: ``models.serving`` builds the model. The serving signature takes preprocessed
batches and returns calibrated probabilities; the decision rule goes into ``bcc_serving.json``.

Usage:
    python -m bcc_model.export --modality histopathology --format saved_model --out exported/histopathology
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from bcc_model.models.bundle import BundleError, load_bundle
from bcc_model.models.serving import export_saved_model
from bcc_model.modalities import get_modality, modality_keys

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Export one bundle; exit status 2 when the bundle is unusable."""
    parser = argparse.ArgumentParser(prog="python -m bcc_model.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--modality", required=True, choices=modality_keys())
    parser.add_argument("--weights", type=Path, default=None, help="bundle folder (default: weights/<modality>)")
    parser.add_argument("--format", default="saved_model", choices=("saved_model",))
    parser.add_argument("--out", required=True, type=Path, help="folder to write the SavedModel into")
    args = parser.parse_args(argv)
    try:
        bundle = load_bundle(get_modality(args.modality), args.weights)
    except BundleError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"SavedModel of {bundle.meta.name} ({bundle.short_sha}, {bundle.provenance}) written to "
          f"{export_saved_model(bundle, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
