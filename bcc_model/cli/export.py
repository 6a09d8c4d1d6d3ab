"""``python -m bcc_model.export``: a bundle as a TensorFlow SavedModel for TF Serving, or its ONNX copy.

Command line only: ``models.serving`` builds the SavedModel. Its serving signature takes
preprocessed batches and returns calibrated probabilities; the decision rule goes into
``bcc_serving.json``. ``--format onnx`` adds ``model.onnx`` (``models.onnx_path``) to a bundle
written before training did so itself, recorded and sha-pinned in its ``model.json`` like a
bundle trained today; the bundle is replaced atomically (research use only).

Usage:
    python -m bcc_model.export --modality histopathology --format saved_model --out exported/histopathology
    python -m bcc_model.export --modality ultrasound --format onnx
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from bcc_model.models.bundle import BundleError, load_bundle
from bcc_model.models.serving import export_saved_model
from bcc_model.registry import get_modality, modality_keys

__all__ = ["main", "add_onnx"]


def add_onnx(bundle) -> dict:
    """Convert ``bundle``'s network to ONNX and add it to the bundle folder; returns the ``runtime`` record."""
    import tempfile

    from bcc_model.models.bundle import file_sha256
    from bcc_model.models.onnx_path import ONNX_FILE, export_onnx, runtime_record
    from bcc_model.training.writer import add_evaluations

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ONNX_FILE
        export_onnx(bundle.model, path)
        record = runtime_record(bundle.model, path, file_sha256(path))
        add_evaluations(bundle.path, {}, {ONNX_FILE: path.read_bytes()}, {"runtime": record})
    return record


def main(argv: Sequence[str] | None = None) -> int:
    """Export one bundle; exit status 2 when the bundle is unusable."""
    parser = argparse.ArgumentParser(prog="python -m bcc_model.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--modality", required=True, choices=modality_keys())
    parser.add_argument("--weights", type=Path, default=None, help="bundle folder (default: weights/<modality>)")
    parser.add_argument("--format", default="saved_model", choices=("saved_model", "onnx"))
    parser.add_argument("--allow-unverified", action="store_true",
                        help="export a bundle that is not the shipped one (your own retrained model)")
    parser.add_argument("--out", type=Path, default=None, help="saved_model: folder to write the SavedModel into")
    args = parser.parse_args(argv)
    if args.format == "saved_model" and args.out is None:
        parser.error("--format saved_model needs --out")
    try:
        bundle = load_bundle(get_modality(args.modality), args.weights, allow_unverified=args.allow_unverified)
    except BundleError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.format == "onnx":
        record = add_onnx(bundle)
        print(f"{record['file']} added to {bundle.path} (sha256 {record['sha256'][:12]}, largest |dP| against Keras "
              f"{record['parity_max_abs_difference']:.1e})")
        return 0
    print(f"SavedModel of {bundle.meta.name} ({bundle.short_sha}, {bundle.provenance}) written to "
          f"{export_saved_model(bundle, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
