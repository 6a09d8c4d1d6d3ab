"""How many labelled patches of the complete H&E slides does tissue detection keep, per mask recipe?

    python docs/experiments/tissue_coverage.py --data ../shared/data/histopathology

Each complete slide is rebuilt from its patches (``datasets.slides``); a patch counts as scored
when its share of tissue pixels reaches the tile threshold. The recipes vary the saturation cap,
the morphological cleanup and the threshold; ``shipped`` is ``imaging.tiling.tissue_mask``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bcc_model.datasets.slides import complete_patients, rebuild_slide  # noqa: E402
from bcc_model.imaging.tiling import tissue_mask  # noqa: E402


def variant(rgb: np.ndarray, cap: int, cleanup: str) -> np.ndarray:
    """The mask of one recipe: saturation over min(Otsu, cap), grey under 220, then ``cleanup``."""
    saturation = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[:, :, 1]
    otsu, _ = cv2.threshold(saturation, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    mask = ((saturation > min(otsu, cap)) & (cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) < 220)).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    if cleanup == "open+close":
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
    if cleanup in ("open+close", "close"):
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
    return mask.astype(bool)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    args = parser.parse_args()
    table = pd.read_csv(args.data / "labels.csv", dtype=str, keep_default_na=False)
    recipes = [(cap, cleanup) for cap in (30, 20) for cleanup in ("open+close", "close", "none")]
    scored: dict[tuple, list[float]] = {}
    for patient in complete_patients(table):
        slide = rebuild_slide(table, args.data, patient, ("benign", "malignant"))
        masks = {**{recipe: variant(slide.rgb, *recipe) for recipe in recipes}, ("shipped", ""): tissue_mask(slide.rgb)}
        for recipe, mask in masks.items():
            share = np.array([mask[y0:y1, x0:x1].mean() for x0, y0, x1, y1 in slide.boxes.tolist()])
            for threshold in (0.25, 0.1):
                scored.setdefault((*recipe, threshold), []).append(float((share >= threshold).mean()))
    for (cap, cleanup, threshold), values in scored.items():
        print(f"cap {cap!s:>7} {cleanup:10s} tile threshold {threshold:.2f}: scored mean {np.mean(values):.3f}, "
              f"least {min(values):.3f}  per slide {[round(v, 3) for v in values]}")


if __name__ == "__main__":
    main()
