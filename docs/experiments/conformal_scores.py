"""LAC or APS for the H&E bundle's conformal sets? Calibrated on out-of-fold patients, checked on the test patients.

    python docs/experiments/conformal_scores.py --bundle runs/he28plain/bundle --oof runs/he28plain/cv/oof.npz \
        --data ../shared/data/histopathology

The out-of-fold predictions (every non-test patient scored by a fold model that never saw them,
kept by ``train --cv-folds``) are temperature-scaled with the bundle's temperature; each score
keeps one case per patient and class (``evaluation.conformal``); the bundle's model scores its
test split, and per-class coverage, mean set size and singleton rate are printed per level.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bcc_model.analysis.predictions import calibrated_probabilities  # noqa: E402
from bcc_model.datasets.folders import discover, load_images  # noqa: E402
from bcc_model.evaluation.conformal import conformal_report, fit_conformal  # noqa: E402
from bcc_model.models.bundle import load_bundle  # noqa: E402
from bcc_model.models.decision import apply_temperature  # noqa: E402
from bcc_model.registry import get_modality  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--oof", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    args = parser.parse_args()
    spec = get_modality("histopathology")
    bundle = load_bundle(spec, args.bundle, allow_unverified=True)
    oof = np.load(args.oof)
    calibration_probs = apply_temperature(oof["oof"], bundle.temperature)
    manifest = pd.read_csv(args.bundle / "manifest.csv", dtype=str)
    table = discover(args.data, spec)
    table = table[table["file"].isin(set(manifest.loc[manifest["split"] == "test", "file"]))].reset_index(drop=True)
    test_probs = calibrated_probabilities(bundle, load_images(table, args.data, spec).astype(np.float32))
    y = table["label"].map({label: i for i, label in enumerate(spec.labels)}).to_numpy()
    for score in ("lac", "aps"):
        calibration = fit_conformal(calibration_probs, oof["y"], oof["groups"], spec.labels, score=score, seed=42)
        for level in (0.8, 0.9, 0.95):
            report = conformal_report(calibration, test_probs, y, table["group"], level, n_resamples=500, seed=0)
            coverage = ", ".join(f"{label} {entry['value']:.3f} [{entry['ci95'][0]:.3f}, {entry['ci95'][1]:.3f}]"
                                 for label, entry in report["coverage_by_class"].items())
            print(f"{score} {level:.2f}: coverage {coverage}; mean set size {report['mean_set_size']['value']:.3f}, "
                  f"singletons {report['singleton_rate']['value']:.3f}, empty {report['empty_rate']:.3f} "
                  f"({len(y)} test patches, {table['group'].nunique()} patients)")


if __name__ == "__main__":
    main()
