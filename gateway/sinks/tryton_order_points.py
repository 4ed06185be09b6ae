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

from .tryton import TrytonClient
from .tryton_purchase import warehouses_of


class TrytonOrderPoints:
    """Writes purchase order points over JSON-RPC: a few calls whatever the number of SKUs
    (the location tree, the products, the existing points; then only the changes)."""

    def __init__(self, client: TrytonClient) -> None:
        self.client = client

    def write(self, rows: Iterable[dict[str, Any]]) -> int:
        """Order points for forecast rows with a reorder point; returns how many are in line
        with the forecast now (bins Tryton does not know, or products it cannot buy, are left
        out)."""
        wanted = self._wanted([r for r in rows if r.get("Reorder_Point") not in ("", None)])
        if not wanted:
            return 0
        m = self.client.model
        products = {r["code"]: int(r["id"]) for r in m(
            "product.product", "search_read",
            [("code", "in", sorted({k[0] for k in wanted})), ("purchasable", "=", True)],
            0, None, None, ["code"])}
        have = {(int(r["product"]), int(r["location"])): r for r in m(
            "stock.order_point", "search_read",
            [("product", "in", sorted(products.values())), ("type", "=", "purchase")],
            0, None, None, ["product", "location", "min_quantity", "target_quantity"])}
        new, written = [], 0
        for (sku, wh), (low, target) in sorted(wanted.items()):
            if sku not in products:
                continue
            values = {"min_quantity": round(low, 2), "target_quantity": round(target, 2)}
            point = have.get((products[sku], wh))
            if point is None:
                new.append({"product": products[sku], "location": wh, "type": "purchase",
                            **values})
            elif any(abs(float(point[k] or 0) - v) > 1e-9 for k, v in values.items()):
                m("stock.order_point", "write", [int(point["id"])], values)
            written += 1
        if new:
            m("stock.order_point", "create", new)
        return written

    def _wanted(self, rows: list[dict[str, Any]]) -> dict[tuple[str, int], list[float]]:
        """(SKU, warehouse) -> [minimum, target]: the bins of a SKU in a warehouse added up."""
        warehouses = warehouses_of(self.client, {r["Location"] for r in rows}) if rows else {}
        wanted: dict[tuple[str, int], list[float]] = defaultdict(lambda: [0.0, 0.0])
        for row in rows:
            wh = warehouses.get(row["Location"])
            if wh is None:
                continue
            point = float(row["Reorder_Point"])
            daily = float(row["Daily_Demand"] or 0)
            wanted[(row["SKU"], wh)][0] += point
            wanted[(row["SKU"], wh)][1] += point + max(
                float(row.get("Suggested_Order_Qty") or 0), daily * 14)
        return wanted
