"""Past counts, receipts and shipments from CSV files (``shelfcount history | receipts |
shipments import``).

A bad row is reported with its file and line and skipped; the good rows of the same file are
imported, so one typo does not hold back a year of history.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from gateway.store.stock_repo import StockEvent

HISTORY_COLUMNS = ("Location", "SKU", "Quantity_Counted", "Last_Updated")
RECEIPT_COLUMNS = ("SKU", "Location", "Quantity", "Date")


@dataclass
class ImportReport:
    """What a file gave: the events read and one message per bad row."""

    events: list[StockEvent] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def parse_time(text: str) -> datetime:
    """An ISO date or date-time; naive times are UTC (the store's clock)."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _quantity(text: str, column: str) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        raise ValueError(f"{column} {text!r} is not a whole number") from None
    if value < 0:
        raise ValueError(f"{column} {value} is negative")
    return value


def _rows(path: Path, required: tuple[str, ...], report: ImportReport
          ) -> Iterator[tuple[int, dict[str, str]]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in required if c not in (reader.fieldnames or [])]
            if missing:
                report.errors.append(f"{path}:1: missing column(s) {', '.join(missing)}")
                return
            for row in reader:
                yield reader.line_num, row
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        report.errors.append(f"{path}: cannot read: {exc}")


def _event(row: dict[str, str], sku_col: str, qty_col: str, time_col: str,
           source: str) -> StockEvent:
    sku, location = (row.get(sku_col) or "").strip(), (row.get("Location") or "").strip()
    if not sku or not location:
        raise ValueError("SKU and Location are required")
    try:
        at = parse_time(row.get(time_col) or "")
    except ValueError:
        raise ValueError(f"{time_col} {row.get(time_col)!r} is not a date (YYYY-MM-DD)") from None
    return StockEvent(sku, location, _quantity(row.get(qty_col) or "", qty_col), at, source,
                      _expiry(row.get("Expiration_Date")))


def _expiry(text: str | None) -> str | None:
    """An optional ISO expiry date (counts only; receipts have no such column)."""
    if not text or not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip()).isoformat()
    except ValueError:
        raise ValueError(f"Expiration_Date {text!r} is not a date (YYYY-MM-DD)") from None


def read_file(path: Path, kind: str) -> ImportReport:
    """Count history (``kind`` "history"), receipts or shipments from one CSV file."""
    report = ImportReport()
    required = HISTORY_COLUMNS if kind == "history" else RECEIPT_COLUMNS
    qty, time_col = ("Quantity_Counted", "Last_Updated") if kind == "history" else (
        "Quantity", "Date")
    for line, row in _rows(path, required, report):
        try:
            report.events.append(_event(row, "SKU", qty, time_col, f"{path.name}:{line}"))
        except ValueError as exc:
            report.errors.append(f"{path}:{line}: {exc}")
    return report
