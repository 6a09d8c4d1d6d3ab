"""How often does the modality check warn about, or refuse, the images each model is trained for?

    python docs/experiments/modality_check.py --data ../shared/data [--patches 2000]

For every image of each training folder (H&E patches: a seeded sample) it runs what the app runs
on an upload for that folder's model: ``imaging.gates.input_problem`` (a refusal) and
``imaging.modality_guess.modality_hint`` (a "looks like another modality" warning), and prints the
share of each per source with the texture statistics behind the calls.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bcc_model.imaging.gates import input_problem  # noqa: E402
from bcc_model.imaging.io import read_image  # noqa: E402
from bcc_model.imaging.modality_guess import describe_appearance, modality_hint  # noqa: E402
from bcc_model.registry import get_modality  # noqa: E402

SOURCES = {"histopathology": "histopathology", "mammography": "mammography", "mammography-rsna": "mammography",
           "ultrasound": "ultrasound"}


def check(folder: Path, modality: str, limit: int | None, seed: int = 0) -> pd.DataFrame:
    spec = get_modality(modality)
    table = pd.read_csv(folder / "labels.csv", dtype=str)
    if limit is not None and len(table) > limit:
        table = table.sample(limit, random_state=seed)
    rows = []
    for name in table["file"]:
        pixels = read_image(folder / name).pixels
        look = describe_appearance(pixels)
        rows.append({"file": name, "kind": look.kind, "speckle": look.speckle, "dark": look.dark_fraction,
                     "hint": modality_hint(pixels, modality) is not None,
                     "refused": input_problem(pixels, spec) is not None})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--patches", type=int, default=2000, help="H&E patches sampled (seeded)")
    parser.add_argument("--out", type=Path, default=None, help="CSV of every image's statistics")
    args = parser.parse_args()
    frames = []
    for source, modality in SOURCES.items():
        result = check(args.data / source, modality, args.patches if source == "histopathology" else None)
        result.insert(0, "source", source)
        frames.append(result)
        kinds = result["kind"].value_counts().to_dict()
        speckle = result["speckle"].dropna()
        spread = (f"speckle p50 {speckle.median():.3f} p99 {speckle.quantile(0.99):.3f} max {speckle.max():.3f}"
                  if len(speckle) else "speckle not measured (patches)")
        print(f"{source} ({modality} model, {len(result)} images): warned {result['hint'].mean():.1%}, "
              f"refused {result['refused'].mean():.1%}; looks {kinds}; {spread}")
    if args.out:
        pd.concat(frames).to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
