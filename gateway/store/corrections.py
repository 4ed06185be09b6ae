"""Checking and building people's corrections to a count's lines (the rules, no database).

``Store.correct`` checks a correction here, asks which full rows it writes (a quantity, a
Condition, a fixed expiry, a SKU change that takes one line out and adds to another, a split
by Condition) and stores them; ``already_recorded`` tells a re-send from a new correction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .rows import SPLIT, corrected_row, find_row, removed_row
from .types import CountRecord, Device, StoreError, to_ts

Line = tuple[str, int | None, dict[str, Any]]  # (sku, model quantity, full row)


def corrected_lines(record: CountRecord, *, sku: str, quantity: int,
                     location: str | None, catalog: dict[str, Any] | None,
                     condition: str | None, now: datetime, new_sku: str | None,
                     expiry: str | None) -> list[Line]:
    """(sku, model quantity, full row) of each line the correction writes."""
    current = record.rows
    base = find_row(current, sku, location)
    model_location = None if record.location_choice else location
    model = find_row(record.model_rows, sku, model_location)
    if location is None and base is None:
        location = record.location or (current[0].get("Location") if current else None)
    today = to_ts(now)[:10]
    if new_sku is None:
        row = corrected_row(base, location=location, sku=sku, quantity=quantity, now=now,
                            catalog=catalog, condition=condition, expiry=expiry,
                            today=today)
        return [(sku, line_quantity(model), row)]
    if base is None:
        raise StoreError("not_found", f"no line {sku or '(unidentified)'} in this photo")
    target = find_row(current, new_sku, base.get("Location"))
    joined = quantity + (int(target.get("Quantity_Counted") or 0) if target else 0)
    row = corrected_row(target or base, location=str(base.get("Location") or location or ""),
                        sku=new_sku, quantity=joined, now=now,
                        catalog=None if target else catalog, condition=condition,
                        expiry=expiry, today=today)
    target_model = find_row(record.model_rows, new_sku, model_location)
    return [(sku, line_quantity(model), removed_row(base, now)),
            (new_sku, line_quantity(target_model), row)]


def split_lines(record: CountRecord, lines: list[Line],
                 split: tuple[int, str], now: datetime
                 ) -> list[Line]:
    """The line keeps ``quantity - n`` items; the n split off get a line of their own (none
    when n is 0; a line left with no items is taken out rather than read "Out of Stock")."""
    n, condition = split
    sku, model_quantity, main = lines[-1]
    kept = int(main["Quantity_Counted"]) - n
    where = main.get("Location")
    out = [(sku, model_quantity,
            corrected_row(main, location=where, sku=sku, quantity=kept, now=now,
                          condition=main.get("Condition")) if kept else removed_row(main, now))]
    existing = next((r for r in record.rows
                     if r.get("SKU") == sku and r.get(SPLIT) == condition), None)
    if n:
        part = corrected_row(existing or main, location=where, sku=sku, quantity=n, now=now,
                             condition=condition)
    elif existing is not None:
        part = removed_row(existing, now)
    else:
        return out
    part[SPLIT] = condition
    return [*out, (sku, None, part)]


def check_open(record: CountRecord) -> None:
    """Corrections go to a counted, current, unconfirmed photo only."""
    if record.status != "done":
        raise StoreError("not_ready", f"count is {record.status}, not counted yet")
    if record.confirmed_at is not None:
        raise StoreError("already_confirmed", "the bay is confirmed; corrections closed")
    if not record.is_current:
        raise StoreError("superseded", "this photo was replaced by another photo of the bay; "
                         "correct that one")


def line_quantity(row: dict[str, Any] | None) -> int | None:
    if row is None:
        return None
    try:
        return int(row.get("Quantity_Counted") or 0)
    except (TypeError, ValueError):
        return None


def already_recorded(
    record: CountRecord, *, by: Device, sku: str, location: str | None, quantity: int,
    condition: str | None, client_id: str | None, expiry: str | None = None,
) -> bool:
    """Whether this correction is a re-send of one the store already holds (see ``correct``)."""
    if client_id is not None:
        return any(c.client_id == client_id for c in record.corrections)
    latest = None
    for correction in record.corrections:  # ordered by time: the last match is the latest
        if correction.sku == sku and (location is None or correction.location == location):
            latest = correction
    return (
        latest is not None and latest.by_device == by.id and latest.quantity == quantity
        and (condition is None or latest.row.get("Condition") == condition)
        and (expiry is None or latest.row.get("Expiration_Date") == expiry)
    )
