"""``python -m bcc_model.evaluate``: the documented command, kept; the command line is ``cli/evaluate.py``."""

import sys

from bcc_model.cli.evaluate import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
