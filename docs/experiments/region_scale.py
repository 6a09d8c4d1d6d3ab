"""Does the nuclei-size check (``imaging.scale.scale_doubt``) pass tissue at its true scale and flag a wrong one?

    python docs/experiments/region_scale.py --data ../shared/data/histopathology [--patients 60]

Per patient, up to 49 of its 50 px patches (4 µm/px) are tiled into a mosaic: the nearest thing to a
field of view these data hold. Each mosaic is checked at its true scale, enlarged 2x, 4x and 8x but still
called 4 µm/px (a high-magnification field uploaded without its scale), enlarged 8x and called 0.5 µm/px
(right again), and called 0.25 µm/px without enlarging (a 40x claim for a 2.5x image). Prints how often
each is flagged. Enlarging by interpolation is not a real high-magnification scan: the check's rate on
real fields is not measured here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from bcc_model.imaging.scale import nucleus_size_um, scale_doubt

CASES = {  # name: (enlargement, claimed µm/px, whether a warning is right)
    "true 4 µm/px": (1, 4.0, False),
    "2x, called 4": (2, 4.0, True),
    "4x, called 4": (4, 4.0, True),
    "8x, called 4": (8, 4.0, True),
    "8x, called 0.5": (8, 0.5, False),
    "1x, called 0.25": (1, 0.25, True),
}


def mosaics(data: Path, n_patients: int) -> list[np.ndarray]:
    table = pd.read_csv(data / "labels.csv", dtype=str)
    out = []
    for group in sorted(table["group"].unique())[:n_patients]:
        files = table.loc[table["group"] == group, "file"].tolist()
        tiles = [t for t in (cv2.imread(str(data / f)) for f in files[:80]) if t is not None and t.shape[:2] == (50, 50)]
        side = int(np.sqrt(min(len(tiles), 49)))
        if side < 3:
            continue
        out.append(np.vstack([np.hstack([t[..., ::-1] for t in tiles[r * side:(r + 1) * side]]) for r in range(side)]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--patients", type=int, default=60)
    args = parser.parse_args()
    fields = mosaics(args.data, args.patients)
    print(f"{len(fields)} patients' mosaics")
    print("| case | flagged | median nuclei size (µm) | a warning is right |\n|---|---|---|---|")
    for name, (factor, mpp, should) in CASES.items():
        flagged, sizes = [], []
        for field in fields:
            image = field if factor == 1 else cv2.resize(field, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
            flagged.append(scale_doubt(image, mpp) is not None)
            size = nucleus_size_um(image, mpp)
            if size is not None:
                sizes.append(size)
        print(f"| {name} | {np.mean(flagged):.1%} ({sum(flagged)}/{len(flagged)}) | "
              f"{np.median(sizes):.1f} | {'yes' if should else 'no'} |")


if __name__ == "__main__":
    main()
