"""Approved reorder suggestions become Tryton purchase requests, exactly once.

Tryton refuses to create ``purchase.request`` records over RPC (its fields are read-only
outside the server: requests are made by Tryton's own supply run or by a purchase requisition).
So an approval goes the way a person's request to buy goes in Tryton: a purchase requisition
(``trytond_purchase_requisition``) with one line for the product and quantity, for the
warehouse of the bin, waited and approved by the gateway's Tryton user (an employee), which
makes Tryton create the purchase request itself (origin: the requisition line).

Exactly once: the requisition's description is the reference ``shelfcount:reorder:<id>``. A
retry that finds it carries an unfinished one forward (draft -> waiting -> approved) and
otherwise only reads what Tryton made; a second requisition is never created.

Units: a suggestion is in the units walkers count (the product's default unit). Where the
product is bought in another unit (a case of 12), the requisition asks for whole purchase
units, rounded up so that the order never falls short of the suggestion.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

from gateway.store.reorder_repo import ReorderSuggestion

from .base import SinkError
from .tryton import NOTE_PREFIX, TrytonClient

MAX_LOCATION_DEPTH = 16


def reference(suggestion_id: str) -> str:
    return f"{NOTE_PREFIX}reorder:{suggestion_id}"


def _date(day: date) -> dict[str, Any]:
    return {"__class__": "date", "year": day.year, "month": day.month, "day": day.day}


def warehouse_of(client: TrytonClient, location: str) -> int:
    """The warehouse above a bin (Tryton has no field for it over RPC: walk up the tree)."""
    found = warehouses_of(client, [location])[location]
    if found is None:
        raise SinkError(f"Tryton has no warehouse above location {location!r} (unknown to "
                        "it, or in no warehouse)", transient=False)
    return found


def warehouses_of(client: TrytonClient, codes: Iterable[str]) -> dict[str, int | None]:
    """The warehouse above each bin code (None: unknown to Tryton, or in no warehouse), from
    one read of the location tree instead of a walk up per bin."""
    tree = {int(r["id"]): r for r in client.model(
        "stock.location", "search_read", [], 0, None, None, ["code", "type", "parent"])}
    by_code = {r["code"]: int(i) for i, r in tree.items() if r.get("code")}
    out: dict[str, int | None] = {}
    for code in codes:
        current, out[code] = by_code.get(code), None
        for _ in range(MAX_LOCATION_DEPTH):
            if current is None or current not in tree:
                break
            if tree[current]["type"] == "warehouse":
                out[code] = current
                break
            current = tree[current]["parent"]
    return out


class TrytonPurchaser:
    """Makes the purchase request of an approved suggestion through a purchase requisition."""

    def __init__(self, client: TrytonClient) -> None:
        self.client = client

    def request(self, suggestion: ReorderSuggestion, today: date) -> str:
        """Make (or find) the request; returns what Tryton calls it, for the manager."""
        m = self.client.model
        ref = reference(suggestion.id)
        found = m("purchase.requisition", "search_read", [("description", "=", ref)], 0, 1,
                  None, ["state"])
        if found:
            rid, state = int(found[0]["id"]), found[0]["state"]
        else:
            rid, state = self._create(suggestion, ref, today), "draft"
        if state in ("cancelled", "rejected"):
            raise SinkError(f"Tryton purchase requisition {rid} for {suggestion.sku} was "
                            f"{state} in Tryton", transient=False)
        if state == "draft":
            m("purchase.requisition", "wait", [rid])
            state = "waiting"
        if state == "waiting":
            m("purchase.requisition", "approve", [rid])
        return self._describe(rid)

    def _create(self, s: ReorderSuggestion, ref: str, today: date) -> int:
        m = self.client.model
        employee = self.client.context.get("employee")
        if not employee:
            raise SinkError(f"Tryton user {self.client.user!r} has no current employee "
                            "(a purchase requisition needs one)", transient=False)
        products = m("product.product", "search_read", [("code", "=", s.sku)], 0, 1, None,
                     ["purchasable", "purchase_uom", "default_uom"])
        if not products:
            raise SinkError(f"Tryton has no product with code {s.sku}", transient=False)
        product = products[0]
        if not product.get("purchasable"):
            raise SinkError(f"Tryton product {s.sku} is not purchasable", transient=False)
        lead = float(s.facts.get("Lead_Time_Days") or 0)
        unit, quantity = self._in_purchase_unit(product, float(s.quantity))
        line = {"product": int(product["id"]), "quantity": quantity, "unit": unit,
                "description": f"{s.sku} for {s.location} (ShelfCount reorder suggestion: "
                               f"{s.quantity} units)"}
        (rid,) = m("purchase.requisition", "create", [{
            "description": ref, "employee": employee,
            "warehouse": warehouse_of(self.client, s.location),
            "supply_date": _date(today + timedelta(days=max(0, round(lead)))),
            "lines": [["create", [line]]]}])
        return int(rid)

    def _in_purchase_unit(self, product: dict[str, Any], units: float) -> tuple[int, float]:
        """The product's purchase unit and the quantity in it that covers ``units`` of its
        default unit (same category in Tryton; factor: size in the category's reference)."""
        default = int(product["default_uom"])
        bought = int(product.get("purchase_uom") or default)
        if bought == default:
            return default, units
        uoms = {int(r["id"]): r for r in self.client.model(
            "product.uom", "read", [default, bought], ["factor", "rounding"])}
        size = float(uoms[bought]["factor"]) / float(uoms[default]["factor"])
        step = float(uoms[bought]["rounding"]) or 1.0
        return bought, round(math.ceil(units / size / step - 1e-9) * step, 6)

    def _describe(self, rid: int) -> str:
        m = self.client.model
        (rec,) = m("purchase.requisition", "read", [rid], ["number", "state", "lines"])
        requests = m("purchase.request", "search", [
            ("origin", "in", [f"purchase.requisition.line,{i}" for i in rec["lines"]])],
            0, None, None) if rec["lines"] else []
        made = ", ".join(f"purchase request {i}" for i in requests) or "no purchase request yet"
        return f"requisition {rec['number'] or rid} ({rec['state']}): {made}"
