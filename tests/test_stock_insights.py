"""Issue 16: slow movers, expiry at risk, shrinkage alerts settled by a recount, ABC classes
and the bins to count today; shipments import; the managers' REST."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from gateway.cli import main as cli_main
from gateway.stock.demand import demand_series
from gateway.stock.insights import (
    InsightSettings,
    abc_classes,
    count_tasks,
    expiry_risk,
    rises,
    shrinkage_alerts,
    slow_movers,
)
from gateway.store import Store
from gateway.store.stock_repo import StockEvent
from tests.server_support import new_token, running_gateway

from .test_stock_forecast import DAY0, event, write

CFG = InsightSettings()
PRICES = {"A": Decimal("2.50"), "B": Decimal("1.00"), "C": Decimal("0.10")}


def price(sku: str) -> Decimal | None:
    return PRICES.get(sku)


def steady(sku: str, start: int, per_day: int, days: range, location: str = "A-01-1",
           theft: tuple[int, int] | None = None) -> tuple[list, list]:
    """Counts of a bin using ``per_day`` a day, and its shipments; ``theft`` = (day, units)
    missing from that day on."""
    counts, shipped = [], []
    for d in days:
        lost = theft[1] if theft and d >= theft[0] else 0
        counts.append(event(sku, start - per_day * d - lost, d, location))
    for d in range(days[-1]):
        shipped.append(StockEvent(sku, location, per_day, DAY0 + timedelta(days=d, hours=6),
                                  "test"))
    return counts, shipped


def test_slow_movers_and_expiry_at_risk() -> None:
    idle = [event("A", 50, d) for d in (0, 30, 75)]  # nothing used for 75 days
    moving = [event("B", 300 - 4 * d, d, "B-01-1") for d in (0, 30, 75)]
    series = demand_series(idle + moving, [])
    today = (DAY0 + timedelta(days=76)).date()
    (slow,) = slow_movers(series, price, today, CFG)
    assert (slow["sku"], slow["value_tied_up"], slow["suggestion"]) == ("A", "125.00", "clear")
    assert slow["days_without_consumption"] >= 75 and slow["weeks_of_cover"] is None
    # C uses 2 a day and holds 100 (50 days of cover), but they expire in 10 days.
    fresh = [StockEvent("C", "C-01-1", 120, DAY0, "t"),
             StockEvent("C", "C-01-1", 100, DAY0 + timedelta(days=10), "t", "2026-01-22")]
    (risk,) = expiry_risk(demand_series(fresh, []), price, (DAY0 + timedelta(days=11)).date())
    # 100 on hand, 2 a day, 10 days to expiry: about 80 will expire.
    assert risk["days_to_expiry"] == 10 and risk["likely_to_expire"] == 80
    assert risk["value_at_risk"] == "8.00"
    assert slow_movers(demand_series(moving, []), price, today, CFG) == []


def test_shrinkage_with_shipments_known_is_settled_by_the_recount() -> None:
    # Bin A loses 40 units on day 20 (counted on day 20); the recount on day 22 still finds
    # them missing. Bin B's count on day 20 misses 40 that the recount finds again.
    a_counts, a_ship = steady("A", 400, 5, range(0, 23, 2), theft=(20, 40))
    b_counts, b_ship = steady("B", 400, 5, range(0, 23, 2), "B-01-1")
    b_counts[10] = event("B", b_counts[10].quantity - 40, 20, "B-01-1")  # a miscount
    c_counts, c_ship = steady("C", 400, 5, range(0, 21, 2), "C-01-1", theft=(20, 30))
    series = demand_series(a_counts + b_counts + c_counts, [], a_ship + b_ship + c_ship)
    alerts = {a["sku"]: a for a in shrinkage_alerts(series, price, CFG)}
    assert set(alerts) == {"A", "B", "C"}
    assert (alerts["A"]["state"], alerts["A"]["missing"], alerts["A"]["value"]) == (
        "shrinkage", 40, "100.00")
    assert alerts["B"]["state"] == "miscount"
    assert alerts["C"]["state"] == "recount"  # the latest count: a walker should look again
    today = (DAY0 + timedelta(days=21)).date()
    (task,) = [t for t in count_tasks(series, price, today, CFG) if t["recount"]]
    assert (task["sku"], task["location"]) == ("C", "C-01-1")
    # Without any shrinkage, nothing is raised.
    quiet, ship = steady("A", 400, 5, range(0, 40, 3))
    assert shrinkage_alerts(demand_series(quiet, [], ship), price, CFG) == []


def test_shrinkage_from_counts_only() -> None:
    days = range(0, 60, 3)
    counts, _ = steady("A", 600, 6, days, theft=(45, 80))
    (alert,) = shrinkage_alerts(demand_series(counts, []), price, CFG)
    assert alert["counted_at"].startswith("2026-02-15") and 70 <= alert["missing"] <= 90
    quiet, _ = steady("A", 600, 6, days)
    assert shrinkage_alerts(demand_series(quiet, []), price, CFG) == []


def test_abc_classes_and_cycle_counts_due() -> None:
    history = ([event("A", 1000 - 20 * d, d, "A-01-1") for d in (0, 10, 20)]
               + [event("B", 500 - 5 * d, d, "B-01-1") for d in (0, 10, 20)]
               + [event("C", 100 - 1 * d, d, "C-01-1") for d in (0, 10, 20)])
    series = demand_series(history, [])
    classes = abc_classes(series, price, CFG)
    # Annual values 18250, 1825, 36.5: A holds 90 %, so B is class B and C class C.
    assert classes == {("A", "A-01-1"): "A", ("B", "B-01-1"): "B", ("C", "C-01-1"): "C"}
    today = (DAY0 + timedelta(days=20 + 31)).date()  # A is due (monthly), B and C are not
    assert [t["sku"] for t in count_tasks(series, price, today, CFG)] == ["A"]
    later = (DAY0 + timedelta(days=20 + 92)).date()
    assert [t["location"] for t in count_tasks(series, price, later, CFG)] == [
        "A-01-1", "B-01-1"]


def test_shipments_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    rows = [["SKU-1", "A-01-1", 4, "2026-01-02"], ["SKU-1", "A-01-1", -1, "2026-01-03"],
            ["SKU-1", "A-01-1", 5, "2026-01-04"]]
    path = write(tmp_path / "s.csv", ["SKU", "Location", "Quantity", "Date"], rows)
    assert cli_main(["shipments", "import", str(path), "--data-dir", str(data)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:3: Quantity -1 is negative" in err
    assert f"{path}: 2 shipments rows imported, 0 already there, 1 bad" in err
    store = Store(data / "shelfcount.db")
    try:
        assert [e.quantity for e in store.shipments()] == [4, 5]
    finally:
        store.close()


@pytest.mark.triton
def test_stock_alerts_and_tasks_over_rest(triton, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    store = Store(data / "shelfcount.db")
    start = datetime.now(UTC) - timedelta(days=24)
    counts, shipped = steady("SKU-10001", 400, 5, range(0, 23, 2), theft=(22, 40))
    shift = start - DAY0
    try:
        store.add_history([StockEvent(e.sku, e.location, e.quantity, e.at + shift, "t")
                           for e in counts])
        store.add_shipments([StockEvent(e.sku, e.location, e.quantity, e.at + shift, "t")
                             for e in shipped])
    finally:
        store.close()
    with running_gateway(data, triton.url, env={"SHELFCOUNT_BLIND_COUNTS": "1"}) as gw:
        manager = new_token(data, f"manager-{uuid.uuid4().hex[:6]}", "manager")
        walker = new_token(data, f"walker-{uuid.uuid4().hex[:6]}")
        url = f"{gw.base_url}/api/v1"

        def get(path: str, token: str, **params: str) -> requests.Response:
            return requests.get(url + path, params=params, timeout=30,
                                headers={"Authorization": f"Bearer {token}"})

        assert get("/stock-alerts", walker).status_code == 403
        assert get("/stock-alerts", manager, days="0").status_code == 400
        body = get("/stock-alerts", manager).json()
        (alert,) = body["shrinkage"]
        assert alert["sku"] == "SKU-10001" and alert["state"] == "recount"
        assert alert["missing"] == 40 and alert["value"] is not None
        assert {"slow_movers", "expiry_risk"} <= set(body)
        tasks = get("/tasks", walker)
        assert tasks.status_code == 200
        (task,) = [t for t in tasks.json()["tasks"] if t["recount"]]
        assert task["location"] == "A-01-1" and "recount" in task["reason"]
        assert "expected" not in task  # blind counts: walkers are not told what to find
        (seen,) = [t for t in get("/tasks", manager).json()["tasks"] if t["recount"]]
        assert 225 <= seen["expected"] < 250  # 250 counted two days ago, used since
        history = get("/stock-history", manager, sku="SKU-10001", location="A-01-1")
        assert history.status_code == 200, history.text
        assert len(history.json()["counts"]) == 12 and history.json()["forecast"]["On_Hand"] == 250
        assert get("/stock-history", walker, sku="SKU-10001", location="A-01-1"
                   ).status_code == 403
        assert get("/stock-history", manager, sku="SKU-10001").status_code == 400
        assert get("/stock-history", manager, sku="SKU-9", location="A-01-1").status_code == 404


def test_a_count_far_above_what_moves_explain_is_an_anomaly() -> None:
    counts, shipped = steady("A", 400, 5, range(0, 21, 2))
    counts[5] = event("A", counts[5].quantity + 60, 10)  # 60 more than anything explains
    counts[6] = event("A", counts[6].quantity + 60, 12)  # ...and it stays: a receipt unrecorded
    series = demand_series(counts, [], shipped)
    (found,) = rises(series, CFG)
    assert found["unexplained"] == 60 and found["state"] == "unexplained"
    assert found["counted_at"].startswith("2026-01-11")
    late, ship = steady("B", 400, 5, range(0, 21, 2), "B-01-1")
    late[-1] = event("B", late[-1].quantity + 30, 20, "B-01-1")
    (latest,) = rises(demand_series(late, [], ship), CFG)
    assert latest["state"] == "recount"
    today = (DAY0 + timedelta(days=21)).date()
    assert [t["location"] for t in count_tasks(demand_series(late, [], ship), price, today, CFG)
            if t["recount"]] == ["B-01-1"]
    quiet, ship = steady("A", 400, 5, range(0, 21, 2))
    assert rises(demand_series(quiet, [], ship), CFG) == []
