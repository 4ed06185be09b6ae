"""Stock intelligence, first part (issue 16): count history and receipts imported from CSV
(bad rows named by file and line, the rest kept, exit 1), the store's confirmed bays joining
the history, daily demand spread over irregular count gaps, and ``shelfcount forecast``'s rows
with a reorder suggestion in whole packs."""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from gateway.catalog import import_catalog
from gateway.cli import main as cli_main
from gateway.stock.demand import demand_series
from gateway.stock.forecast import COLUMNS, Supply, choose_and_forecast, reorder
from gateway.store import Store
from gateway.store.stock_repo import StockEvent

from .test_store import _counted, _row

DAY0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


def event(sku: str, qty: int, day: float, location: str = "A-01-1") -> StockEvent:
    return StockEvent(sku, location, qty, DAY0 + timedelta(days=day), "test")


def test_consumption_is_spread_over_the_days_between_counts() -> None:
    history = [event("S", 10, 0), event("S", 4, 3), event("S", 9, 4), event("S", 1, 8)]
    receipts = [event("S", 6, 3.5)]  # between the second and third counts
    (s,) = demand_series(history, receipts)
    # 10 -> 4 in 3 days: 2 a day; 4 + 6 received -> 9 in a day: 1; 9 -> 1 in 4 days: 2 a day.
    assert s.demand.tolist() == [2, 2, 2, 1, 2, 2, 2, 2]
    assert s.certainty.tolist() == pytest.approx([1 / 3] * 3 + [1] + [1 / 4] * 4)
    assert (s.on_hand, s.counts, s.unexplained_rises) == (1, 4, 0)
    (rise,) = demand_series([event("S", 2, 0), event("S", 5, 2)], [])
    assert rise.demand.tolist() == [0, 0] and rise.unexplained_rises == 1


def test_forecast_picks_a_model_and_suggests_whole_packs() -> None:
    rng = np.random.default_rng(3)
    y = rng.poisson(3.0, 120).astype(float)
    method, daily, sigma = choose_and_forecast(y, 28)
    assert method in {"Combined", "CrostonSBA", "TSB", "ADIDA", "SES"}
    assert daily == pytest.approx(3.0, abs=0.6) and 0.5 < sigma < 4
    point, qty = reorder(10, 3.0, 1.0, Supply(lead_time_days=4, service_level=0.95,
                                              pack_size=12, min_order_qty=24))
    assert point == pytest.approx(3 * 4 + 1.6449 * 1.0 * 2, abs=0.01)
    assert qty % 12 == 0 and qty >= 24 and 10 + qty >= point + 3 * 14
    assert reorder(100, 3.0, 1.0, Supply())[1] == 0  # above the reorder point: no order
    assert choose_and_forecast(np.zeros(0), 7)[0] == "none"


def test_the_forecast_keeps_a_long_memory_unless_demand_clearly_changed() -> None:
    """Steady demand: the combined long-memory forecast, close to the true rate. A product that
    stopped selling two months ago: a fast model takes over (its holdout error is a fraction
    of the combined one's), instead of ordering for demand that is gone."""
    rng = np.random.default_rng(5)
    steady = rng.poisson(5.0, 240).astype(float)
    method, daily, _ = choose_and_forecast(steady, 28)
    assert method == "Combined" and daily == pytest.approx(5.0, abs=0.5)
    stopped = np.concatenate([rng.poisson(5.0, 180), np.zeros(60)]).astype(float)
    method, daily, _ = choose_and_forecast(stopped, 28)
    assert method != "Combined" and daily < 0.5


def write(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buffer.getvalue())
    return path


HISTORY_HEADER = ["Location", "SKU", "Product_Description", "Quantity_Counted", "Unit_Price",
                  "Total_Value", "Condition", "Expiration_Date", "Last_Updated",
                  "Count_Confidence"]


def history_rows(sku: str, start: int, per_day: int, every: int, days: int) -> list[list]:
    out = []
    for day in range(0, days, every):
        when = (DAY0 + timedelta(days=day)).date().isoformat()
        out.append(["B-02-1", sku, "thing", start - per_day * day, "1.00", "", "Good", "",
                    when, "0.9"])
    return out


def test_history_import_keeps_good_rows_and_names_bad_ones(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    rows = history_rows("SKU-1", 500, 3, 5, 90)
    rows.insert(2, ["B-02-1", "SKU-1", "thing", "lots", "1.00", "", "Good", "", "2026-01-04",
                    ""])
    rows.insert(4, ["B-02-1", "", "thing", "3", "1.00", "", "Good", "", "2026-01-06", ""])
    rows.insert(5, ["B-02-1", "SKU-1", "thing", "3", "1.00", "", "Good", "", "yesterday", ""])
    past = write(tmp_path / "past.csv", HISTORY_HEADER, rows)
    assert cli_main(["history", "import", str(past), "--data-dir", str(data)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert f"{past}:4: Quantity_Counted 'lots' is not a whole number" in err
    assert f"{past}:6: SKU and Location are required" in err
    assert any(line.startswith(f"{past}:7: Last_Updated 'yesterday'") for line in err)
    assert f"{past}: 18 history rows imported, 0 already there, 3 bad" in err
    good = write(tmp_path / "good.csv", HISTORY_HEADER, history_rows("SKU-1", 500, 3, 5, 90))
    assert cli_main(["history", "import", str(good), "--data-dir", str(data)]) == 0
    assert f"{good}: 0 history rows imported, 18 already there, 0 bad" in capsys.readouterr().err
    missing = write(tmp_path / "bad.csv", ["SKU", "Qty"], [["SKU-1", "2"]])
    assert cli_main(["receipts", "import", str(missing), "--data-dir", str(data)]) == 1
    assert "bad.csv:1: missing column(s) Location, Quantity, Date" in capsys.readouterr().err


def test_forecast_command_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "catalog.csv").write_text(
        "SKU,Barcode,Product_Description,Unit_Price,Location,Lead_Time_Days,Pack_Size\n"
        "SKU-1,,thing,1.00,B-02-1,5,20\nSKU-2,,other,2.00,B-02-2,,\n")
    import_catalog(tmp_path / "catalog.csv", data)
    # SKU-1: 4 a day over 90 days, counted every 1 to 9 days, restocked by 300 on day 40.
    days = [0, 1, 5, 14, 20, 21, 30, 39, 45, 50, 59, 66, 70, 79, 84, 89]
    rows = [["B-02-1", "SKU-1", "", 400 - 4 * d + (300 if d > 40 else 0), "", "", "", "",
             (DAY0 + timedelta(days=d)).date().isoformat(), ""] for d in days]
    rows.append(["B-02-2", "SKU-2", "", 7, "", "", "", "", "2026-03-01", ""])  # one count
    write(tmp_path / "h.csv", HISTORY_HEADER, rows)
    write(tmp_path / "r.csv", ["SKU", "Location", "Quantity", "Date"],
          [["SKU-1", "B-02-1", 300, "2026-02-10"]])
    assert cli_main(["history", "import", str(tmp_path / "h.csv"), "--data-dir", str(data)]) == 0
    assert cli_main(["receipts", "import", str(tmp_path / "r.csv"), "--data-dir",
                     str(data)]) == 0
    capsys.readouterr()
    assert cli_main(["forecast", "--data-dir", str(data)]) == 0
    out = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert list(out[0]) == list(COLUMNS)
    one, two = out
    assert (one["SKU"], one["Location"], one["On_Hand"]) == ("SKU-1", "B-02-1", "344")
    assert float(one["Daily_Demand"]) == pytest.approx(4.0, abs=0.3)
    assert float(one["Demand_Low"]) <= float(one["Daily_Demand"]) <= float(one["Demand_High"])
    assert float(one["Days_Until_Stockout"]) == pytest.approx(344 / float(one["Daily_Demand"]),
                                                              abs=0.2)
    assert one["Last_Count"] == "2026-03-31" and one["Method"] != "none"
    assert one["Suggested_Order_Qty"] == "0"  # 344 on hand, far above 5 days of demand
    assert (two["SKU"], two["Method"], two["Daily_Demand"], two["Suggested_Order_Qty"]) == (
        "SKU-2", "none", "", "0")
    assert cli_main(["forecast", "--format", "jsonl", "--data-dir", str(data)]) == 0
    first = json.loads(capsys.readouterr().out.splitlines()[0])
    assert set(first) == set(COLUMNS)
    assert cli_main(["forecast", "--horizon", "0", "--data-dir", str(data)]) == 2


def test_confirmed_bays_join_the_history(store: Store) -> None:
    walker, _ = store.add_device("walker-h", "walker")
    session = store.create_session(walker)
    count_id = _counted(store, walker, session, "h1", [_row("A-1-1", "SKU-1", 4)])
    store.add_history([event("SKU-1", 9, 0, "A-1-1")])
    assert [e.quantity for e in store.history()] == [9]  # not confirmed: not a count yet
    store.confirm_count(count_id, walker)
    history = store.history()
    assert [(e.sku, e.location, e.quantity) for e in history] == [
        ("SKU-1", "A-1-1", 9), ("SKU-1", "A-1-1", 4)]
    assert history[-1].source == f"count {count_id}"


def test_lead_time_spread_and_economic_order_quantity() -> None:
    """Safety stock grows with the lead time's own spread; with order and holding costs the
    order is the EOQ (sqrt(2 D S / H)), at least enough to get over the reorder point."""
    plain = reorder(10, 4.0, 1.0, Supply(lead_time_days=9))[0]
    spread = reorder(10, 4.0, 1.0, Supply(lead_time_days=9, lead_time_sd_days=2))[0]
    assert plain == pytest.approx(36 + 1.6449 * 3, abs=0.01)
    assert spread == pytest.approx(36 + 1.6449 * (9 + 64) ** 0.5, abs=0.01)
    # D = 4 * 365, S = 50, H = 2: EOQ = sqrt(2 * 1460 * 50 / 2) = 270.2 -> 271.
    eoq = Supply(lead_time_days=9, order_cost=50, holding_cost_per_year=2)
    assert reorder(10, 4.0, 1.0, eoq)[1] == 271
    tiny = Supply(lead_time_days=9, order_cost=1, holding_cost_per_year=50)  # EOQ 7.6
    point, qty = reorder(10, 4.0, 1.0, tiny)
    assert qty == math.ceil(point - 10)  # still back over the reorder point


def test_catalog_costs_reach_the_supply(tmp_path: Path) -> None:
    from gateway.catalog import load_catalog
    from gateway.stock.forecast import supply_from

    (tmp_path / "c.csv").write_text(
        "SKU,Barcode,Product_Description,Unit_Price,Lead_Time_Days,Lead_Time_SD_Days,"
        "Order_Cost,Holding_Cost_Pct\nSKU-1,,thing,8.00,10,3,40,25\n")
    import_catalog(tmp_path / "c.csv", tmp_path / "d")
    supply = supply_from(load_catalog(tmp_path / "d").by_sku("SKU-1"))
    assert (supply.lead_time_days, supply.lead_time_sd_days, supply.order_cost,
            supply.holding_cost_per_year) == (10, 3, 40, 2.0)
    (tmp_path / "bad.csv").write_text(
        "SKU,Barcode,Product_Description,Unit_Price,Holding_Cost_Pct\nSKU-1,,thing,8.00,x\n")
    from gateway.catalog import CatalogError

    with pytest.raises(CatalogError, match="Holding_Cost_Pct 'x' is not a number"):
        import_catalog(tmp_path / "bad.csv", tmp_path / "e")


def test_known_shipments_are_the_daily_demand() -> None:
    """Counts a week apart spread the week's use evenly; shipments say which day it left."""
    history = [event("S", 100, 0), event("S", 86, 7)]
    shipped = [event("S", 10, 1.3), event("S", 4, 5.2)]
    (spread,) = demand_series(history, [])
    assert spread.demand.tolist() == [2] * 7
    (known,) = demand_series(history, [], shipped)
    assert known.demand.tolist() == [0, 10, 0, 0, 0, 4, 0]
    assert known.certainty.tolist() == [1] * 7


def test_shipments_recorded_from_a_day_on_leave_the_earlier_demand_to_the_counts() -> None:
    """The ERP link started on day 14: the first two weeks' use (3 a day, from the counts) is
    not taken for zero, and only the later intervals have their shipments known."""
    history = [event("S", 100, 0), event("S", 79, 7), event("S", 58, 14), event("S", 50, 21)]
    shipped = [event("S", 5, 15.2), event("S", 3, 18.4)]
    (s,) = demand_series(history, [], shipped)
    assert s.demand.tolist() == [3] * 14 + [0, 5, 0, 0, 3, 0, 0]
    assert [iv.shipped for iv in s.intervals] == [None, None, 8]
