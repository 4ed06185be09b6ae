"""Confirmed bays in the real store, and a clock tests can move, for the sink tests."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.schema import COLUMNS
from gateway.store import Store

_client_ids = itertools.count(1)


def row(location: str, sku: str, quantity: int, *, price: str = "10.00",
        description: str | None = None) -> dict[str, Any]:
    """One CSV row as the pipeline produces it."""
    values: dict[str, Any] = {
        "Location": location, "SKU": sku,
        "Product_Description": description or f"Test product {sku}",
        "Quantity_Counted": quantity, "Unit_Price": price,
        "Total_Value": f"{float(price) * quantity:.2f}", "Condition":
        "Good" if quantity else "Out of Stock", "Expiration_Date": "",
        "Last_Updated": "2026-11-22T09:00:00Z", "Count_Confidence": 0.93}
    assert tuple(values) == COLUMNS
    return values


@dataclass
class Bays:
    """A store with one walker's session; ``confirm`` adds a counted, confirmed bay."""

    store: Store
    walker: str = "walker-1"
    session_id: str = ""
    count_ids: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, path: Path, walker: str = "walker-1") -> Bays:
        store = Store(path)
        device, _ = store.add_device(walker)
        session = store.create_session(device)
        bays = cls(store, walker, session.id)
        bays._device = device  # type: ignore[attr-defined]
        return bays

    def new_session(self) -> str:
        """Start the walker's next session (a confirmed bay takes no new photo in its own)."""
        self.session_id = self.store.create_session(self._device).id  # type: ignore[attr-defined]
        return self.session_id

    def confirm(self, location: str, rows: list[dict[str, Any]],
                findings: list[dict[str, Any]] | None = None) -> str:
        """A counted, confirmed bay; ``findings``: the shelf audit's, in the count's result."""
        device = self._device  # type: ignore[attr-defined]
        n = next(_client_ids)
        record, _ = self.store.add_count(
            session_id=self.session_id, device_id=device.id, client_id=f"photo-{n}",
            source="test", location=location, photo_hash=f"{n:064x}", photo_bytes=1)
        self.store.finish_count(record.id, {"rows": rows, "findings": findings or []})
        self.store.confirm_count(record.id, device)
        self.count_ids.append(record.id)
        return record.id

    def delivered(self, sink: str) -> int:
        entries = self.store.outbox_entries(self.session_id)
        return sum(1 for e in entries
                   if self.store.outbox_status(e.id).get(sink, {}).get("delivered_at"))


class Clock:
    """A clock the worker reads; tests move it past retry times instead of sleeping."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
