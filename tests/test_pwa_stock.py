"""Issue 16, manager dashboard: reorder suggestions approved in the app (with another
quantity), dismissed, stock alerts, and a bin's chart of counts, forecast and reorder point;
on a phone and on a desk (Debian chromium, real gateway, real embedded Triton)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.store.stock_repo import StockEvent
from tests import test_pwa_e2e
from tests.pwa_support import browser_context, chromium_available, page_errors, shot
from tests.test_pwa_a11y import audit
from tests.test_pwa_e2e import pair

pytestmark = [
    pytest.mark.triton,
    pytest.mark.slow,
    pytest.mark.skipif(not chromium_available(), reason="needs /usr/bin/chromium (make system)"),
]
sync_api = pytest.importorskip("playwright.sync_api")
playwright = test_pwa_e2e.playwright
scene_camera = test_pwa_e2e.scene_camera
gateway = test_pwa_e2e.gateway


def _seed(store: Any) -> None:
    """SKU-10001 runs low at A-01-1 (an order), SKU-10002 loses 40 units at A-01-2 on its last
    count (a shrinkage alert), SKU-10003 has not moved for 90 days (a slow mover)."""
    now = datetime.now(UTC)
    first = now - timedelta(days=36)
    events = [StockEvent("SKU-10001", "A-01-1", 200 - 5 * d, first + timedelta(days=d), "t")
              for d in range(0, 37, 3)]
    events += [StockEvent("SKU-10002", "A-01-2", 300 - 4 * d - (40 if d == 36 else 0),
                          first + timedelta(days=d), "t") for d in range(0, 37, 3)]
    events += [StockEvent("SKU-10003", "B-01-1", 60, now - timedelta(days=d), "t")
               for d in (90, 45, 1)]
    store.add_history(events)
    store.add_shipments([StockEvent("SKU-10002", "A-01-2", 4, first + timedelta(days=d, hours=2),
                                    "t") for d in range(36)])


def test_the_manager_orders_and_sees_alerts_and_a_chart(playwright: Any, scene_camera: Any,
                                                        gateway: Any) -> None:
    from gateway.server.serve import device_add

    y4m, _ = scene_camera
    server, _walker = gateway
    store = server.services.store
    _seed(store)
    manager = device_add(server.settings, "manager-stock", "manager")
    for viewport in ({"width": 412, "height": 915}, {"width": 1366, "height": 900}):
        with browser_context(playwright, y4m, viewport=viewport) as ctx:
            page = ctx.new_page()
            errors = page_errors(page)
            pair(page, server.base_url + "/", manager)
            page.click("#loc-form button[value=cancel]")
            page.click("#stock-btn")
            page.wait_for_selector("#stock-orders [data-suggestion] button[data-act=approve]")
            page.wait_for_selector("#stock-chart svg polyline.counted")
            assert "SKU-10002 at A-01-2: 40 missing" in page.text_content("#stock-alerts")
            assert "SKU-10003 at B-01-1" in page.text_content("#stock-alerts")
            points = page.get_attribute("#stock-chart svg polyline.counted", "points")
            assert len(points.split()) == 13  # one per count of SKU-10001
            assert page.locator("#stock-chart svg line.rop").count() == 1
            shot(page, f"stock-{viewport['width']}")
            assert audit(page, f"stock-{viewport['width']}") == []
            assert errors == []
    (open_one,) = [s for s in store.suggestions() if s.sku == "SKU-10001"]
    with browser_context(playwright, y4m, viewport={"width": 1366, "height": 900}) as ctx:
        page = ctx.new_page()
        pair(page, server.base_url + "/", manager)
        page.click("#loc-form button[value=cancel]")
        page.click("#stock-btn")
        item = page.locator(f"#stock-orders [data-suggestion='{open_one.id}']")
        item.locator("input").fill("75")
        item.locator("button[data-act=approve]").click()
        page.wait_for_selector(f"#stock-orders [data-suggestion='{open_one.id}'].done")
        assert "75 ordered" in page.text_content(f"[data-suggestion='{open_one.id}']")
        assert "no ERP set up" in page.text_content(f"[data-suggestion='{open_one.id}']")
        shot(page, "stock-ordered-1366")
    decided = store.suggestion(open_one.id)
    assert (decided.state, decided.quantity, decided.decided_by) == (
        "approved", 75, "manager-stock")
    # The walker's location picker lists the bins to count today, the recount first.
    with browser_context(playwright, y4m) as ctx:
        page = ctx.new_page()
        errors = page_errors(page)
        pair(page, server.base_url + "/", _walker)
        page.wait_for_selector("#task-list button[data-task='A-01-2'].recount")
        assert page.locator("#task-list button").first.get_attribute("data-task") == "A-01-2"
        shot(page, "stock-walker-tasks")
        page.click("#task-list button[data-task='A-01-2']")
        page.wait_for_function("document.getElementById('loc-value').textContent === 'A-01-2'")
        page.click("#session-btn")  # the session's "bays left" follow today's list
        page.wait_for_function("document.getElementById('bays-left').textContent"
                               ".includes(\"1 bays left on today's count list: A-01-2\")")
        assert errors == []
