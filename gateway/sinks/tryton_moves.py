"""Receipts and shipments from Tryton's done stock moves, for the demand and shrinkage figures.

A done move into a bin (a storage location whose code is a bin's Location) is a receipt, one out
of a bin a shipment; a move between two bins is both. Moves to or from lost-and-found are
inventory bookings (our own counts among them) and are neither. Moves are read by their last
write time (a move is written when it is done), from a cursor the caller keeps, a few minutes
back so that a slow transaction committed late is not missed. Tryton writes done moves again
later (a recomputed cost price), so the write time is only the cursor: an event is dated by the
move's effective date and known by the move id in its source, which the store keeps once
whatever time a later read gives it. Quantities are in the product's default unit
(`internal_quantity`), as our counts are, not in the unit the move was entered in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.store.stock_repo import TRYTON_MOVE, StockEvent

from .tryton import TrytonClient

OVERLAP = timedelta(minutes=10)
PAGE = 1000


@dataclass
class MoveBatch:
    """What one read found, and the cursor to read from next."""

    receipts: list[StockEvent] = field(default_factory=list)
    shipments: list[StockEvent] = field(default_factory=list)
    cursor: datetime | None = None


def _when(value: Any) -> datetime:
    """A Tryton datetime object (UTC) as an aware datetime."""
    return datetime(value["year"], value["month"], value["day"], value.get("hour", 0),
                    value.get("minute", 0), value.get("second", 0),
                    value.get("microsecond", 0), tzinfo=UTC)


def _event_time(mv: dict[str, Any]) -> datetime:
    """When the move happened: its write time when that is on its effective date (the usual
    case, done the day it moved), else midday of the effective date (booked late or ahead)."""
    written = _when(mv["write_date"])
    day = mv.get("effective_date")
    if not day or written.date() == _when(day).date():
        return written
    return _when(day).replace(hour=12)


def _rpc_time(moment: datetime) -> dict[str, Any]:
    m = moment.astimezone(UTC)
    return {"__class__": "datetime", "year": m.year, "month": m.month, "day": m.day,
            "hour": m.hour, "minute": m.minute, "second": m.second,
            "microsecond": m.microsecond}


class TrytonMoves:
    """Reads done moves of bins over JSON-RPC."""

    def __init__(self, client: TrytonClient) -> None:
        self.client = client

    def read(self, since: datetime | None) -> MoveBatch:
        m = self.client.model
        bins = {int(r["id"]): r["code"] for r in m(
            "stock.location", "search_read", [("type", "=", "storage"), ("code", "!=", None)],
            0, None, None, ["code"])}
        lost = set(m("stock.location", "search", [("type", "=", "lost_found")], 0, None, None))
        domain: list[Any] = [("state", "=", "done")]
        if since is not None:
            domain.append(("write_date", ">=", _rpc_time(since - OVERLAP)))
        batch = MoveBatch(cursor=since)
        products: dict[int, str] = {}
        offset = 0
        while True:
            moves = m("stock.move", "search_read", domain, offset, PAGE, [("id", "ASC")],
                      ["from_location", "to_location", "product", "internal_quantity",
                       "effective_date", "write_date"])
            self._codes(moves, products)
            for mv in moves:
                self._add(batch, mv, bins, lost, products)
            if len(moves) < PAGE:
                return batch
            offset += PAGE

    def _codes(self, moves: list[dict[str, Any]], known: dict[int, str]) -> None:
        wanted = sorted({int(mv["product"]) for mv in moves} - set(known))
        if wanted:
            for r in self.client.model("product.product", "read", wanted, ["code"]):
                known[int(r["id"])] = r["code"] or ""

    @staticmethod
    def _add(batch: MoveBatch, mv: dict[str, Any], bins: dict[int, str], lost: set[int],
             products: dict[int, str]) -> None:
        src, dst = int(mv["from_location"]), int(mv["to_location"])
        sku = products.get(int(mv["product"]), "")
        if not sku or src in lost or dst in lost or not mv.get("write_date"):
            return
        at, qty = _event_time(mv), int(round(float(mv["internal_quantity"])))
        source = f"{TRYTON_MOVE}{mv['id']}"
        if dst in bins:
            batch.receipts.append(StockEvent(sku, bins[dst], qty, at, source))
        if src in bins:
            batch.shipments.append(StockEvent(sku, bins[src], qty, at, source))
        written = _when(mv["write_date"])
        if batch.cursor is None or written > batch.cursor:
            batch.cursor = written
