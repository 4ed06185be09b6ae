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
