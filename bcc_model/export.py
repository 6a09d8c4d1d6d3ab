"""``python -m bcc_model.export``: the documented command, kept; the command line is ``cli/export.py``."""

import sys

from bcc_model.cli.export import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
