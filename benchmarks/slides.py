"""Benchmark of the batch and whole-slide command line: tiles per second, peak RSS, batch wall time.

Prints, on this machine:
* a generated 20,000 x 20,000 px pyramidal TIFF (1 µm/px, levels 1/4/16, made of real sample
  patches on glass) through ``predict --region``: wall time, tissue tiles, tiles per second and
  the process's peak resident memory (the slide itself would be 1.2 GB decoded);
* a 50-file batch of sample patches through ``predict --out``: wall time.
The slide is written to a temporary folder and deleted. Figures only; nothing is asserted.

Usage:
    python benchmarks/slides.py [--side 20000]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _write_slide(path: Path, side: int) -> None:
    """A pyramidal tiled TIFF of sample patches (upscaled to 1 µm/px) in a pattern, glass around it."""
    import cv2
    import numpy as np
    import tifffile

    from bcc_model.imaging.io import read_image

    patches = [cv2.resize(read_image(p).pixels, (200, 200), interpolation=cv2.INTER_CUBIC)
               for p in sorted((ROOT / "samples" / "histopathology").glob("*/*.png"))]
    stack = np.stack([*patches, np.full((200, 200, 3), 242, np.uint8)])  # the last "patch" is glass

    def tiles(scale: int):
        size = 256
        level_side = side // scale
        for y in range(0, level_side, size):
            gy = np.minimum(np.arange(y, y + size) * scale, side - 1)
            for x in range(0, level_side, size):
                gx = np.minimum(np.arange(x, x + size) * scale, side - 1)
                rows, cols = np.meshgrid(gy // 200, gx // 200, indexing="ij")
                ids = np.where((rows // 7 + cols // 5) % 3 == 2, len(patches), (rows * 31 + cols * 17) % len(patches))
                yield stack[ids, (gy % 200)[:, None], (gx % 200)[None, :]]

    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        for i, scale in enumerate((1, 4, 16)):
            level = side // scale
            tif.write(tiles(scale), shape=(level, level, 3), dtype=np.uint8, tile=(256, 256), photometric="rgb",
                      resolution=(1e4 / scale,) * 2, resolutionunit="CENTIMETER", compression="deflate",
                      subfiletype=0 if i == 0 else 1)


def _run(args: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "bcc_model.predict", *args], capture_output=True, text=True,
                            cwd=ROOT)
    return time.perf_counter() - start, result.stderr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", type=int, default=20_000, help="side of the generated slide in px")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        slide = folder / "slide.tiff"
        start = time.perf_counter()
        _write_slide(slide, args.side)
        print(f"generated {args.side:,} x {args.side:,} px slide in {time.perf_counter() - start:.0f} s "
              f"({slide.stat().st_size / 2**20:.0f} MiB on disk)")
        seconds, log = _run(["--region", str(slide), "--out", str(folder / "slide_out")])
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        import pandas as pd

        tiles = int(pd.read_csv(folder / "slide_out" / "slides.csv").loc[0, "tissue_tiles"])
        print(f"predict --region: {seconds:.1f} s wall (TensorFlow start included), {tiles:,} tissue tiles, "
              f"{tiles / seconds:.0f} tiles/s end to end, peak RSS {peak:.0f} MiB")
        batch = folder / "batch"
        batch.mkdir()
        samples = sorted((ROOT / "samples" / "histopathology").glob("*/*.png"))
        for i in range(50):
            shutil.copy(samples[i % len(samples)], batch / f"{i:02d}_{samples[i % len(samples)].name}")
        seconds, _ = _run([str(batch), "--out", str(folder / "batch_out"), "--heatmaps"])
        print(f"predict --out --heatmaps on 50 files: {seconds:.1f} s wall (TensorFlow start included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
