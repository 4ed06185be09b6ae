"""Tryton purchase order points (``stock_supply``) from the forecast's reorder points, so that
Tryton's own supply run orders by what the counts say (``SHELFCOUNT_TRYTON_ORDER_POINTS=1``).

One order point per product and warehouse (Tryton's rule): the bins of a SKU in one warehouse
are added up, minimum = their reorder points, target = minimum plus what the suggestion would
order on top. An existing order point is rewritten, so running this again only moves the
figures.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from .base import SinkError
from .tryton import TrytonClient
from .tryton_purchase import warehouse_of


class TrytonOrderPoints:
    """Writes purchase order points over JSON-RPC."""

    def __init__(self, client: TrytonClient) -> None:
        self.client = client

    def write(self, rows: Iterable[dict[str, Any]]) -> int:
        """Order points for forecast rows with a reorder point; returns how many were written
        (bins Tryton does not know, or products it cannot buy, are left out)."""
        m = self.client.model
        wanted: dict[tuple[str, int], list[float]] = defaultdict(lambda: [0.0, 0.0])
        warehouses: dict[str, int | None] = {}
        for row in rows:
            if row.get("Reorder_Point") in ("", None):
                continue
            loc = row["Location"]
            if loc not in warehouses:
                try:
                    warehouses[loc] = warehouse_of(self.client, loc)
                except SinkError:
                    warehouses[loc] = None
            if warehouses[loc] is None:
                continue
            point = float(row["Reorder_Point"])
            daily = float(row["Daily_Demand"] or 0)
            key = (row["SKU"], int(warehouses[loc]))  # type: ignore[arg-type]
            wanted[key][0] += point
            wanted[key][1] += point + max(float(row.get("Suggested_Order_Qty") or 0),
                                          daily * 14)
        products = {r["code"]: int(r["id"]) for r in m(
            "product.product", "search_read",
            [("code", "in", sorted({k[0] for k in wanted})), ("purchasable", "=", True)],
            0, None, None, ["code"])} if wanted else {}
        written = 0
        for (sku, wh), (low, target) in sorted(wanted.items()):
            if sku not in products:
                continue
            values = {"min_quantity": round(low, 2), "target_quantity": round(target, 2)}
            have = m("stock.order_point", "search", [
                ("product", "=", products[sku]), ("location", "=", wh),
                ("type", "=", "purchase")], 0, 1, None)
            if have:
                m("stock.order_point", "write", have, values)
            else:
                m("stock.order_point", "create", [{"product": products[sku], "location": wh,
                                                   "type": "purchase", **values}])
            written += 1
        return written
