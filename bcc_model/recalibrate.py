"""``python -m bcc_model.recalibrate``: the documented command; the command line is ``cli/recalibrate.py``."""

import sys

from bcc_model.cli.recalibrate import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
