"""Issue 16: reorder suggestions (store rules, manager REST) and approvals as Tryton purchase
requests, exactly once, also after Tryton was away."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests

from gateway.config import load_settings
from gateway.sinks.base import SinkError
from gateway.stock.purchasing import PurchaseWorker, build_purchaser
from gateway.store import Store, StoreError
from gateway.store.stock_repo import StockEvent
from tests.server_support import new_token, running_gateway

if TYPE_CHECKING:  # pytest plugins: imported by pytest, not here
    from tests.tryton_fixtures import TrytonDB, TrytonServer

pytest_plugins = ["tests.tryton_fixtures"]

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def _row(sku: str, qty: int, last: str = "2026-02-28", location: str = "A-01-1") -> dict:
    return {"SKU": sku, "Location": location, "On_Hand": 3, "Daily_Demand": 2.0,
            "Days_Until_Stockout": 1.5, "Reorder_Point": 20.0, "Suggested_Order_Qty": qty,
            "Method": "SES", "Last_Count": last, "Lead_Time_Days": 7.0}


def test_open_suggestions_follow_the_forecast(store: Store) -> None:
    store.refresh_suggestions([_row("SKU-1", 30), _row("SKU-2", 0)], NOW)
    (first,) = store.suggestions()
    assert (first.sku, first.quantity, first.state) == ("SKU-1", 30, "open")
    assert first.facts["Days_Until_Stockout"] == 1.5
    store.refresh_suggestions([_row("SKU-1", 34)], NOW + timedelta(hours=1))
    (again,) = store.suggestions()
    assert again.id == first.id and again.quantity == 34  # refreshed, not a second one
    store.refresh_suggestions([_row("SKU-1", 0)], NOW + timedelta(hours=2))
    assert store.suggestions() == []  # stock no longer needs it
    assert [s.state for s in store.suggestions(("expired",))] == ["expired"]


def test_decisions_are_idempotent_and_exclusive(store: Store) -> None:
    store.refresh_suggestions([_row("SKU-1", 30), _row("SKU-2", 12)], NOW)
    one, two = sorted(store.suggestions(), key=lambda s: s.sku)
    approved = store.decide_suggestion(one.id, "approve", "boss", NOW, quantity=36, note="ok")
    assert (approved.state, approved.quantity, approved.decided_by) == ("approved", 36, "boss")
    assert store.decide_suggestion(one.id, "approve", "boss", NOW).quantity == 36
    with pytest.raises(StoreError) as other_qty:
        store.decide_suggestion(one.id, "approve", "boss", NOW, quantity=40)
    assert other_qty.value.code == "conflict"
    with pytest.raises(StoreError) as dismiss_approved:
        store.decide_suggestion(one.id, "dismiss", "boss", NOW)
    assert dismiss_approved.value.code == "conflict"
    with pytest.raises(StoreError) as unknown:
        store.decide_suggestion("nope", "approve", "boss", NOW)
    assert unknown.value.code == "not_found"
    store.decide_suggestion(two.id, "dismiss", "boss", NOW)
    assert [s.id for s in store.erp_due(NOW, 10)] == [one.id]  # only approvals go out


def test_decisions_hold_until_stock_moves(store: Store) -> None:
    store.refresh_suggestions([_row("SKU-1", 30), _row("SKU-2", 12)], NOW)
    one, two = sorted(store.suggestions(), key=lambda s: s.sku)
    store.decide_suggestion(one.id, "approve", "boss", NOW)
    store.decide_suggestion(two.id, "dismiss", "boss", NOW)
    later = NOW + timedelta(days=1)
    # On order (no receipt yet) and dismissed (not counted since): nothing new.
    store.refresh_suggestions([_row("SKU-1", 30), _row("SKU-2", 12, "2026-03-01")], later)
    assert store.suggestions() == []
    # A receipt after the approval, a count after the dismissal: both may be suggested again.
    store.add_receipts([StockEvent("SKU-1", "A-01-1", 30, later, "test")])
    store.refresh_suggestions([_row("SKU-1", 30), _row("SKU-2", 12, "2026-03-02")],
                              later + timedelta(hours=1))
    assert sorted(s.sku for s in store.suggestions()) == ["SKU-1", "SKU-2"]


def _approved(store: Store, sku: str = "SKU-10001", qty: int = 24) -> str:
    store.refresh_suggestions([_row(sku, qty)], NOW)
    (s,) = [x for x in store.suggestions() if x.sku == sku]
    store.decide_suggestion(s.id, "approve", "boss", NOW)
    return s.id


def _requests(db: TrytonDB, sku: str) -> list[dict]:
    m = db.client().model
    (pid,) = m("product.product", "search", [("code", "=", sku)], 0, 1, None)
    return m("purchase.request", "search_read", [("product", "=", pid)], 0, None, None,
             ["quantity", "warehouse", "state", "origin"])


def _warehouse(db: TrytonDB) -> int:
    (wh,) = db.client().model("stock.location", "search", [("type", "=", "warehouse")], 0,
                              None, None)
    return int(wh)


def test_approval_becomes_one_purchase_request_after_tryton_was_away(
        store: Store, tmp_path: Path, tryton_db: TrytonDB, tryton_server: TrytonServer
) -> None:
    settings = load_settings(tryton_db.env(), data_dir=tmp_path)
    clock = [NOW]
    worker = PurchaseWorker(store, build_purchaser(settings), clock=lambda: clock[0])
    sid = _approved(store)
    tryton_server.stop()
    assert worker.run_once() == 0
    (due,) = store.erp_due(NOW + timedelta(hours=1), 10)
    assert due.erp["attempts"] == 1 and "unreachable" in due.erp["error"]
    assert store.erp_due(NOW, 10) == []  # backing off
    tryton_server.start(tryton_db.db)
    clock[0] = NOW + timedelta(minutes=5)
    assert worker.run_once() == 1
    done = store.suggestion(sid)
    assert done.erp["done_at"] is not None and "purchase request" in done.erp["reference"]
    (req,) = _requests(tryton_db, "SKU-10001")
    assert req["quantity"] == 24 and req["warehouse"] == _warehouse(tryton_db)
    assert req["state"] == "draft" and req["origin"].startswith("purchase.requisition.line,")
    # A retry that finds the requisition (the process died before recording it) adds none.
    assert "purchase request" in worker.purchaser.request(done, NOW.date())
    assert worker.run_once() == 0
    assert len(_requests(tryton_db, "SKU-10001")) == 1


def test_a_product_bought_in_cases_is_requested_in_whole_cases(
        store: Store, tmp_path: Path, tryton_db: TrytonDB) -> None:
    """The suggestion is in counted units (20); the product is bought by the case of 6: the
    request asks for 4 cases (24 units, never short), not 20 cases."""
    case = _case_of(tryton_db, 6)
    m = tryton_db.client().model
    (product,) = m("product.product", "search_read", [("code", "=", "SKU-10001")], 0, 1, None,
                   ["template"])
    m("product.template", "write", [product["template"]], {"purchase_uom": case})
    worker = PurchaseWorker(store, build_purchaser(load_settings(tryton_db.env(),
                                                                  data_dir=tmp_path)),
                            clock=lambda: NOW)
    _approved(store, qty=20)
    assert worker.run_once() == 1
    (req,) = m("purchase.request", "search_read", [("product", "=", product["id"])], 0, None,
               None, ["quantity", "unit"])
    assert (req["quantity"], req["unit"]) == (4, case)


def test_approval_tryton_cannot_take_waits_for_a_person(store: Store, tmp_path: Path,
                                                        tryton_db: TrytonDB) -> None:
    settings = load_settings(tryton_db.env(), data_dir=tmp_path)
    worker = PurchaseWorker(store, build_purchaser(settings), clock=lambda: NOW)
    _approved(store, sku="SKU-UNKNOWN")
    assert worker.run_once() == 0
    (due,) = store.erp_due(NOW + timedelta(seconds=worker.max_delay_s + 1), 10)
    assert "no product with code SKU-UNKNOWN" in due.erp["error"]
    assert store.erp_due(NOW + timedelta(seconds=60), 10) == []  # the longest delay


def _history(data_dir: Path, sku: str, location: str) -> None:
    store = Store(data_dir / "shelfcount.db")
    start = datetime.now(UTC) - timedelta(days=40)
    try:
        store.add_history([StockEvent(sku, location, 200 - 5 * d, start + timedelta(days=d),
                                      "test") for d in range(0, 40, 4)])
    finally:
        store.close()


@pytest.mark.triton
def test_managers_approve_in_the_app_and_tryton_gets_the_request(
        triton, tmp_path: Path, tryton_db: TrytonDB) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _history(data, "SKU-10001", "A-01-1")
    with running_gateway(data, triton.url, env=tryton_db.env()) as gw:
        manager = new_token(data, f"manager-{uuid.uuid4().hex[:6]}", "manager")
        walker = new_token(data, f"walker-{uuid.uuid4().hex[:6]}")
        url = f"{gw.base_url}/api/v1/reorder-suggestions"

        def call(method: str, path: str = "", token: str = manager, **kw: object):
            return requests.request(method, url + path, timeout=30,
                                    headers={"Authorization": f"Bearer {token}"}, **kw)

        assert call("GET", token=walker).status_code == 403
        assert call("GET", params={"state": "later"}).status_code == 400
        for limit in ("²", "0", "1001", "9" * 50, "-1"):  # refused before any work
            assert call("GET", params={"limit": limit}).status_code == 400, limit
        listed = call("GET")
        assert listed.status_code == 200, listed.text
        (s,) = [x for x in listed.json()["suggestions"] if x["sku"] == "SKU-10001"]
        assert s["state"] == "open" and s["quantity"] > 0 and s["erp"]["state"] is None
        assert s["facts"]["On_Hand"] == 20 and s["order_value"] is not None
        assert call("POST", f"/{s['id']}/approve", token=walker).status_code == 403
        assert call("POST", "/nope/approve").status_code == 404
        bad = call("POST", f"/{s['id']}/approve", json={"quantity": -3})
        assert bad.status_code == 400 and "quantity" in bad.json()["message"]
        assert call("POST", f"/{s['id']}/approve", data=b"{oops").status_code == 400
        ok = call("POST", f"/{s['id']}/approve", json={"quantity": 60, "note": "promo week"})
        assert ok.status_code == 200 and ok.json()["state"] == "approved"
        assert ok.json()["quantity"] == 60 and ok.json()["decided_by"]
        assert call("POST", f"/{s['id']}/approve").status_code == 200  # again: the same
        assert call("POST", f"/{s['id']}/dismiss").status_code == 409
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            (mine,) = [x for x in call("GET", params={"state": "approved"}).json()
                       ["suggestions"] if x["id"] == s["id"]]
            if mine["erp"]["state"] == "sent":
                break
            time.sleep(0.3)
        assert mine["erp"]["state"] == "sent", mine
        (req,) = _requests(tryton_db, "SKU-10001")
        assert req["quantity"] == 60 and req["warehouse"] == _warehouse(tryton_db)
        # On order: the next look at the list does not suggest it again.
        assert all(x["sku"] != "SKU-10001" for x in call("GET").json()["suggestions"])


def _ids(m, *codes: str) -> list[int]:
    out = []
    for code in codes:
        field = "code" if "-" in code else "type"
        (found,) = m("stock.location", "search", [(field, "=", code)], 0, 1, None)
        out.append(found)
    return out


def _confirming(client, model: str, button: str, ids: list[int]) -> None:
    """Press a Tryton button, saying yes to the warning it may ask first (as a person would)."""
    try:
        client.model(model, button, ids)
    except SinkError as exc:
        if "UserWarning: " not in str(exc):
            raise
        name = str(exc).split("UserWarning: ", 1)[1]
        client.model("res.user.warning", "create", [{"user": client.uid, "name": name,
                                                     "always": False}])
        client.model(model, button, ids)


def _case_of(db: TrytonDB, units: int) -> int:
    """A unit of measure "case of N" in Tryton's unit category (how suppliers often sell)."""
    m = db.client().model
    (unit,) = m("product.uom", "search_read", [("symbol", "=", "u")], 0, 1, None, ["category"])
    (case,) = m("product.uom", "create", [{
        "name": f"Case of {units}", "symbol": f"c{units}", "category": unit["category"],
        "factor": float(units), "rate": round(1 / units, 12), "rounding": 1.0, "digits": 0}])
    return case


def _done_move(db: TrytonDB, sku: str, src: str, dst: str, qty: float,
               unit: int | None = None) -> int:
    """A done stock move in Tryton (its id): into a bin as a plain move, out of one through an
    internal shipment (Tryton wants stock leaving a bin assigned first; the test user forces
    it). ``unit``: the move's unit of measure, else the product's own."""
    client = db.client()
    m = client.model
    (product,) = m("product.product", "search_read", [("code", "=", sku)], 0, 1, None,
                   ["default_uom"])
    src_id, dst_id = _ids(m, src, dst)
    line = {"from_location": src_id, "to_location": dst_id, "product": product["id"],
            "quantity": qty, "unit": unit or product["default_uom"]}
    if "-" not in src:
        (move,) = m("stock.move", "create", [{
            **line, "unit_price": {"__class__": "Decimal", "decimal": "1"},
            "currency": client.context.get("currency") or 1}])
        _confirming(client, "stock.move", "do", [move])
        return move
    (group,) = m("res.group", "search", [("name", "=", "Stock Force Assignment")], 0, 1, None)
    m("res.user", "write", [client.uid], {"groups": [["add", [group]]]})
    client.login()
    (shipment,) = m("stock.shipment.internal", "create", [{
        "from_location": src_id, "to_location": dst_id, "moves": [["create", [line]]]}])
    for button in ("wait", "assign_force", "do"):
        _confirming(client, "stock.shipment.internal", button, [shipment])
    (done,) = m("stock.shipment.internal", "read", [shipment], ["moves"])
    return done["moves"][0]


def test_tryton_moves_become_receipts_and_shipments(tmp_path: Path, tryton_db: TrytonDB,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from gateway.cli import main as cli_main

    data = tmp_path / "data"
    assert cli_main(["moves", "sync", "--data-dir", str(data)]) == 2
    assert "Tryton is not configured" in capsys.readouterr().err
    # Two cases of 6 from the supplier: 12 units, as the walkers count them.
    received = _done_move(tryton_db, "SKU-10001", "supplier", "A-01-1", 2, _case_of(tryton_db, 6))
    _done_move(tryton_db, "SKU-10002", "A-01-2", "A-02-1", 3)  # from one bin to another
    for key, value in tryton_db.env().items():
        monkeypatch.setenv(key, value)
    assert cli_main(["moves", "sync", "--data-dir", str(data)]) == 0
    # The seeded stock came from lost-and-found (an inventory): neither a receipt nor a sale.
    assert capsys.readouterr().out.strip() == "from Tryton: 2 receipts, 1 shipments added"
    assert cli_main(["moves", "sync", "--data-dir", str(data)]) == 0
    assert capsys.readouterr().out.strip() == "from Tryton: 0 receipts, 0 shipments added"
    # Tryton writes a done move again (a recomputed cost price): a new write time, the same
    # receipt.
    time.sleep(1.1)
    tryton_db.touch_record("stock_move", received)
    assert cli_main(["moves", "sync", "--data-dir", str(data)]) == 0
    assert capsys.readouterr().out.strip() == "from Tryton: 0 receipts, 0 shipments added"
    store = Store(data / "shelfcount.db")
    try:
        assert sorted((e.sku, e.location, e.quantity) for e in store.receipts()) == [
            ("SKU-10001", "A-01-1", 12), ("SKU-10002", "A-02-1", 3)]
        assert sorted((e.sku, e.location, e.quantity) for e in store.shipments()) == [
            ("SKU-10002", "A-01-2", 3)]
    finally:
        store.close()
    monkeypatch.setenv("SHELFCOUNT_TRYTON_URL", "http://127.0.0.1:9")  # nobody listens
    assert cli_main(["moves", "sync", "--data-dir", str(data)]) == 3
    assert "unreachable" in capsys.readouterr().err


def test_order_points_follow_the_forecast(tmp_path: Path, tryton_db: TrytonDB,
                                          monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """SHELFCOUNT_TRYTON_ORDER_POINTS=1: one purchase order point per product and warehouse,
    minimum = the forecast's reorder point, rewritten (not added) by the next sync."""
    from gateway.catalog import load_catalog
    from gateway.cli import main as cli_main
    from gateway.stock.forecast import forecast_table

    data = tmp_path / "data"
    data.mkdir()
    _history(data, "SKU-10001", "A-01-1")
    for key, value in {**tryton_db.env(), "SHELFCOUNT_TRYTON_ORDER_POINTS": "1"}.items():
        monkeypatch.setenv(key, value)
    for _ in range(2):
        assert cli_main(["moves", "sync", "--data-dir", str(data)]) == 0
        assert "to Tryton: 1 purchase order points written" in capsys.readouterr().out
    store = Store(data / "shelfcount.db")
    try:
        (row,) = forecast_table(store, load_catalog(data), 28)
    finally:
        store.close()
    m = tryton_db.client().model
    (pid,) = m("product.product", "search", [("code", "=", "SKU-10001")], 0, 1, None)
    (point,) = m("stock.order_point", "search_read", [("product", "=", pid)], 0, None, None,
                 ["location", "type", "min_quantity", "target_quantity"])
    assert point["type"] == "purchase" and point["location"] == _warehouse(tryton_db)
    assert point["min_quantity"] == pytest.approx(row["Reorder_Point"], abs=0.01)
    assert point["target_quantity"] > point["min_quantity"]


@pytest.mark.triton
def test_the_review_shows_variance_against_tryton(triton, tmp_path: Path, tryton_db: TrytonDB,
                                                  tryton_server: TrytonServer) -> None:
    """Issue 12: the review queue flags lines whose count differs from Tryton's on-hand
    quantity beyond the thresholds; with Tryton away the day is still shown, without it."""
    from gateway.training.scenes import encode_jpeg, render_scene
    from tests.server_support import WsClient, outcome

    data = tmp_path / "data"
    with running_gateway(data, triton.url, env=tryton_db.env()) as gw:
        walker = new_token(data, f"walker-{uuid.uuid4().hex[:6]}")
        manager = new_token(data, f"manager-{uuid.uuid4().hex[:6]}", "manager")
        phone = WsClient(gw)
        try:
            phone.hello(walker)
            pid = str(uuid.uuid4())
            phone.photo(pid, encode_jpeg(render_scene(37, location="A-01-1", difficulty=0.2)),
                        location="A-01-1")
            phone.wait_for(outcome(pid))
            nowhere = str(uuid.uuid4())
            phone.photo(nowhere, encode_jpeg(render_scene(38, with_bin_label=False,
                                                          difficulty=0.2)))
            phone.wait_for(outcome(nowhere))
        finally:
            phone.close()

        def review() -> dict:
            answer = requests.get(f"{gw.base_url}/api/v1/review", timeout=60,
                                  headers={"Authorization": f"Bearer {manager}"})
            assert answer.status_code == 200, answer.text
            return answer.json()

        day = review()
        # The bay without a location gets no ERP figures; the others still do.
        assert day["erp"]["state"] == "ok", day["erp"]
        (lost,) = [q for q in day["queue"] if q["photo_id"] == nowhere]
        assert lost["location"] == "" and all(r["System_Quantity"] == "" for r in lost["rows"])
        (item,) = [q for q in day["queue"] if q["photo_id"] == pid]
        known = [r for r in item["rows"] if r["SKU"] in {f"SKU-{10001 + i}" for i in range(52)}]
        assert known, item["rows"]
        for row in known:  # Tryton holds 40 of the bin's own SKU, none of the others
            expected = 40 if row["SKU"] == "SKU-10001" else 0
            assert float(row["System_Quantity"]) == expected
            assert float(row["Variance"]) == float(row["Quantity_Counted"]) - expected
        assert any("variance" in r for r in item["reasons"])
        tryton_server.stop()
        try:
            away = review()
        finally:
            tryton_server.start(tryton_db.db)
        assert away["erp"]["state"] == "unavailable" and "unreachable" in away["erp"]["error"]
        (item,) = [q for q in away["queue"] if q["photo_id"] == pid]
        assert all(r["System_Quantity"] == "" for r in item["rows"])


def test_one_open_suggestion_per_bin_when_two_refresh_at_once(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second of two simultaneous refreshes saw no open suggestion and inserts one: the
    unique index refuses it and the refresh runs again, updating the one that is there."""
    store.refresh_suggestions([_row("SKU-1", 30)], NOW)
    real = Store._latest_per_key
    calls = []

    def stale_once(conn):  # what a refresh that started before the first commit saw
        calls.append(1)
        return {} if len(calls) == 1 else real(conn)

    monkeypatch.setattr(Store, "_latest_per_key", staticmethod(stale_once))
    store.refresh_suggestions([_row("SKU-1", 33)], NOW + timedelta(minutes=1))
    assert len(calls) == 2
    (only,) = store.suggestions()
    assert only.quantity == 33


def test_a_refresh_that_saw_a_suggestion_open_leaves_a_decision_alone(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A refresh read the list before a manager approved one (quantity 40) and dismissed
    another: it neither rewrites the approved quantity nor expires the decided one."""
    store.refresh_suggestions([_row("SKU-1", 30), _row("SKU-2", 12)], NOW)
    one, two = sorted(store.suggestions(), key=lambda s: s.sku)
    with store.db.tx() as conn:
        seen = Store._latest_per_key(conn)
    store.decide_suggestion(one.id, "approve", "boss", NOW, quantity=40)
    store.decide_suggestion(two.id, "dismiss", "boss", NOW)
    monkeypatch.setattr(Store, "_latest_per_key", staticmethod(lambda conn: seen))
    store.refresh_suggestions([_row("SKU-1", 31)], NOW + timedelta(minutes=1))
    assert (store.suggestion(one.id).state, store.suggestion(one.id).quantity) == ("approved", 40)
    assert store.suggestion(two.id).state == "dismissed"


def test_two_managers_deciding_at_once_cannot_both_win(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second manager's request read the suggestion while it was open; the first one's
    dismissal committed in between: the approval is a conflict, not an overwrite."""
    store.refresh_suggestions([_row("SKU-1", 30)], NOW)
    (one,) = store.suggestions()
    store.decide_suggestion(one.id, "dismiss", "first", NOW)
    real = Store._get
    calls = []

    def stale_once(conn, suggestion_id):  # what the second request saw before the commit
        calls.append(1)
        return one if len(calls) == 1 else real(conn, suggestion_id)

    monkeypatch.setattr(Store, "_get", staticmethod(stale_once))
    with pytest.raises(StoreError) as lost:
        store.decide_suggestion(one.id, "approve", "second", NOW)
    assert lost.value.code == "conflict" and "dismissed" in str(lost.value)
    assert store.suggestion(one.id).decided_by == "first"


def test_the_list_shows_open_ones_most_urgent_first_then_the_latest_decisions(
        store: Store) -> None:
    from gateway.server.stock_api import _listing_order

    rows = [{**_row(f"SKU-{i}", 10), "Days_Until_Stockout": float(9 - i)} for i in range(6)]
    store.refresh_suggestions(rows, NOW)
    by_sku = {s.sku: s for s in store.suggestions()}
    for minutes, sku in enumerate(["SKU-0", "SKU-5", "SKU-2"]):  # decided in this order
        store.decide_suggestion(by_sku[sku].id, "approve", "boss",
                                NOW + timedelta(minutes=minutes))
    listed = sorted(store.suggestions(("open", "approved")), key=_listing_order)
    assert [s.sku for s in listed] == ["SKU-4", "SKU-3", "SKU-1", "SKU-2", "SKU-5", "SKU-0"]


def test_decided_suggestions_are_listed_latest_first_up_to_a_limit(store: Store) -> None:
    store.refresh_suggestions([_row(f"SKU-{i}", 10) for i in range(5)], NOW)
    for i, s in enumerate(sorted(store.suggestions(), key=lambda s: s.sku)):
        store.decide_suggestion(s.id, "approve" if i % 2 else "dismiss", "boss",
                                NOW + timedelta(hours=i))
    store.refresh_suggestions([_row("SKU-9", 10)], NOW + timedelta(days=1))  # open, newest
    kept = store.suggestions(("open", "approved", "dismissed"), decided_limit=2)
    # The two latest decisions and the open one, oldest first.
    assert sorted(s.sku for s in kept) == ["SKU-3", "SKU-4", "SKU-9"] and kept[-1].sku == "SKU-9"
    assert len(store.suggestions(("approved", "dismissed"))) == 5


@pytest.mark.triton
def test_a_confirmed_two_photo_bay_shows_the_variance_it_was_booked_with(
        triton, tmp_path: Path, tryton_db: TrytonDB) -> None:
    """A wide bay shot in two parts, confirmed from its first photo: Tryton books it under that
    photo's count id, and the review's ERP figure is the quantity before the booking (40),
    not the on-hand after it (which would show no variance at all)."""
    from gateway.training.scenes import encode_jpeg, render_scene
    from tests.server_support import WsClient, outcome

    data = tmp_path / "data"
    picture = encode_jpeg(render_scene(41, location="A-01-2", skus=["SKU-10002"],
                                       difficulty=0.2))
    with running_gateway(data, triton.url, env=tryton_db.env()) as gw:
        walker = new_token(data, f"walker-{uuid.uuid4().hex[:6]}")
        manager = new_token(data, f"manager-{uuid.uuid4().hex[:6]}", "manager")
        phone = WsClient(gw)
        try:
            phone.hello(walker)
            left, right = str(uuid.uuid4()), str(uuid.uuid4())
            phone.photo(left, picture, location="A-01-2")
            first = phone.wait_for(outcome(left))
            phone.photo(right, picture, location="A-01-2", part_of=first["bay"])
            second = phone.wait_for(outcome(right))
            phone.send({"type": "confirm", "id": left})
            phone.wait_for(lambda m: m["type"] == "confirmed" and m["id"] == left)
        finally:
            phone.close()
        counted = sum(int(r["Quantity_Counted"]) for r in second["bay_rows"]
                      if r["SKU"] == "SKU-10002")
        assert counted not in (0, 40), second["bay_rows"]
        deadline = time.monotonic() + 60
        while tryton_db.on_hand("A-01-2", "SKU-10002") != counted:
            assert time.monotonic() < deadline, "Tryton did not get the count"
            time.sleep(0.5)
        day = requests.get(f"{gw.base_url}/api/v1/review", timeout=60,
                           headers={"Authorization": f"Bearer {manager}"}).json()
    (item,) = [q for q in day["queue"] if q["bay"] == first["bay"]]
    assert item["confirmed"] and day["erp"]["state"] == "ok"
    (line,) = [r for r in item["rows"] if r["SKU"] == "SKU-10002"]
    assert float(line["System_Quantity"]) == 40
    assert float(line["Variance"]) == counted - 40


def test_order_points_for_many_skus_take_a_few_calls(tryton_db: TrytonDB,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """40 bins' reorder points: a handful of Tryton calls, not a walk up the location tree and
    a search per SKU; a second run with the same figures writes nothing."""
    from gateway.sinks.tryton_order_points import TrytonOrderPoints
    from tests.tryton_fixtures import LOCATIONS, SKUS

    client = tryton_db.client()
    calls: list[tuple[str, str]] = []
    real = client.model

    def counted(model: str, method: str, *args, **kw):
        calls.append((model, method))
        return real(model, method, *args, **kw)

    monkeypatch.setattr(client, "model", counted)
    rows = [{"SKU": SKUS[i], "Location": LOCATIONS[i], "Reorder_Point": 10.0 + i,
             "Daily_Demand": 1.0, "Suggested_Order_Qty": 20} for i in range(40)]
    rows.append({**rows[0], "Location": "Z-99-9"})  # a bin Tryton does not know: left out
    points = TrytonOrderPoints(client)
    assert points.write(rows) == 40
    assert len(calls) <= 4, calls
    calls.clear()
    assert points.write(rows) == 40
    assert [c for c in calls if c[1] in ("write", "create")] == [] and len(calls) <= 3
    rows[5]["Reorder_Point"] = 99.0
    calls.clear()
    assert points.write(rows) == 40
    assert [c for c in calls if c[1] in ("write", "create")] == [("stock.order_point", "write")]
    (pid,) = real("product.product", "search", [("code", "=", SKUS[5])], 0, 1, None)
    (point,) = real("stock.order_point", "search_read", [("product", "=", pid)], 0, None, None,
                    ["min_quantity"])
    assert point["min_quantity"] == 99.0
