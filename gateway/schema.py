"""The one CSV schema every count row follows, shared by the CLI, the gateway and the sinks."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

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


def decimal_or_none(value: object) -> Decimal | None:
    """A cell's number (rows travel as JSON and CSV, so numbers may be text); None if absent
    or not a number."""
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None
