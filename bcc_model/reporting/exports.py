"""Spreadsheet-safe CSV: every CSV the product writes goes through :func:`to_safe_csv`.

Why: a cell that starts with ``=``, ``+``, ``-``, ``@`` (or a tab or carriage return) is run as a
formula when the file is opened in Excel or LibreOffice, so a file named ``=HYPERLINK(…).png``
could act in the reader's spreadsheet. OWASP's rule (CSV injection) is to prefix such text
cells with a single quote, which spreadsheets show as text. Numbers are left as numbers.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["neutralise_formula", "to_safe_csv"]

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formula(value: object) -> object:
    """A text cell that a spreadsheet would run as a formula, prefixed with ``'``; anything else unchanged."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def to_safe_csv(table: pd.DataFrame) -> str:
    """``table`` as CSV text (no index), with formula-like text cells neutralised."""
    safe = table.copy()
    for column in safe.columns:
        if safe[column].dtype == object or pd.api.types.is_string_dtype(safe[column]):
            safe[column] = safe[column].map(neutralise_formula)
    safe.columns = [neutralise_formula(str(c)) for c in safe.columns]
    return safe.to_csv(index=False)
