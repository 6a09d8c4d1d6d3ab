"""Where the library's log records go when a command line runs: the console.

Why: the library logs (``logging.getLogger(__name__)``) and never prints, so the app, Ray
workers and tests choose what they see. A command line wants the familiar output: progress on
stdout, warnings on stderr as ``note: ...``. The streams are looked up at each record, so a
test that captures ``sys.stdout`` sees the output, and calling this twice adds nothing.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import sys
import unicodedata

__all__ = ["log_to_console", "release_memory", "terminal_safe"]


class _ConsoleHandler(logging.Handler):
    """Progress (INFO) to the current ``sys.stdout``; WARNING and above to ``sys.stderr`` as ``note: ...``."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            if record.levelno >= logging.WARNING:
                print(f"note: {message}", file=sys.stderr, flush=True)
            else:
                print(message, flush=True)
        except Exception:  # a closed stream must not end a training run
            self.handleError(record)


def log_to_console() -> None:
    """Send the ``bcc_model`` loggers' INFO and above to the console (idempotent)."""
    logger = logging.getLogger("bcc_model")
    if not any(isinstance(h, _ConsoleHandler) for h in logger.handlers):
        logger.addHandler(_ConsoleHandler())
    logger.setLevel(logging.INFO)


def terminal_safe(text: str) -> str:
    """``text`` with control characters and bidirectional overrides shown as escapes (``\\x1b``, ``\\u202e``).

    Why: a file name is chosen by whoever made the file; printed raw, a newline or an escape code
    can forge a result line on the screen, and a right-to-left override can reverse what is read.
    CSV and JSON keep the true name.
    """
    return "".join(ch if unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp") else
                   (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}") for ch in text)


def release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the system (glibc ``malloc_trim``).

    Why: a batch reads one large image after another; glibc keeps the freed pages of each in its
    arenas, so without this the process's peak grows with the sequence, not with the largest file.
    """
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass
