"""Polarity and pectoral-muscle removal checked on real mammograms: figures, no asserts.

* Polarity (``modalities.mammography.hygiene.is_inverted``) against the RSNA folder's ``bright_background``
  column (white-background images flagged by its curator; it misses about a hundred more, which
  is why the product detects polarity instead of trusting a column), and on mini-MIAS (no
  inverted film).
* Pectoral muscle (``modalities.mammography.hygiene.pectoral_mask``) on mini-MIAS, all MLO views: how often a
  muscle is found, the share of the breast removed, and every annotated lesion whose centre
  would be blanked with the muscle (the safety figure: it should be 0).

``--pictures DIR`` writes a montage of oriented crops with the muscle outlined in red (keep it
out of the repository: it shows research images).

Usage:
    python docs/experiments/mammogram_hygiene.py --mias ../shared/data/mammography --rsna ../shared/data/mammography-rsna
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    import cv2
    import numpy as np
    import pandas as pd

    from bcc_model.datasets.lesions import circle_mask, read_circles
    from bcc_model.imaging.io import read_image
    from bcc_model.modalities.mammography.hygiene import is_inverted, pectoral_mask
    from bcc_model.imaging.preprocess import STEPS
    from bcc_model.registry import get_modality

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mias", required=True, type=Path)
    parser.add_argument("--rsna", type=Path, default=None)
    parser.add_argument("--pictures", type=Path, default=None)
    args = parser.parse_args(argv)
    spec = get_modality("mammography")

    def grey_of(pixels: np.ndarray) -> np.ndarray:
        return pixels if pixels.ndim == 2 else cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)

    if args.rsna:
        table = pd.read_csv(args.rsna / "labels.csv", dtype={"bright_background": int})
        called = np.array([is_inverted(grey_of(read_image(args.rsna / f).pixels)) for f in table["file"]])
        truth = table["bright_background"].to_numpy(bool)
        print(f"RSNA polarity: {int(called.sum())} of {len(truth)} called inverted: {int((called & truth).sum())} of "
              f"the {int(truth.sum())} that bright_background flags, and {int((called & ~truth).sum())} it does not "
              f"flag (all white-background on inspection: the column is incomplete)")
    table = pd.read_csv(args.mias / "labels.csv", dtype=str)
    circles = read_circles(args.mias)
    found, removed, blanked, lesions, inverted, tiles = 0, [], [], 0, 0, []
    for file in table["file"]:
        grey = grey_of(read_image(args.mias / file).pixels)
        inverted += is_inverted(grey)
        lesion = circle_mask(grey.shape, [(x, y, 1.0) for x, y, _ in circles.get(file) or []])
        crop, lesion = STEPS["breast_crop"](grey, lesion, spec)
        crop, lesion = STEPS["laterality_flip"](crop, lesion, spec)
        muscle = pectoral_mask(crop)
        if muscle.any():
            found += 1
            removed.append(muscle.sum() / max(1, (crop > 0).sum()))
        count, labels = cv2.connectedComponents(lesion.astype(np.uint8))
        lesions += count - 1
        blanked += [file for k in range(1, count) if muscle[labels == k].any()]
        if args.pictures and len(tiles) < 60:
            view = cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR)
            outline, _ = cv2.findContours(muscle.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(view, outline, -1, (0, 0, 255), 2)
            tiles.append(cv2.resize(view, (160, 200)))
    print(f"mini-MIAS: {len(table)} images, {inverted} called inverted; pectoral muscle found on {found} "
          f"({found / len(table):.0%}), median {np.median(removed) if removed else 0:.1%} of the breast removed "
          f"(range {min(removed, default=0):.1%}-{max(removed, default=0):.1%}); {len(blanked)} of {lesions} "
          f"annotated lesion centres inside the removed muscle{': ' + ', '.join(blanked) if blanked else ''}")
    if args.pictures and tiles:
        args.pictures.mkdir(parents=True, exist_ok=True)
        tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % 10)
        rows = [np.concatenate(tiles[k:k + 10], axis=1) for k in range(0, len(tiles), 10)]
        cv2.imwrite(str(args.pictures / "pectoral_mias.png"), np.concatenate(rows, axis=0))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
