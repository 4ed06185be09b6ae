"""The one CSV schema every count row follows, shared by the CLI, the gateway and the sinks."""

from __future__ import annotations

COLUMNS: tuple[str, ...] = (
    "Location",
    "SKU",
    "Product_Description",
    "Quantity_Counted",
    "Unit_Price",
    "Total_Value",
    "Condition",
    "Expiration_Date",
    "Last_Updated",
    "Count_Confidence",
)

CONDITIONS: tuple[str, ...] = ("Good", "Damaged", "Expired", "Out of Stock")

# A cell starting with one of these is run as a formula by spreadsheet programs (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    """The text to write in a CSV or sheet cell, never interpreted as a formula.

    Negative numbers stay numbers (a variance of -3 is data, not a formula); any other text
    starting with a formula character gets a leading apostrophe, as OWASP advises.
    """
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_PREFIXES) and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
