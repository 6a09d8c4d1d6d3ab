"""``python -m bcc_model.train``: the documented command, kept; the command line is ``cli/train.py``."""

import sys

from bcc_model.cli.train import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
