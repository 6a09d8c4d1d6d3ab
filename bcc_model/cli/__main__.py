"""``python -m bcc_model.cli``: the ``bcc`` command without installing the package."""

import sys

from bcc_model.cli import main

sys.exit(main())
