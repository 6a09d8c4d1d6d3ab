"""Peak memory of ``predict`` over the hostile batch corpus, per modality: figures, no asserts.

The corpus (``tests/hostile.py``, made in a temporary folder, deleted afterwards): a zip with
good, duplicate, encrypted, damaged, unsupported, declared-2-GiB, bomb, nested and SVG members;
an extension-less DICOM with burned-in text; a 100-megapixel RGBA PNG; an 8000² px slide without
a pyramid. Each modality's ``python -m bcc_model.predict`` runs in its own process; printed: the
status counts, whether any traceback appeared, and the peak resident memory (VmHWM).

Usage:
    python benchmarks/corpus.py [--modalities histopathology mammography ultrasound]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.hostile import hostile_zip, make_dicom  # noqa: E402


def _corpus(folder: Path) -> None:
    import tifffile
    from PIL import Image

    samples = sorted((ROOT / "samples" / "histopathology").glob("*/*.png"))
    hostile_zip(folder / "archive.zip", {"good.png": samples[0].read_bytes(), "twin_a.png": samples[1].read_bytes(),
                                         "twin_b.png": samples[-1].read_bytes(),
                                         "scan": make_dicom(np.full((64, 64), 900, np.uint16))})
    (folder / "IM000001").write_bytes(make_dicom(np.full((2000, 2000), 700, np.uint16), BurnedInAnnotation="YES"))
    Image.fromarray(np.zeros((10000, 10000, 4), np.uint8), "RGBA").save(folder / "rgba_100mp.png")

    def tiles():
        for _ in range((8000 // 256 + 1) ** 2):
            yield np.full((256, 256, 3), 240, np.uint8)

    tifffile.imwrite(folder / "flat_8000.tiff", tiles(), shape=(8000, 8000, 3), dtype=np.uint8, tile=(256, 256),
                     photometric="rgb", compression="deflate")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modalities", nargs="+", default=["histopathology", "mammography", "ultrasound"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "corpus"
        folder.mkdir()
        _corpus(folder)
        for modality in args.modalities:
            code = ("import resource, sys; from bcc_model.cli.predict import main; status = main(sys.argv[1:]); "
                    "print('peak', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); "
                    "sys.exit(status)")
            started = time.perf_counter()
            run = subprocess.run([sys.executable, "-c", code, "--modality", modality, str(folder), "--out",
                                  str(Path(tmp) / f"out_{modality}")], capture_output=True, text=True, cwd=ROOT)
            lines = run.stderr.splitlines()
            summary = next((line.split("\r")[-1] for line in lines if "input(s):" in line), "no summary")
            peak = next((int(line.split()[1]) for line in lines if line.startswith("peak ")), 0) / (1 << 20)
            print(f"{modality:<15} exit {run.returncode}  {summary.split(';')[0]}  traceback: "
                  f"{'yes' if 'Traceback' in run.stderr else 'no'}  peak RSS {peak:.2f} GiB  "
                  f"{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
