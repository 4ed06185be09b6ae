"""Reorder suggestions for managers: the forecast's orders, decided in the app, sent to the ERP.

The list is refreshed from the forecast whenever a manager opens it (a forecast of every SKU
takes about a millisecond each), so it always says what today's counts say; decisions are kept
in the store (:mod:`gateway.store.reorder_repo`).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from gateway.stock.forecast import forecast_table, supply_from
from gateway.store.reorder_repo import ReorderSuggestion
from gateway.store.types import utcnow

HORIZON_DAYS = 28


def refresh(store: Any, catalog: Any, now: datetime | None = None) -> None:
    """Open suggestions in line with today's forecast."""
    rows = forecast_table(store, catalog, HORIZON_DAYS)
    for row in rows:
        row["Lead_Time_Days"] = supply_from(catalog.by_sku(row["SKU"])).lead_time_days
    store.refresh_suggestions(rows, now or utcnow())


def _erp_state(s: ReorderSuggestion, erp_on: bool) -> dict[str, Any]:
    if s.state != "approved":
        return {"state": None}
    if s.erp.get("done_at"):
        state = "sent"
    elif not erp_on:
        state = "not_configured"
    else:
        state = "failed" if s.erp.get("error") else "pending"
    return {"state": state, "reference": s.erp.get("reference"), "error": s.erp.get("error"),
            "attempts": s.erp.get("attempts", 0)}


def suggestion_json(s: ReorderSuggestion, catalog: Any, erp_on: bool) -> dict[str, Any]:
    """What the manager app shows: the order, why (forecast facts), the decision, the ERP."""
    entry = catalog.by_sku(s.sku)
    price = entry.unit_price if entry is not None else None
    value = (price * Decimal(s.quantity)).quantize(Decimal("0.01")) if price is not None else None
    return {
        "id": s.id, "sku": s.sku, "location": s.location, "quantity": s.quantity,
        "description": entry.description if entry is not None else "",
        "supplier": entry.supplier if entry is not None else "",
        "unit_price": str(price) if price is not None else None,
        "order_value": str(value) if value is not None else None,
        "facts": s.facts, "state": s.state, "created_at": s.created_at.isoformat(),
        "updated_at": s.updated_at.isoformat(), "decided_by": s.decided_by,
        "decided_at": s.decided_at.isoformat() if s.decided_at else None, "note": s.note,
        "erp": _erp_state(s, erp_on),
    }
