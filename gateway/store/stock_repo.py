"""Stock history: past counts, receipts and shipments per SKU and location (issue 16's raw
material).

Imported rows are keyed so that importing a file twice adds nothing: a count by (SKU, location,
time), a receipt or shipment by (SKU, location, time, source line), one read from the ERP by
its move id. The store's own confirmed
bays join the history from the outbox, where each confirmation is written with its final rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, tuple_

from .engine import Database
from .tables import meta, outbox, stock_history, stock_receipts, stock_shipments
from .types import from_ts, to_ts

TRYTON_MOVE = "tryton move "  # source of an event read from a Tryton move, before its id


@dataclass(frozen=True)
class StockEvent:
    """One counted quantity or one receipt of a SKU at a location."""

    sku: str
    location: str
    quantity: int
    at: datetime
    source: str
    expires: str | None = None  # a count's Expiration_Date (ISO date), when the bin shows one


class StockRepository:
    """The ``stock_history`` and ``stock_receipts`` tables."""

    db: Database

    def add_history(self, events: Sequence[StockEvent]) -> int:
        """Store past counts; returns how many were new (same SKU, location, time: skipped)."""
        return self._add(stock_history, "counted_at", events,
                         ("sku", "location", "counted_at"))

    def add_receipts(self, events: Sequence[StockEvent]) -> int:
        """Store receipts into stock; returns how many were new."""
        return self._add_moves(stock_receipts, "received_at", events)

    def add_shipments(self, events: Sequence[StockEvent]) -> int:
        """Store shipments out of stock (picks, sales); returns how many were new."""
        return self._add_moves(stock_shipments, "shipped_at", events)

    def _add_moves(self, table, time_column: str, events: Sequence[StockEvent]) -> int:
        """An ERP move is known by its id (in the source) whatever time a later read gives it;
        an imported line by its SKU, bin, time and file."""
        by_id = [e for e in events if e.source.startswith(TRYTON_MOVE)]
        rest = [e for e in events if not e.source.startswith(TRYTON_MOVE)]
        return (self._add(table, time_column, by_id, ("sku", "location", "source"))
                + self._add(table, time_column, rest, ("sku", "location", time_column, "source")))

    def history(self) -> list[StockEvent]:
        """Imported counts and the store's confirmed bays, oldest first. A bay confirmed again
        after a reopen counts once, with its latest rows."""
        with self.db.tx() as conn:
            rows = conn.execute(select(stock_history)).all()
            entries = conn.execute(select(outbox).order_by(outbox.c.created_at)).all()
        events = [StockEvent(r.sku, r.location, int(r.quantity), from_ts(r.counted_at),
                             r.source, r.expires_on) for r in rows]
        revised = {e.revises for e in entries if e.revises}
        for entry in entries:
            if entry.id in revised:
                continue
            for row in json.loads(entry.rows_json):
                sku, location = row.get("SKU") or "", row.get("Location") or entry.location
                if sku and location:
                    events.append(StockEvent(sku, location, int(row["Quantity_Counted"] or 0),
                                             from_ts(entry.created_at), f"count {entry.count_id}",
                                             row.get("Expiration_Date") or None))
        return sorted(events, key=lambda e: (e.at, e.sku, e.location))

    def receipts(self) -> list[StockEvent]:
        """Every receipt, oldest first."""
        return self._moves(stock_receipts, "received_at")

    def shipments(self) -> list[StockEvent]:
        """Every shipment, oldest first."""
        return self._moves(stock_shipments, "shipped_at")

    def _moves(self, table, time_column: str) -> list[StockEvent]:
        with self.db.tx() as conn:
            rows = conn.execute(select(table).order_by(table.c[time_column])).mappings()
            return [StockEvent(r["sku"], r["location"], int(r["quantity"]),
                               from_ts(r[time_column]), r["source"]) for r in rows]

    def _add(self, table, time_column: str, events: Sequence[StockEvent],
             key: tuple[str, ...]) -> int:
        values = [{"sku": e.sku, "location": e.location, "quantity": e.quantity,
                   time_column: to_ts(e.at), "source": e.source} for e in events]
        if table is stock_history:
            for value, event in zip(values, events, strict=True):
                value["expires_on"] = event.expires
        unique = {tuple(v[k] for k in key): v for v in values}
        with self.db.tx() as conn:
            columns = tuple_(*(table.c[k] for k in key))
            have: set[tuple] = set()
            keys = list(unique)
            for i in range(0, len(keys), 500):
                have.update(tuple(r) for r in conn.execute(
                    select(*(table.c[k] for k in key)).where(columns.in_(keys[i:i + 500]))))
            new = [v for k, v in unique.items() if k not in have]
            if new:
                conn.execute(table.insert(), new)
        return len(new)

    def stock_cursor(self, name: str) -> str | None:
        """Where an import from another system (Tryton's moves) got to."""
        with self.db.tx() as conn:
            return conn.execute(select(meta.c.value).where(
                meta.c.key == f"cursor:{name}")).scalar()

    def set_stock_cursor(self, name: str, value: str) -> None:
        with self.db.tx() as conn:
            conn.execute(delete(meta).where(meta.c.key == f"cursor:{name}"))
            conn.execute(meta.insert().values(key=f"cursor:{name}", value=value))
