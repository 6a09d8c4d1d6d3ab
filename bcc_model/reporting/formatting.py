"""How numbers read in every document: one formatter per kind of value.

A value that was not recorded reads "not recorded" instead of failing the render, so an older
bundle's card still renders. These are also the Jinja2 filters of ``reporting/templates``.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping, Sequence

__all__ = ["NOT_RECORDED", "get", "text", "is_number", "num", "sci", "count", "percent", "probability", "interval", "estimate", "band",
           "counts", "md_table", "escape_markdown", "FILTERS"]

NOT_RECORDED = "not recorded"


def get(data: Any, *path: str) -> Any:
    """Value at ``path`` inside nested mappings, or ``None`` where any step is missing."""
    for key in path:
        if not isinstance(data, Mapping) or key not in data:
            return None
        data = data[key]
    return data


def text(value: Any) -> str:
    """Plain text of a recorded value; lists are joined with commas."""
    if value is None or value == "" or value == [] or value == {}:
        return NOT_RECORDED
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def num(value: Any, digits: int = 3) -> str:
    """``0.842`` (fixed decimals)."""
    return f"{value:.{digits}f}" if is_number(value) else NOT_RECORDED


def sci(value: Any) -> str:
    """``1.2e-07`` (tiny differences, where fixed decimals would read 0.000)."""
    return f"{value:.1e}" if is_number(value) else NOT_RECORDED


def count(value: Any) -> str:
    """``1,234``."""
    return f"{int(value):,}" if is_number(value) else NOT_RECORDED


def percent(value: Any) -> str:
    """A fraction as ``12.5%``."""
    return f"{100 * value:.1f}%" if is_number(value) else NOT_RECORDED


def probability(value: Any) -> str:
    """A calibrated probability as a reader should see it: ``86.9%``, but ``> 99.9%`` and ``< 0.1%`` at the ends.

    Why: "100.0 %" claims a certainty no calibrated model has; the value only rounded to it.
    """
    if not is_number(value):
        return NOT_RECORDED
    if value >= 0.9995:
        return "> 99.9%"
    if value < 0.0005:
        return "< 0.1%"
    return f"{value:.1%}"


def interval(ci: Any) -> str:
    """``[0.800, 0.900]``."""
    if isinstance(ci, Sequence) and len(ci) == 2 and all(is_number(v) for v in ci):
        return f"[{ci[0]:.3f}, {ci[1]:.3f}]"
    return NOT_RECORDED


def estimate(entry: Any) -> str:
    """``value [lo, hi]`` from a ``{"value", "ci95"}`` entry."""
    return f"{num(get(entry, 'value'))} {interval(get(entry, 'ci95'))}"


def band(values: Any) -> str:
    """The indeterminate band as a half-open interval, ``[0.350, 0.600)``."""
    if isinstance(values, Sequence) and len(values) == 2 and all(is_number(v) for v in values):
        return f"[{values[0]:.3f}, {values[1]:.3f})"
    return NOT_RECORDED


def counts(mapping: Any) -> str:
    """``"a: 1,234, b: 56"`` for a name -> count mapping; empty when it is not one."""
    return ", ".join(f"{k}: {count(v)}" for k, v in mapping.items()) if isinstance(mapping, Mapping) else ""


FILTERS = {"text": text, "num": num, "sci": sci, "count": count, "percent": percent, "interval": interval,
           "estimate": estimate, "band": band, "counts": counts, "probability": probability}


def md_table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    """A Markdown table: header, ``|---|`` rule and one line per row (no trailing newline)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows])


FILTERS["md_table"] = md_table


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~$:=^&\"'%@;,/?])")
_AUTOLINK_BREAKS = re.compile(r"\\:|(?i:www)|\\@")
_ZERO_WIDTH_SPACE = "\u200b"


def escape_markdown(value: object) -> str:
    """``value`` as literal text inside Markdown: every ASCII punctuation mark backslash-escaped.

    Why: file names, CSV cells and DICOM text are chosen by whoever made the file. Shown
    through a Markdown element unescaped, ``![x](http://host/y.png)`` makes every viewer's browser
    fetch that URL, and ``[click](…)`` becomes a link. CommonMark lets any ASCII punctuation be
    escaped with a backslash, so the escaped text always renders as the characters typed
    (Streamlit's ``:colour[…]`` and ``$…$`` directives included). Line breaks become spaces, so a
    name cannot start a new heading or list.
    """
    text = " ".join(str(value).splitlines())
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", text)
    # GitHub-flavoured Markdown (Streamlit's) also links bare URLs, www. names and e-mail addresses
    # after escapes are undone; a zero-width space after ":", "www" and "@" keeps them plain text.
    return _AUTOLINK_BREAKS.sub(lambda m: m.group(0) + _ZERO_WIDTH_SPACE, escaped)
