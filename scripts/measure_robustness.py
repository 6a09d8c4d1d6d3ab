"""Measure a bundle's robustness to lossy re-encoding on its own test split, and record it.

The test patients are read from the bundle's ``manifest.csv`` (whole patients that took no part in
training, calibration or selection); their files must be in ``--data`` with the recorded sha256.
Prints the figures; with ``--write`` adds them to the bundle's ``metrics.json`` as ``robustness``
and re-renders ``MODEL_CARD.md``, as training now does for new bundles.

Usage:
    python scripts/measure_robustness.py --modality histopathology --data ../shared/data/histopathology [--write]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    import pandas as pd

    from bcc_model.analysis.predictions import calibrated_probabilities
    from bcc_model.datasets.folders import load_images
    from bcc_model.datasets.manifest import add_hashes
    from bcc_model.models.decision import OperatingPoint
    from bcc_model.evaluation.robustness import compression_robustness
    from bcc_model.models.bundle import load_bundle, write_json
    from bcc_model.registry import get_modality, modality_keys
    from bcc_model.reporting.model_card import render_model_card

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modality", required=True, choices=modality_keys())
    parser.add_argument("--data", required=True, type=Path, help="the data folder the bundle was trained on")
    parser.add_argument("--write", action="store_true", help="record the figures in metrics.json and MODEL_CARD.md")
    args = parser.parse_args(argv)
    bundle = load_bundle(get_modality(args.modality))
    manifest = pd.read_csv(bundle.path / "manifest.csv", dtype=str)
    test = manifest[manifest["split"] == "test"].reset_index(drop=True)
    if not (add_hashes(test[["file"]], args.data)["sha256"] == test["sha256"]).all():
        print(f"error: files in {args.data} differ from the bundle's manifest", file=sys.stderr)
        return 2
    images = load_images(test, args.data, bundle.spec)
    y = test["label"].map({label: i for i, label in enumerate(bundle.labels)}).to_numpy()
    result = compression_robustness(lambda batch: calibrated_probabilities(bundle, batch), images, y,
                                    OperatingPoint.of(bundle))
    print(json.dumps(result, indent=2))
    if args.write:
        metrics = {**bundle.metrics, "robustness": result}
        write_json(bundle.path / "metrics.json", metrics)
        (bundle.path / "MODEL_CARD.md").write_text(render_model_card(bundle.info, metrics), encoding="utf-8")
        print(f"recorded in {bundle.path / 'metrics.json'} and MODEL_CARD.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
