"""``python -m bcc_model.pretrained``: the documented command, kept; the command line is ``cli/fetch_pretrained.py``."""

import sys

from bcc_model.cli.fetch_pretrained import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
