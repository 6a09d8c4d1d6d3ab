"""``python -m bcc_model.predict``: the documented command, kept; the command line is ``cli/predict.py``."""

import sys

from bcc_model.cli.predict import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
