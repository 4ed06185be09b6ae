"""The store's schema moves by Alembic revisions: a database written by the gateway before
Alembic (tests/data/store_v4.sql, made by that code) opens on SQLite and PostgreSQL with its
devices, counts, corrections and outbox intact, and every database ends up exactly as
gateway/store/tables.py declares it (autogenerate finds nothing to change)."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from gateway.schema import Correction
from gateway.store import Store
from gateway.store.db import SCHEMA_VERSION
from gateway.store.engine import MIGRATIONS
from gateway.store.tables import metadata

PG_URL = os.environ.get("SHELFCOUNT_TEST_DATABASE_URL", "")
LEGACY = Path(__file__).parent / "data" / "store_v4.sql"


def statements(path: Path) -> list[str]:
    body = "\n".join(line for line in path.read_text().splitlines()
                     if not line.startswith("--"))
    return [s.strip() for s in body.split(";\n") if s.strip().rstrip(";")]


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, dict]]:
    """(store target, Store keyword arguments) of an empty database."""
    if request.param == "sqlite":
        yield str(tmp_path / "store.db"), {}
        return
    if not PG_URL:
        pytest.skip("SHELFCOUNT_TEST_DATABASE_URL is not set: PostgreSQL store tests skipped")
    schema = f"mig_{uuid.uuid4().hex[:12]}"
    yield PG_URL, {"schema": schema}
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def load_legacy(target: str, options: dict) -> None:
    """Write the pre-Alembic database with plain drivers (no SQLAlchemy, no Alembic)."""
    if options.get("schema"):
        import psycopg

        with psycopg.connect(target, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{options["schema"]}"')
            conn.execute(f'SET search_path TO "{options["schema"]}"')
            for statement in statements(LEGACY):
                conn.execute(statement)
        return
    conn = sqlite3.connect(target)
    for statement in statements(LEGACY):
        conn.execute(statement)
    conn.commit()
    conn.close()


def schema_drift(store: Store) -> list:
    """What autogenerate would change to make the database match tables.py."""
    with store.db.tx() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    if not store.is_postgres:  # SQLite lets a TEXT PRIMARY KEY be NULL, whatever is declared
        diff = [d for d in diff if not (isinstance(d, list) and d[0][0] == "modify_nullable"
                                        and d[0][3] in ("id", "key"))]
    return diff


def head() -> str:
    """The newest revision in gateway/store/migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


def revision(store: Store) -> str:
    with store.db.tx() as conn:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()


def test_a_new_database_is_what_tables_py_declares(target: tuple[str, dict]) -> None:
    store = Store(target[0], **target[1])
    try:
        assert schema_drift(store) == []
        assert revision(store) == head()
    finally:
        store.close()


def test_a_database_made_before_alembic_upgrades_with_its_data(
        target: tuple[str, dict]) -> None:
    load_legacy(*target)
    store = Store(target[0], **target[1])
    try:
        assert revision(store) == head() and schema_drift(store) == []
        walker = store.device_by_token("legacy-walker-token")
        assert walker is not None and walker.name == "walker-old"
        assert store.device_by_name("gone").revoked_at is not None
        (session,) = store.list_sessions(walker.id)
        first, second, third = store.session_counts(session.id)
        assert [c.status for c in (first, second, third)] == ["done"] * 3
        (fix,) = first.corrections
        assert (fix.quantity, fix.condition, fix.client_id, fix.model_quantity) == (
            5, "Damaged", "fix-1", 4)
        assert first.rows[0]["Quantity_Counted"] == 5 and first.confirmed_at is not None
        entries = store.outbox_entries(session.id)
        assert [e.count_id for e in entries] == [first.id, second.id]
        assert store.outbox_status(entries[0].id)["sheets"]["delivered_at"] is not None
        assert [e.id for e in store.outbox_due("sheets", third.created_at.replace(year=2100),
                                               10)] == [entries[1].id]
        # The open photo still takes corrections and confirms into the outbox.
        store.correct(third.id, Correction(sku="SKU-10001", quantity=3), by=walker)
        assert store.confirm_count(third.id, walker)[1] is True
        assert len(store.outbox_entries(session.id)) == 3
        assert third.box_edit is None  # a table the later revision added, empty
    finally:
        store.close()
    again = Store(target[0], **target[1])  # opening an upgraded database changes nothing
    try:
        assert revision(again) == head() and schema_drift(again) == []
        with again.db.tx() as conn:
            assert conn.execute(text("SELECT value FROM meta")).scalar_one() == SCHEMA_VERSION
    finally:
        again.close()


def test_receipts_read_twice_from_one_tryton_move_are_kept_once(
        target: tuple[str, dict]) -> None:
    """Revision 0005: a done move Tryton wrote again had been stored a second time under its
    new write time; the upgrade keeps the first row (imported rows are left alone)."""
    from alembic import command

    store = Store(target[0], **target[1])
    try:
        with store.db.tx() as conn:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = conn
            command.downgrade(config, "0004")
            for at, source in (("2026-11-01T10:00:00+00:00", "tryton move 7"),
                               ("2026-11-03T09:00:00+00:00", "tryton move 7"),
                               ("2026-11-01T10:00:00+00:00", "receipts.csv:2"),
                               ("2026-11-02T10:00:00+00:00", "receipts.csv:3")):
                conn.execute(text("INSERT INTO stock_receipts (sku, location, quantity, "
                                  "received_at, source) VALUES ('S', 'A-01-1', 12, :at, :src)"),
                             {"at": at, "src": source})
            command.upgrade(config, "head")
        assert sorted((e.at.day, e.source) for e in store.receipts()) == [
            (1, "receipts.csv:2"), (1, "tryton move 7"), (2, "receipts.csv:3")]
        assert revision(store) == head() and schema_drift(store) == []
    finally:
        store.close()
