"""The "Reorder" and "Alerts" worksheets of the shared spreadsheet, kept current.

Each publish replaces both worksheets (cleared, then written), so the sheet shows what the
counts say now rather than a log: the open reorder suggestions, and the slow movers, expiry
risks and shrinkage alerts of the last 30 days. A report worker publishes within a minute of
a confirmed bay or a manager's decision, and every 15 minutes anyway (demand moves with time);
a failed publish is retried at the next poll.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from gateway.sinks.worker import PollingWorker
from gateway.store.types import utcnow

log = logging.getLogger(__name__)
REORDER = "Reorder"
ALERTS = "Alerts"
REORDER_HEADER = ("SKU", "Location", "Description", "Suggested_Order_Qty", "On_Hand",
                  "Daily_Demand", "Days_Until_Stockout", "Reorder_Point", "Order_Value",
                  "Supplier", "State", "Suggested_At")
ALERT_HEADER = ("Kind", "SKU", "Location", "What", "Units", "Value", "State", "Date")
ALERT_DAYS = 30
REFRESH_S = 900.0


def start_report(settings: Any, store: Any, catalog: Callable[[], Any]) -> ReportWorker | None:
    """The report worker, started, when the Sheets sink is fully configured; else None."""
    from gateway.sinks.registry import SinkConfigError, build_sinks
    from gateway.stock.insights import InsightSettings

    try:
        (sink,) = build_sinks(settings, store.session_rows, only="sheets")
    except (SinkConfigError, ValueError):
        return None
    worker = ReportWorker(sink, store, catalog, InsightSettings.from_settings(settings))
    return worker.start()  # type: ignore[return-value]


def reorder_rows(store: Any, catalog: Any) -> list[list[Any]]:
    from gateway.stock.reorder import refresh, suggestion_json

    refresh(store, catalog)
    out = []
    for s in store.suggestions(("open",)):
        j = suggestion_json(s, catalog, erp_on=False)
        f = j["facts"]
        out.append([j["sku"], j["location"], j["description"], j["quantity"], f["On_Hand"],
                    f["Daily_Demand"], f["Days_Until_Stockout"], f["Reorder_Point"],
                    j["order_value"] or "", j["supplier"], j["state"],
                    j["updated_at"][:10]])
    return out


def alert_rows(store: Any, catalog: Any, cfg: Any) -> list[list[Any]]:
    from gateway.stock.demand import demand_series
    from gateway.stock.insights import expiry_risk, rises, shrinkage_alerts, slow_movers

    def price(sku: str) -> Any:
        entry = catalog.by_sku(sku)
        return entry.unit_price if entry is not None else None

    series = demand_series(store.history(), store.receipts(), store.shipments())
    now = utcnow()
    rows = [["shrinkage", a["sku"], a["location"],
             f"{a['missing']} missing: counted {a['counted']}, expected "
             f"{a['before'] + a['received'] - a['expected_use']:.0f}", a["missing"],
             a["value"] or "", a["state"], a["counted_at"][:10]]
            for a in shrinkage_alerts(series, price, cfg, now - timedelta(days=ALERT_DAYS))]
    rows += [["unexplained rise", a["sku"], a["location"],
              f"counted {a['counted']}, {a['unexplained']} more than receipts explain",
              a["unexplained"], "", a["state"], a["counted_at"][:10]]
             for a in rises(series, cfg, now - timedelta(days=ALERT_DAYS))]
    rows += [["expiry", e["sku"], e["location"], f"expires {e['expires']}",
              e["likely_to_expire"], e["value_at_risk"] or "", "at risk", e["expires"]]
             for e in expiry_risk(series, price, now.date())]
    rows += [["slow mover", m["sku"], m["location"],
              f"{m['days_without_consumption']} days without consumption", m["on_hand"],
              m["value_tied_up"] or "", m["suggestion"], m["last_count"]]
             for m in slow_movers(series, price, now.date(), cfg)]
    return rows


def publish(sink: Any, store: Any, catalog: Any, cfg: Any) -> tuple[int, int]:
    """Replace both worksheets; returns (reorder rows, alert rows)."""
    reorder, alerts = reorder_rows(store, catalog), alert_rows(store, catalog, cfg)
    sink.replace_worksheet(REORDER, REORDER_HEADER, reorder)
    sink.replace_worksheet(ALERTS, ALERT_HEADER, alerts)
    return len(reorder), len(alerts)


class ReportWorker(PollingWorker):
    """Publishes after a change (at most once per poll) and every ``refresh_s`` anyway."""

    thread_name = "sheets-report"

    def __init__(self, sink: Any, store: Any, catalog: Callable[[], Any], cfg: Any, *,
                 refresh_s: float = REFRESH_S, **timing: Any) -> None:
        super().__init__(**{"poll_s": 60.0, **timing})
        self.sink, self.store, self.catalog, self.cfg = sink, store, catalog, cfg
        self.refresh_s = refresh_s
        self._dirty = threading.Event()
        self._dirty.set()
        self._last: Any = None

    def changed(self) -> None:
        """Counts or decisions changed: publish at the next poll."""
        self._dirty.set()

    def run_once(self) -> int:
        now = self.clock()
        stale = self._last is None or (now - self._last).total_seconds() >= self.refresh_s
        if not (self._dirty.is_set() or stale):
            return 0
        self._dirty.clear()
        try:
            publish(self.sink, self.store, self.catalog(), self.cfg)
        except Exception as exc:  # noqa: BLE001 - the sheet may be away: next poll
            self._dirty.set()
            log.warning("publishing the Reorder and Alerts worksheets failed: %s", exc)
            return 0
        self._last = now
        return 0
