"""Where should a bundle's conformal sets come from, how should patients count, and which score?

    python docs/experiments/conformal_own_patients.py --modality histopathology --data ../shared/data/histopathology
    python docs/experiments/conformal_own_patients.py --modality ultrasound --data ../shared/data/ultrasound

The shipped bundle scores its own validation patients (never trained on) and its test patients
(read from its manifest.csv). Calibrations compared, each checked by per-class coverage on the
test patients (every patient weighing the same) and mean set size:

* one case per patient and class, drawn at random (repeated over ``--seeds`` draws);
* every case, pooled (a patient with 700 patches counts 700 times);
* every case grouped by patient, each patient weighing the same (the pooled-CDF p-value of
  ``models.conformal``, what ships), with the LAC, APS and RAPS scores.

Mammography's manifest paths are relative to the data root (``--data ../shared/data``); rows
whose label is none of the model's classes (RSNA's "negative") are left out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bcc_model.analysis.predictions import calibrated_probabilities  # noqa: E402
from bcc_model.datasets.folders import load_images  # noqa: E402
from bcc_model.evaluation.conformal import fit_conformal, patient_means  # noqa: E402
from bcc_model.models.bundle import load_bundle  # noqa: E402
from bcc_model.models.conformal import LEVELS, SCORES, ConformalCalibration, lac_scores, prediction_sets  # noqa: E402
from bcc_model.registry import get_modality  # noqa: E402


def _check(calibration: ConformalCalibration, probs, y, groups, level: float) -> list[float]:
    """Per-class coverage (patient means) and mean set size (patient means) on the test patients."""
    sets = prediction_sets(calibration, probs, level)
    covered = sets[np.arange(len(y)), y].astype(float)
    per_class = [patient_means(covered[y == k], groups[y == k])[0].mean() for k in range(probs.shape[1])]
    return per_class + [patient_means(sets.sum(axis=1).astype(float), groups)[0].mean()]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--modality", default="histopathology")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--seeds", type=int, default=30)
    args = parser.parse_args()
    spec = get_modality(args.modality)
    bundle = load_bundle(spec)
    manifest = pd.read_csv(bundle.path / "manifest.csv", dtype=str)
    manifest = manifest[manifest["label"].isin(spec.labels)]
    split = {}
    for name in ("validation", "test"):
        rows = manifest[manifest["split"] == name].reset_index(drop=True)
        probs = calibrated_probabilities(bundle, load_images(rows, args.data, spec).astype(np.float32))
        y = rows["label"].map({label: i for i, label in enumerate(spec.labels)}).to_numpy()
        split[name] = (probs, y, rows["group"].to_numpy())
    vp, vy, vg = split["validation"]
    test = split["test"]
    print(f"classes {', '.join(spec.labels)}; calibration: {len(vy)} validation cases of {len(set(vg))} patients; "
          f"check: {len(test[1])} test cases of {len(set(test[2]))} patients")
    own = lac_scores(vp)[np.arange(len(vy)), vy]
    for level in LEVELS:
        draws = []
        for seed in range(args.seeds):
            rng = np.random.default_rng(seed)
            keep = [rng.choice(np.flatnonzero((vg == g) & (vy == k))) for g, k in sorted(set(zip(vg, vy)))]
            one = ConformalCalibration("lac", spec.labels, {label: tuple((float(own[i]),) for i in keep if vy[i] == k)
                                                            for k, label in enumerate(spec.labels)}, "")
            draws.append(_check(one, *test, level))
        mean, sd = np.mean(draws, axis=0), np.std(draws, axis=0)
        pooled = ConformalCalibration("lac", spec.labels, {label: tuple((float(v),) for v in own[vy == k])
                                                           for k, label in enumerate(spec.labels)}, "")
        def line(values, spread=None) -> str:
            shown = [f"{v:.3f}" + ("" if spread is None else f"±{s:.3f}") for v, s in
                     zip(values, spread if spread is not None else values)]
            return f"coverage {' / '.join(shown[:-1])}, size {shown[-1]}"

        print(f"{level:.0%}  lac, one per patient ({args.seeds} draws): {line(mean, sd)}")
        print(f"{level:.0%}  lac, every case pooled: {line(_check(pooled, *test, level))}")
        for score in SCORES:
            grouped = fit_conformal(vp, vy, vg, spec.labels, score=score)
            print(f"{level:.0%}  {score}, patients weighing the same: {line(_check(grouped, *test, level))}")


if __name__ == "__main__":
    main()
