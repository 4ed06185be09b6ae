"""Full corrections (issue 12, finding 3): change a line's SKU, assign the unidentified items,
add a missed SKU, fix a misread expiry; in the store and through the real gateway."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from pydantic import ValidationError

from gateway.schema import Correction, Split
from gateway.server import GatewayServer
from gateway.store import Store, StoreError

from .fakes.bays import row
from .server_support import WsClient, new_token, outcome, running_gateway, shelf_jpeg


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "s.db")
    yield s
    s.close()


def counted(store: Store, rows: list[dict]) -> tuple[str, object]:
    walker, _ = store.add_device("walker-f")
    session = store.create_session(walker)
    record, _ = store.add_count(session_id=session.id, device_id=walker.id, client_id="p1",
                                source="test", location="A-01-1", photo_hash="0" * 64,
                                photo_bytes=1)
    store.finish_count(record.id, {"rows": rows})
    return record.id, walker


def lines(store: Store, count_id: str) -> dict[str, tuple[int, str, str]]:
    return {r["SKU"]: (r["Quantity_Counted"], r["Condition"], r["Expiration_Date"])
            for r in store.get_count(count_id).rows}


def test_unidentified_items_are_assigned_to_a_sku_and_join_its_line(store: Store) -> None:
    unknown = {**row("A-01-1", "", 4), "Product_Description": "Unidentified items"}
    count_id, walker = counted(store, [row("A-01-1", "SKU-1", 6), unknown])
    store.correct(count_id, Correction(sku="", quantity=4, new_sku="SKU-1", correction_id="a1"),
                  by=walker, catalog={"Product_Description": "Tape", "Unit_Price": "2.00"})
    assert lines(store, count_id) == {"SKU-1": (10, "Good", "")}
    record = store.get_count(count_id)
    assert sorted((c.sku, c.quantity, c.to_json()["removed"]) for c in record.corrections) == [
        ("", 0, True), ("SKU-1", 10, False)]
    # A re-send (same correction id) changes nothing.
    store.correct(count_id, Correction(sku="", quantity=4, new_sku="SKU-1", correction_id="a1"),
                  by=walker)
    assert len(store.get_count(count_id).corrections) == 2


def test_a_wrong_sku_moves_to_the_right_one_with_its_description(store: Store) -> None:
    count_id, walker = counted(store, [row("A-01-1", "SKU-1", 6)])
    store.correct(count_id, Correction(sku="SKU-1", quantity=5, new_sku="SKU-2"),
                  by=walker, catalog={"Product_Description": "Film", "Unit_Price": "3.00"})
    (line,) = store.get_count(count_id).rows
    assert (line["SKU"], line["Quantity_Counted"], line["Product_Description"],
            float(line["Total_Value"])) == ("SKU-2", 5, "Film", 15.0)
    with pytest.raises(StoreError) as gone:
        store.correct(count_id, Correction(sku="SKU-1", quantity=1, new_sku="SKU-3"), by=walker)
    assert gone.value.code == "not_found"


def test_a_misread_expiry_is_fixed_and_the_condition_follows(store: Store) -> None:
    count_id, walker = counted(store, [row("A-01-1", "SKU-1", 6)])
    store.correct(count_id, Correction(sku="SKU-1", quantity=6, expiry="2020-01-31"), by=walker)
    assert lines(store, count_id) == {"SKU-1": (6, "Expired", "2020-01-31")}
    store.correct(count_id, Correction(sku="SKU-1", quantity=6, expiry="2099-12-31"), by=walker)
    assert lines(store, count_id) == {"SKU-1": (6, "Good", "2099-12-31")}
    with pytest.raises(ValidationError, match="expiry"):
        Correction(sku="SKU-1", quantity=6, expiry="31/12/2099")


def test_a_line_is_split_by_condition_and_the_bay_still_adds_up(store: Store) -> None:
    count_id, walker = counted(store, [row("A-01-1", "SKU-1", 12)])
    two = Split(quantity=2, condition="Damaged")
    store.correct(count_id, Correction(sku="SKU-1", quantity=12, split=two, correction_id="s1"),
                  by=walker)
    rows = store.get_count(count_id).rows
    assert sorted((r["SKU"], r["Quantity_Counted"], r["Condition"]) for r in rows) == [
        ("SKU-1", 2, "Damaged"), ("SKU-1", 10, "Good")]
    # Changing the split replaces it (3 of 12 now); the confirmed bay sums to 12 in the sinks.
    three = Split(quantity=3, condition="Damaged")
    store.correct(count_id, Correction(sku="SKU-1", quantity=12, split=three, correction_id="s2"),
                  by=walker)
    rows = store.get_count(count_id).rows
    assert sorted((r["Quantity_Counted"], r["Condition"]) for r in rows) == [
        (3, "Damaged"), (9, "Good")]
    store.confirm_count(count_id, walker)
    (entry,) = store.outbox_entries(store.get_count(count_id).session_id)
    assert sum(r["Quantity_Counted"] for r in entry.rows) == 12
    with pytest.raises(StoreError):
        store.correct(count_id, Correction(sku="SKU-1", quantity=12, split=two), by=walker)


def test_a_split_of_every_item_leaves_no_empty_line_and_bad_splits_are_refused(
        store: Store) -> None:
    count_id, walker = counted(store, [row("A-01-1", "SKU-1", 4)])
    every = Split(quantity=4, condition="Expired")
    store.correct(count_id, Correction(sku="SKU-1", quantity=4, split=every), by=walker)
    assert [(r["Quantity_Counted"], r["Condition"]) for r in store.get_count(count_id).rows] == [
        (4, "Expired")]
    for n, condition in [(5, "Damaged"), (1, "Good"), (-1, "Damaged")]:
        with pytest.raises(ValidationError):
            Correction.model_validate({"sku": "SKU-1", "quantity": 4,
                                       "split": {"quantity": n, "condition": condition}})


@pytest.fixture(scope="module")
def gw(triton, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    with running_gateway(tmp_path_factory.mktemp("gw-full-corrections"), triton.url) as server:
        yield server


@pytest.mark.triton
def test_sku_change_missed_sku_and_expiry_through_the_gateway(gw: GatewayServer) -> None:
    token = new_token(gw.settings.data_dir, "walker-finn")
    phone = WsClient(gw)
    try:
        phone.hello(token)
        photo_id = str(uuid.uuid4())
        phone.photo(photo_id, shelf_jpeg(11))
        result = phone.wait_for(outcome(photo_id))
        line = result["rows"][0]
        products = requests.get(f"{gw.base_url}/api/v1/products", timeout=10,
                                headers={"Authorization": f"Bearer {token}"}).json()["products"]
        other = next(p for p in products if p["sku"] not in {r["SKU"] for r in result["rows"]})
        missed = next(p for p in products if p["sku"] not in {r["SKU"] for r in result["rows"]}
                      and p["sku"] != other["sku"])
        phone.send({"type": "correct", "id": photo_id, "sku": line["SKU"],
                    "quantity": line["Quantity_Counted"], "new_sku": other["sku"].lower(),
                    "correction_id": "move-1"})
        moved = phone.wait_for(lambda m: m["type"] == "corrected")
        skus = {r["SKU"]: r for r in moved["rows"]}
        assert line["SKU"] not in skus and skus[other["sku"]]["Product_Description"] == other[
            "description"]
        phone.send({"type": "correct", "id": photo_id, "sku": missed["sku"], "quantity": 3,
                    "expiry": "2099-06-30", "correction_id": "add-1"})
        added = phone.wait_for(lambda m: m["type"] == "corrected")
        new_line = next(r for r in added["rows"] if r["SKU"] == missed["sku"])
        assert (new_line["Quantity_Counted"], new_line["Expiration_Date"]) == (3, "2099-06-30")
        assert sum(r["Quantity_Counted"] for r in added["bay_rows"]) == sum(
            r["Quantity_Counted"] for r in added["rows"])
        phone.send({"type": "correct", "id": photo_id, "sku": missed["sku"], "quantity": 1,
                    "new_sku": "NOT-A-SKU"})
        refused = phone.wait_for(lambda m: m["type"] == "error")
        assert refused["code"] == "unknown_sku"
        phone.send({"type": "correct", "id": photo_id, "sku": "", "quantity": 1})
        refused = phone.wait_for(lambda m: m["type"] == "error")
        assert refused["code"] == "bad_request"
    finally:
        phone.close()
