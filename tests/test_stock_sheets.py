"""Issue 16: the "Reorder" and "Alerts" worksheets are replaced with what the counts say now
(gspread against the loopback Sheets API)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from gateway.catalog import import_catalog, load_catalog
from gateway.config import load_settings
from gateway.sinks.base import SinkError
from gateway.sinks.registry import build_sinks
from gateway.stock.insights import InsightSettings
from gateway.stock.sheets_report import ALERT_HEADER, REORDER_HEADER, ReportWorker, publish
from gateway.store import Store
from gateway.store.stock_repo import StockEvent
from tests.server_support import DEMO_CATALOG, running_gateway

if TYPE_CHECKING:  # pytest plugins: imported by pytest, not here
    from tests.fakes.sheets_server import SheetsEnv

pytest_plugins = ["tests.fakes.sheets_server"]


def _falling(sku: str, location: str, start: int, per_day: int, days: int,
             now: datetime) -> list[StockEvent]:
    first = now - timedelta(days=days)
    return [StockEvent(sku, location, start - per_day * d, first + timedelta(days=d), "t")
            for d in range(0, days + 1, 3)]


def test_reorder_and_alerts_worksheets_are_replaced(tmp_path: Path, sheets: SheetsEnv) -> None:
    data = tmp_path / "data"
    data.mkdir()
    import_catalog(DEMO_CATALOG, data)
    settings = load_settings(sheets.env(), data_dir=data)
    (sink,) = build_sinks(settings, lambda _session: [])
    store = Store(data / "shelfcount.db")
    now = datetime.now(UTC)
    try:
        # SKU-10001 runs low (a reorder), SKU-10002 has not moved for 90 days (a slow mover).
        store.add_history(_falling("SKU-10001", "A-01-1", 200, 5, 36, now)
                          + _falling("SKU-10002", "A-01-2", 80, 0, 90, now))
        catalog = load_catalog(data)
        assert publish(sink, store, catalog, InsightSettings()) == (1, 1)
        reorder = sheets.fake.rows(sheets.key, "Reorder")
        assert reorder[0] == list(REORDER_HEADER)
        (row,) = reorder[1:]
        assert row[0] == "SKU-10001" and int(row[3]) > 0 and row[10] == "open"
        alerts = sheets.fake.rows(sheets.key, "Alerts")
        assert alerts[0] == list(ALERT_HEADER)
        assert [r[:3] for r in alerts[1:]] == [["slow mover", "SKU-10002", "A-01-2"]]
        # Restocked: the next publish leaves no reorder line (replaced, not appended).
        store.add_history([StockEvent("SKU-10001", "A-01-1", 400, now + timedelta(hours=1),
                                      "t")])
        store.add_receipts([StockEvent("SKU-10001", "A-01-1", 380, now + timedelta(minutes=30),
                                       "t")])
        worker = ReportWorker(sink, store, lambda: catalog, InsightSettings(),
                              clock=lambda: now + timedelta(hours=2))
        worker.run_once()
        assert [r for r in sheets.fake.rows(sheets.key, "Reorder") if any(r)] == [
            list(REORDER_HEADER)]
        writes = sheets.fake.count("PUT", "Reorder")
        worker.run_once()  # nothing changed and not stale yet: no request
        assert sheets.fake.count("PUT", "Reorder") == writes
        # Whichever of its two requests fails (quota), the sheet is never left empty: the
        # last report stays whole, or the new one is written with old lines below it.
        before = sheets.fake.rows(sheets.key, "Alerts")
        assert len(before) == 2
        for after in (0, 1):
            sink._worksheet("Alerts")  # known: the two requests are the write and the clear
            sheets.fake.inject(503, after=after)
            with pytest.raises(SinkError):
                sink.replace_worksheet("Alerts", ALERT_HEADER, [])
            assert sheets.fake.rows(sheets.key, "Alerts")[:2] == before
        sink.replace_worksheet("Alerts", ALERT_HEADER, [])
        assert [r for r in sheets.fake.rows(sheets.key, "Alerts") if any(r)] == [
            list(ALERT_HEADER)]
    finally:
        store.close()


@pytest.mark.triton
def test_the_gateway_keeps_the_worksheets_current(triton, tmp_path: Path,
                                                  sheets: SheetsEnv) -> None:
    data = tmp_path / "data"
    data.mkdir()
    store = Store(data / "shelfcount.db")
    try:
        store.add_history(_falling("SKU-10001", "A-01-1", 200, 5, 36, datetime.now(UTC)))
    finally:
        store.close()
    with running_gateway(data, triton.url, env=sheets.env()) as gw:
        assert gw.report is not None
        deadline = time.monotonic() + 30
        # one report writes Reorder, then Alerts: wait for both
        while time.monotonic() < deadline and (
                len(sheets.fake.rows(sheets.key, "Reorder")) < 2
                or not sheets.fake.rows(sheets.key, "Alerts")):
            time.sleep(0.2)
        reorder = sheets.fake.rows(sheets.key, "Reorder")
        assert reorder[0] == list(REORDER_HEADER) and reorder[1][0] == "SKU-10001"
        assert sheets.fake.rows(sheets.key, "Alerts")[0] == list(ALERT_HEADER)
