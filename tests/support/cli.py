"""Run a command line's ``main(argv)`` in the test process, as the shell would see it.

Why in-process: every ``python -m bcc_model.<command>`` subprocess imports TensorFlow and loads its
bundle again (5-10 s each on two cores). Each command keeps one subprocess smoke test; the other
tests call ``main`` here and read the same exit status, standard output and standard error.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
from typing import Callable, Sequence

__all__ = ["run_main"]


def run_main(main: Callable[[Sequence[str]], int], *args: object) -> subprocess.CompletedProcess:
    """``main([str(a) for a in args])`` with its exit status (``SystemExit`` included) and captured output."""
    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse's errors and --help
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 2)
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())
