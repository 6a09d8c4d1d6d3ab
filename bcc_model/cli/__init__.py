"""``bcc``: one command line with a subcommand per stage.

``bcc train``, ``bcc predict``, ``bcc evaluate``, ``bcc export`` and ``bcc fetch-pretrained`` run
``main(argv)`` of one small module here (``train.py``, ``predict.py``, ``evaluate.py``,
``export.py``, ``fetch_pretrained.py``) that parses arguments, calls the library, prints and
sets the exit status; nothing else in the package prints. ``python -m bcc_model.train`` (and
``predict``, ``evaluate``, ``export``, ``pretrained``) keep working as documented: those
top-level modules only call these. The command modules are imported only when their subcommand is chosen, so
``bcc predict`` never loads the training code.
"""

from __future__ import annotations

import importlib
import sys
from typing import Sequence

__all__ = ["COMMANDS", "main"]

COMMANDS = {
    "train": ("bcc_model.cli.train", "train a modality's model and write its bundle"),
    "predict": ("bcc_model.cli.predict", "classify files, folders, zips and whole slides"),
    "evaluate": ("bcc_model.cli.evaluate", "score a bundle on a labelled folder of new patients"),
    "recalibrate": ("bcc_model.cli.recalibrate", "refit a bundle's calibration to your site's labelled patients"),
    "export": ("bcc_model.cli.export", "write a bundle as a SavedModel or ONNX file"),
    "fetch-pretrained": ("bcc_model.cli.fetch_pretrained", "download and verify the pinned pretrained weights"),
}
"""Subcommand -> (module whose ``main(argv)`` runs it, one line for ``bcc --help``)."""


def _usage() -> str:
    lines = ["usage: bcc <command> [options]   (bcc <command> --help for its options)", "", "commands:"]
    lines += [f"  {name:<17} {summary}" for name, (_, summary) in COMMANDS.items()]
    return "\n".join(lines + ["", "Research use only: not for diagnostic use."])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the subcommand named first in ``argv``; its exit status, or 2 for a missing or unknown one."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage(), file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    if args[0] not in COMMANDS:
        print(f"error: unknown command {args[0]!r}; valid: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[args[0]][0])
    return module.main(args[1:])
