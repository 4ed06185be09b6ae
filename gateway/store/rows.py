"""Applying people's corrections to the model's rows.

The model's rows stay untouched in the stored result; a correction stores the full row as the
person left it, and the effective rows of a count are the model rows with each corrected line
(same Location and SKU) replaced by its latest correction, plus lines the person added.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from gateway.schema import COLUMNS, decimal_or_none

from .types import Correction, to_ts

REMOVED = "_removed"  # a correction row with this key set takes its line out (SKU changed)
SPLIT = "_split"  # a line split off another by Condition (e.g. 2 of 12 Damaged): its Condition


def line_key(row: Mapping[str, Any]) -> tuple[str, str, str]:
    """A line: one SKU at one location, and apart from it the items split off by Condition."""
    return (str(row.get("Location") or ""), str(row.get("SKU") or ""), str(row.get(SPLIT) or ""))



def find_row(
    rows: Iterable[Mapping[str, Any]], sku: str, location: str | None
) -> Mapping[str, Any] | None:
    """The line a correction is about: same SKU (and Location when given), not a split-off."""
    for row in rows:
        if row.get(SPLIT):
            continue
        if str(row.get("SKU") or "") == sku and (
            location is None or str(row.get("Location") or "") == location
        ):
            return row
    return None


def corrected_row(
    base: Mapping[str, Any] | None,
    *,
    location: str | None,
    sku: str,
    quantity: int,
    now: datetime,
    catalog: Mapping[str, Any] | None = None,
    condition: str | None = None,
    expiry: str | None = None,
    today: str | None = None,
) -> dict[str, Any]:
    """The full CSV row after a person set ``quantity`` (and maybe ``condition``) for ``sku``.

    ``base`` is the model's (or the previous) row for that line, None for a line the person
    added; ``catalog`` may supply Product_Description / Unit_Price for added lines. A person's
    figure is taken as certain, so Count_Confidence becomes 1.0. A ``condition`` the person
    chose (they saw the damage) wins; without one an empty line reads "Out of Stock" and a
    line that has stock again reads "Good".
    """
    row: dict[str, Any] = {column: "" for column in COLUMNS}
    if base is not None:
        row.update({k: base[k] for k in COLUMNS if k in base})
    elif catalog:
        row["Product_Description"] = catalog.get("Product_Description", "")
        row["Unit_Price"] = catalog.get("Unit_Price", "")
    if catalog and base is not None and base.get("SKU") != sku:  # the line's SKU changed
        row["Product_Description"] = catalog.get("Product_Description", "")
        row["Unit_Price"] = catalog.get("Unit_Price", "")
    row["SKU"] = sku
    if expiry is not None:
        row["Expiration_Date"] = expiry
        if condition is None and quantity:
            expired = bool(expiry) and today is not None and expiry < today
            if expired or row.get("Condition") == "Expired":
                condition = "Expired" if expired else "Good"
    if location is not None or not row["Location"]:
        row["Location"] = location or row["Location"] or ""
    set_quantity(row, quantity)
    if condition is not None:
        row["Condition"] = condition
    elif quantity == 0:
        row["Condition"] = "Out of Stock"
    elif row.get("Condition") in ("", "Out of Stock", None):
        row["Condition"] = "Good"
    row["Last_Updated"] = to_ts(now).replace("+00:00", "Z")
    row["Count_Confidence"] = 1.0
    return row


def set_quantity(row: dict[str, Any], quantity: int) -> None:
    """A line's quantity and, when it has a price, its Total_Value in the representation the
    pipeline used (text or number; numbers for new lines)."""
    row["Quantity_Counted"] = quantity
    price = decimal_or_none(row.get("Unit_Price"))
    if price is not None:
        total = (price * quantity).quantize(Decimal("0.01"))
        as_text = isinstance(row.get("Total_Value"), str) and row["Total_Value"] != ""
        row["Total_Value"] = str(total) if as_text else float(total)


def removed_row(base: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The correction that takes a line out: its SKU was wrong (the items moved to another)."""
    row = {column: base.get(column, "") for column in COLUMNS}
    row.update({"Quantity_Counted": 0, "Last_Updated": to_ts(now).replace("+00:00", "Z"),
                REMOVED: True})
    return row


def effective_rows(
    model_rows: Iterable[Mapping[str, Any]], corrections: Iterable[Correction],
    location: str | None = None,
) -> list[dict[str, Any]]:
    """Model rows with corrections applied (latest correction of a line wins).

    ``location`` (the walker's answer to a location conflict) is the Location of every line:
    one photo is one bay, so lines corrected before and after the answer stay one line.
    """
    def placed(row: Mapping[str, Any]) -> dict[str, Any]:
        return {**row, "Location": location} if location else dict(row)

    rows = [placed(row) for row in model_rows]
    index = {line_key(row): i for i, row in enumerate(rows)}
    for correction in sorted(corrections, key=lambda c: c.corrected_at):
        row = placed(correction.row)
        key = line_key(row)
        if key in index:
            rows[index[key]] = row
        else:
            index[key] = len(rows)
            rows.append(row)
    return [row for row in rows if not row.get(REMOVED)]
