"""The count store on SQLite and (when SHELFCOUNT_TEST_DATABASE_URL is set) PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.schema import COLUMNS, Correction
from gateway.store import PhotoStore, Store, StoreError
from gateway.store.db import SCHEMA_VERSION, hash_token
from gateway.store.types import utcnow


def _row(location: str, sku: str, qty: int, price: str = "2.50") -> dict[str, object]:
    row = {c: "" for c in COLUMNS}
    row.update(Location=location, SKU=sku, Quantity_Counted=qty, Unit_Price=price,
               Total_Value=round(qty * float(price), 2), Condition="Good",
               Count_Confidence=0.9, Product_Description=f"item {sku}")
    return row


def _counted(store: Store, device, session, client_id: str, rows) -> str:
    record, created = store.add_count(
        session_id=session.id, device_id=device.id, client_id=client_id, source="ws",
        location=rows[0]["Location"] if rows else None, photo_hash="a" * 64, photo_bytes=10,
    )
    assert created
    store.finish_count(record.id, {"rows": rows, "boxes": [], "codes": []})
    return record.id


def test_tokens_are_hashed_and_repairing_replaces_the_token(store: Store) -> None:
    device, token = store.add_device("phone-1", "walker")
    assert store.device_by_token(token) == device
    assert store.device_by_token("nope") is None
    again, token2 = store.add_device("phone-1", "manager")
    assert again.id == device.id and again.role == "manager"
    assert store.device_by_token(token) is None
    assert store.device_by_token(token2).role == "manager"
    with pytest.raises(StoreError):
        store.add_device("x", "admin")


def test_same_client_id_is_one_count(store: Store) -> None:
    device, _ = store.add_device("phone", "walker")
    session = store.create_session(device)
    kwargs = dict(session_id=session.id, device_id=device.id, client_id="p1", source="ws",
                  location=None, photo_hash="b" * 64, photo_bytes=5)
    first, created = store.add_count(**kwargs)
    second, created2 = store.add_count(**kwargs)
    assert created and not created2 and first.id == second.id
    other, _ = store.add_device("other", "walker")
    third, created3 = store.add_count(**{**kwargs, "device_id": other.id})
    assert created3 and third.id != first.id


def test_unfinished_counts_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    db = Store(path)
    device, _ = db.add_device("phone", "walker")
    session = db.create_session(device)
    record, _ = db.add_count(session_id=session.id, device_id=device.id, client_id="x",
                             source="ws", location=None, photo_hash="c" * 64, photo_bytes=1)
    db.set_status(record.id, "processing", attempt=True)
    db.set_status(record.id, "waiting", undo_attempt=True)  # Triton was down: not counted
    db.set_status(record.id, "processing", attempt=True)
    db.close()
    reopened = Store(path)
    pending = reopened.unfinished_counts()
    assert [c.id for c in pending] == [record.id] and pending[0].attempts == 1
    reopened.close()


def test_correction_keeps_model_figure_and_confirm_writes_outbox(store: Store) -> None:
    walker, _ = store.add_device("walker-a", "walker")
    session = store.create_session(walker)
    count_id = _counted(store, walker, session, "p1",
                        [_row("A-1-1", "SKU-1", 4), _row("A-1-1", "SKU-2", 0)])
    corrected = store.correct(count_id, Correction(sku="SKU-1", quantity=6), by=walker)
    (fix,) = corrected.corrections
    assert (fix.model_quantity, fix.quantity, fix.by_name) == (4, 6, "walker-a")
    assert corrected.model_rows[0]["Quantity_Counted"] == 4
    added = store.correct(count_id, Correction(sku="SKU-9", quantity=2),
                          by=walker, catalog={"Product_Description": "new", "Unit_Price": "1.25"})
    assert added.corrections[-1].model_quantity is None
    with pytest.raises(ValidationError):  # refused as a message, before the store
        Correction(sku="SKU-1", quantity=-1)

    assert store.outbox_due("sheets", utcnow(), 10) == []
    record, newly = store.confirm_count(count_id, walker)
    assert newly and record.confirmed_by == "walker-a"
    _, again = store.confirm_count(count_id, walker)
    assert not again
    (entry,) = store.outbox_due("sheets", utcnow(), 10)
    assert entry.count_id == count_id and entry.walker == "walker-a"
    assert entry.location == "A-1-1"
    by_sku = {r["SKU"]: r for r in entry.rows}
    assert by_sku["SKU-1"]["Quantity_Counted"] == 6 and by_sku["SKU-1"]["Total_Value"] == 15.0
    assert by_sku["SKU-2"]["Condition"] == "Good" or by_sku["SKU-2"]["Quantity_Counted"] == 0
    assert by_sku["SKU-9"]["Total_Value"] == 2.5
    assert set(entry.rows[0]) == set(COLUMNS)
    assert store.session_rows(session.id) == entry.rows
    with pytest.raises(StoreError) as closed:
        store.correct(count_id, Correction(sku="SKU-1", quantity=1), by=walker)
    assert closed.value.code == "already_confirmed"


def test_outbox_delivery_is_per_sink_with_retry_time(store: Store) -> None:
    walker, _ = store.add_device("w", "walker")
    session = store.create_session(walker)
    ids = [_counted(store, walker, session, f"p{i}", [_row(f"A-1-{i}", "SKU-1", i)])
           for i in range(3)]
    result = store.confirm_session(session.id, walker)
    assert [newly for _, newly in result] == [True, True, True]
    assert store.get_session(session.id).confirmed_at is not None
    due = store.outbox_due("sheets", utcnow(), 10)
    assert [e.count_id for e in due] == ids
    store.outbox_mark_delivered(due[0].id, "sheets")
    later = utcnow() + timedelta(minutes=5)
    store.outbox_mark_failed(due[1].id, "sheets", "HTTP 429", later)
    now_due = store.outbox_due("sheets", utcnow(), 10)
    assert [e.id for e in now_due] == [due[2].id]
    assert [e.id for e in store.outbox_due("sheets", later, 10)] == [due[1].id, due[2].id]
    assert len(store.outbox_due("tryton", utcnow(), 10)) == 3
    assert len(store.outbox_due("tryton", utcnow(), 2)) == 2
    status = store.outbox_status(due[1].id)["sheets"]
    assert status["attempts"] == 1 and status["last_error"] == "HTTP 429"
    store.outbox_mark_delivered(due[1].id, "sheets")
    assert store.outbox_status(due[1].id)["sheets"]["delivered_at"] is not None
    with pytest.raises(StoreError):
        store.outbox_mark_delivered("missing", "sheets")


def test_confirm_rejects_uncounted_and_session_skips_them(store: Store) -> None:
    walker, _ = store.add_device("w", "walker")
    session = store.create_session(walker)
    queued, _ = store.add_count(session_id=session.id, device_id=walker.id, client_id="q",
                                source="ws", location=None, photo_hash="d" * 64, photo_bytes=1)
    with pytest.raises(StoreError) as err:
        store.confirm_count(queued.id, walker)
    assert err.value.code == "not_ready"
    done = _counted(store, walker, session, "ok", [_row("B-1-1", "SKU-1", 1)])
    result = store.confirm_session(session.id, walker)
    assert {r.id: newly for r, newly in result} == {queued.id: False, done: True}
    assert len(store.outbox_due("folder", utcnow(), 10)) == 1


def test_concurrent_writers_lose_nothing(store: Store) -> None:
    walker, _ = store.add_device("w", "walker")
    session = store.create_session(walker)

    def add(prefix: str) -> None:
        for i in range(20):
            store.add_count(session_id=session.id, device_id=walker.id,
                            client_id=f"{prefix}{i % 10}", source="ws", location=None,
                            photo_hash="e" * 64, photo_bytes=1)

    threads = [threading.Thread(target=add, args=(p,)) for p in "abc"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(store.session_counts(session.id)) == 30


def test_current_session_reuses_the_open_one(store: Store) -> None:
    camera, _ = store.add_device("cam", "camera")
    first = store.current_session(camera)
    assert store.current_session(camera).id == first.id
    store.confirm_session(first.id, camera)
    assert store.current_session(camera).id != first.id


def test_photos_are_content_addressed(tmp_path: Path) -> None:
    photos = PhotoStore(tmp_path / "photos")
    digest = photos.put(b"jpeg bytes")
    assert photos.put(b"jpeg bytes") == digest
    assert photos.get(digest) == b"jpeg bytes"
    assert [p.name for p in photos.root.rglob("*") if p.is_file()] == [digest]  # no temp left
    photos.delete(digest)
    assert not photos.exists(digest)
    with pytest.raises(ValueError):
        photos.path("../etc/passwd")


def test_condition_is_stored_with_the_correction_and_reaches_the_outbox(store: Store) -> None:
    walker, _ = store.add_device("walker-c", "walker")
    session = store.create_session(walker)
    count_id = _counted(store, walker, session, "p1", [_row("A-1-1", "SKU-1", 4)])
    damaged = store.correct(count_id, Correction(sku="SKU-1", quantity=4, condition="Damaged"),
                            by=walker)
    (fix,) = damaged.corrections
    assert (fix.condition, fix.model_quantity, fix.quantity) == ("Damaged", 4, 4)
    assert fix.row["Condition"] == "Damaged" and fix.to_json()["condition"] == "Damaged"
    assert damaged.model_rows[0]["Condition"] == "Good"  # the model's row is kept
    # A later quantity change without a condition keeps the person's "Damaged".
    store.correct(count_id, Correction(sku="SKU-1", quantity=3), by=walker)
    for bad in ("damaged", "Broken", ""):
        with pytest.raises(ValidationError, match="Damaged"):
            Correction(sku="SKU-1", quantity=3, condition=bad)
    store.confirm_count(count_id, walker)
    (entry,) = store.outbox_due("sheets", utcnow(), 10)
    assert [(r["Quantity_Counted"], r["Condition"]) for r in entry.rows] == [(3, "Damaged")]


def test_resent_corrections_are_recorded_once(store: Store) -> None:
    walker, _ = store.add_device("walker-d", "walker")
    manager, _ = store.add_device("manager-d", "manager")
    session = store.create_session(walker)
    count_id = _counted(store, walker, session, "p1", [_row("A-1-1", "SKU-1", 4)])
    for _ in range(2):
        record = store.correct(count_id, Correction(sku="SKU-1", quantity=5, correction_id="c-1"),
                               by=walker)
    assert len(record.corrections) == 1
    # Without an id: the same figure again from the same device is a repeat, not a record...
    record = store.correct(count_id, Correction(sku="SKU-1", quantity=5), by=walker)
    assert len(record.corrections) == 1
    # ...but another figure, another condition or another person is a new correction.
    record = store.correct(count_id, Correction(sku="SKU-1", quantity=5, condition="Damaged"),
                           by=walker)
    record = store.correct(count_id, Correction(sku="SKU-1", quantity=5), by=manager)
    record = store.correct(count_id, Correction(sku="SKU-1", quantity=6), by=walker)
    assert [c.quantity for c in record.corrections] == [5, 5, 5, 6]
    # An id seen before stays a re-send even after other corrections and the confirmation.
    store.confirm_count(count_id, walker)
    again = store.correct(count_id, Correction(sku="SKU-1", quantity=5, correction_id="c-1"),
                          by=walker)
    assert len(again.corrections) == 4
    with pytest.raises(StoreError) as closed:
        store.correct(count_id, Correction(sku="SKU-1", quantity=5, correction_id="c-2"), by=walker)
    assert closed.value.code == "already_confirmed"
    with pytest.raises(ValidationError, match="correction_id"):
        Correction(sku="SKU-1", quantity=5, correction_id="no spaces")


def test_a_version_1_database_gains_the_new_correction_columns(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1');
        CREATE TABLE corrections (
            id TEXT PRIMARY KEY, count_id TEXT NOT NULL, location TEXT, sku TEXT NOT NULL,
            model_quantity INTEGER, quantity INTEGER NOT NULL, row_json TEXT NOT NULL,
            by_device TEXT NOT NULL, by_name TEXT NOT NULL, corrected_at TEXT NOT NULL);
    """)
    old.close()
    store = Store(path)
    try:
        walker, _ = store.add_device("walker-e", "walker")
        count_id = _counted(store, walker, store.create_session(walker), "p1",
                            [_row("A-1-1", "SKU-1", 4)])
        fixed = store.correct(count_id, Correction(sku="SKU-1", quantity=4, condition="Expired",
                                                   correction_id="c-1"),
                              by=walker)
        assert (fixed.corrections[0].condition, fixed.corrections[0].client_id) == (
            "Expired", "c-1")
    finally:
        store.close()
    reopened = Store(path)  # opening a migrated database again changes nothing
    reopened.close()
    check = sqlite3.connect(path)
    assert check.execute("SELECT value FROM meta").fetchone() == (SCHEMA_VERSION,)
    check.close()


def test_a_version_2_database_gains_the_bay_and_reopen_columns(tmp_path: Path) -> None:
    """A store written before one-bay-one-count (schema 2) opens, keeps its counts and works
    with bays, location answers and reopened bays."""
    import sqlite3

    path = tmp_path / "v2.db"
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '2');
        CREATE TABLE counts (
            id TEXT PRIMARY KEY, session_id TEXT NOT NULL, device_id TEXT NOT NULL,
            client_id TEXT NOT NULL, source TEXT NOT NULL, location TEXT,
            photo_hash TEXT NOT NULL, photo_bytes INTEGER NOT NULL, status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0, error_code TEXT, error_message TEXT,
            result_json TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
            finished_at TEXT, confirmed_at TEXT, confirmed_by TEXT, photo_purged_at TEXT,
            UNIQUE (device_id, client_id));
        CREATE TABLE outbox (
            id TEXT PRIMARY KEY, count_id TEXT NOT NULL UNIQUE, session_id TEXT NOT NULL,
            walker TEXT NOT NULL, location TEXT, rows_json TEXT NOT NULL,
            created_at TEXT NOT NULL);
    """)
    old.close()
    store = Store(path)
    try:
        walker, _ = store.add_device("walker-v2", "walker")
        session = store.create_session(walker)
        first = _counted(store, walker, session, "p1", [_row("A-1-1", "SKU-1", 4)])
        again = _counted(store, walker, session, "p2", [_row("A-1-1", "SKU-1", 5)])
        assert store.get_count(first).superseded_by == again  # a retake of the bay
        store.confirm_count(again, walker)
        manager, _ = store.add_device("manager-v2", "manager")
        (copy,) = store.reopen(again, manager)
        store.confirm_count(copy.id, manager)
        old_entry, new_entry = store.outbox_entries(session.id)
        assert new_entry.revises == old_entry.id
    finally:
        store.close()
    check = sqlite3.connect(path)
    assert check.execute("SELECT value FROM meta").fetchone() == (SCHEMA_VERSION,)
    check.close()


def test_a_version_3_database_keeps_its_devices_and_learns_token_times(tmp_path: Path) -> None:
    """Devices paired before token expiry (schema 3) keep working; their token counts as
    issued when the device was created, and pairing again records the new token's time."""
    import sqlite3

    path = tmp_path / "v3.db"
    old = sqlite3.connect(path)
    old.executescript(f"""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '3');
        CREATE TABLE devices (
            id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, role TEXT NOT NULL,
            token_hash TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, last_seen TEXT,
            revoked_at TEXT);
        INSERT INTO devices VALUES ('d1', 'walker-v3', 'walker', '{hash_token("tok-v3")}',
                                    '2026-01-05T08:00:00Z', NULL, NULL);
    """)
    old.close()
    store = Store(path)
    try:
        device = store.device_by_token("tok-v3")
        assert device is not None and device.token_at is None
        assert device.token_expires(10) == device.created_at + timedelta(days=10)
        assert device.token_expires(0) is None
        again, token = store.add_device("walker-v3", "walker")
        now = store.device_by_token(token)
        assert now is not None and now.token_at is not None and now.token_at > device.created_at
        assert again.created_at == device.created_at  # the device is the same one
    finally:
        store.close()
    check = sqlite3.connect(path)
    assert check.execute("SELECT value FROM meta").fetchone() == (SCHEMA_VERSION,)
    check.close()
