"""Neutralise spreadsheet formula injection in every cell we write (CSV files, Sheets).

A product description or a label read off a shelf is outside input; a cell beginning with
``=``, ``+``, ``-`` or ``@`` (or their fullwidth forms, which spreadsheets fold to the ASCII
ones, or any control character such as a tab, carriage return or line feed, which some
programs strip before evaluating) would run as a formula when a manager opens the file. Such
text gets a leading apostrophe, the usual "treat as text" marker (OWASP's advice). Real
numbers, including negative variances, stay numbers: ``-3`` is not a formula.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

_TRIGGERS = ("=", "+", "-", "@", "\uff1d", "\uff0b", "\uff0d", "\uff20",
             *(chr(c) for c in range(32)), "\x7f")
_PLAIN_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def safe_cell(value: Any) -> Any:
    """The value to write: numbers as they are, text escaped when it could be a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        return value
    if isinstance(value, Decimal):
        return float(value) if value != value.to_integral_value() else int(value)
    text = str(value)
    if text.startswith(_TRIGGERS) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def safe_row(values: list[Any]) -> list[Any]:
    return [safe_cell(v) for v in values]
