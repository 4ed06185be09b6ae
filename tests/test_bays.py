"""Bay rules on stored records: which photo counts, summed parts, location conflicts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from gateway.store.bays import location_conflict, settle, shared_codes, sum_rows
from gateway.store.types import CountRecord, utcnow

T0 = utcnow()


def record(count_id: str, minute: int, *, location: str | None = None, read: str = "A-01-1",
           source: str = "code", known: bool | None = True, codes: tuple[str, ...] = (),
           **fields: Any) -> CountRecord:
    rows = [{"Location": read, "SKU": "SKU-1", "Quantity_Counted": 3, "Unit_Price": "2.50",
             "Total_Value": "7.50", "Count_Confidence": 0.9, "Expiration_Date": "",
             "Condition": "Good", "Last_Updated": "2026-12-02T10:00:00Z"}]
    at = T0 + timedelta(minutes=minute)
    fields = {"confirmed_at": None, **fields}
    return CountRecord(
        id=count_id, session_id="s", device_id="d", client_id=f"p-{count_id}", source="ws",
        location=location, photo_hash="h", photo_bytes=1, status="done", attempts=1,
        error_code=None, error_message=None,
        result={"rows": rows, "location_source": source, "location_known": known,
                "codes": [{"Format": "DataMatrix", "Text": t} for t in codes]},
        created_at=at, updated_at=at, finished_at=at, confirmed_by=None,
        **fields)


def test_a_photo_of_a_location_the_session_holds_is_a_retake() -> None:
    old = record("a", 0, bay_id="a")
    assert settle(record("b", 1), [old]) == ("a", ["a"], None)
    # Another location is another bay.
    assert settle(record("c", 1, read="A-01-2"), [old]) == ("c", [], None)


def test_an_older_photo_counted_late_never_replaces_a_newer_one() -> None:
    newer = record("b", 5, bay_id="b")
    assert settle(record("a", 0), [newer]) == ("b", [], "b")


def test_a_confirmed_bay_takes_no_new_photo_and_parts_join_their_bay() -> None:
    confirmed = record("a", 0, bay_id="a", confirmed_at=T0)
    assert settle(record("b", 1), [confirmed]) == ("a", [], "a")
    open_bay = record("c", 0, read="B-01-1", bay_id="c")
    assert settle(record("d", 1, part_of="c"), [open_bay]) == ("c", [], None)
    assert settle(record("e", 1, replaces="c"), [open_bay]) == ("c", ["c"], None)
    # The photo it is a part of is not counted yet: that photo's id names the bay.
    assert settle(record("f", 1, part_of="zz"), []) == ("zz", [], None)


def test_parts_are_summed_per_line_with_value_and_the_lowest_confidence() -> None:
    a, b = record("a", 0).model_rows, record("b", 1).model_rows
    b[0]["Count_Confidence"] = 0.4
    (line,) = sum_rows([a, b])
    assert (line["Quantity_Counted"], line["Total_Value"], line["Count_Confidence"]) == (
        6, "15.00", 0.4)


def test_only_unit_codes_seen_twice_are_overlap() -> None:
    serial = "(01)04012345600117(21)XYZ123"
    parts = [record("a", 0, codes=(serial, "(01)04012345600117(10)L1")),
             record("b", 1, codes=(serial, "(01)04012345600117(10)L1"))]
    assert shared_codes(parts) == [serial]


def test_location_conflicts_are_told_apart_and_answered_by_a_choice() -> None:
    mismatch = record("a", 0, location="C-02-2", read="B-01-2")
    assert location_conflict(mismatch)["reason"] == "mismatch"
    # The walker's location, used because no label was read, is not a mismatch.
    assert location_conflict(record("b", 0, location="C-02-2", read="C-02-2",
                                    source="session")) is None
    assert location_conflict(record("c", 0, read="P-1-0", source="ocr",
                                    known=False))["reason"] == "unknown"
    assert location_conflict(record("d", 0, read="P-1-0", known=None)) is None  # no catalog
    answered = record("e", 0, location="C-02-2", read="B-01-2", location_choice="C-02-2")
    assert location_conflict(answered) is None
    assert answered.rows[0]["Location"] == "C-02-2"
