"""The count store: devices, sessions, counts, corrections, confirmations and the outbox.

One class for both back-ends. SQL is written once with ``?`` placeholders and portable types
(ids and timestamps as text), so SQLite (default, WAL, synchronous=FULL so an acknowledged
photo survives a power cut) and PostgreSQL (``SHELFCOUNT_DATABASE_URL``) run the same
statements. A single connection guarded by a lock is plenty for a gateway on a few cores and
keeps every multi-statement change (confirm + outbox) in one transaction.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.schema import Correction as CorrectionMessage

from .bays import bay_location, location_conflict, settle, sum_rows
from .corrections import (
    already_recorded,
    check_open,
    corrected_lines,
    split_lines,
)
from .types import (
    ROLES,
    UNFINISHED,
    Correction,
    CountRecord,
    Device,
    OutboxEntry,
    Session,
    StoreError,
    from_ts,
    to_ts,
    utcnow,
)

# 2: corrections got row_condition (a person's Condition, e.g. "Damaged") and client_id (the
# client's correction id, so a re-sent correction is recorded once).
# 3: counts got bay_id, replaces, part_of, superseded_by (one bay, one count),
# location_choice (the walker's answer to a location conflict) and recount_note / _by / _at (a
# manager sent the bay back); devices got last_seen and revoked_at; outbox got revises (the
# entry a reopened bay's re-confirmation replaces).
SCHEMA_VERSION = "4"

_DDL: tuple[str, ...] = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS devices (
        id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, role TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, last_seen TEXT,
        revoked_at TEXT, token_at TEXT)""",
    """CREATE TABLE IF NOT EXISTS sessions (
        id TEXT PRIMARY KEY, device_id TEXT NOT NULL REFERENCES devices(id),
        walker TEXT NOT NULL, label TEXT, created_at TEXT NOT NULL, confirmed_at TEXT)""",
    "CREATE INDEX IF NOT EXISTS sessions_device ON sessions(device_id, created_at)",
    """CREATE TABLE IF NOT EXISTS counts (
        id TEXT PRIMARY KEY, session_id TEXT NOT NULL REFERENCES sessions(id),
        device_id TEXT NOT NULL REFERENCES devices(id), client_id TEXT NOT NULL,
        source TEXT NOT NULL, location TEXT, photo_hash TEXT NOT NULL,
        photo_bytes INTEGER NOT NULL, status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0, error_code TEXT, error_message TEXT,
        result_json TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
        finished_at TEXT, confirmed_at TEXT, confirmed_by TEXT, photo_purged_at TEXT,
        bay_id TEXT, replaces TEXT, part_of TEXT, superseded_by TEXT, location_choice TEXT,
        recount_note TEXT, recount_by TEXT, recount_at TEXT,
        UNIQUE (device_id, client_id))""",
    "CREATE INDEX IF NOT EXISTS counts_session ON counts(session_id, created_at)",
    "CREATE INDEX IF NOT EXISTS counts_status ON counts(status)",
    "CREATE INDEX IF NOT EXISTS counts_photo ON counts(photo_hash)",
    """CREATE TABLE IF NOT EXISTS corrections (
        id TEXT PRIMARY KEY, count_id TEXT NOT NULL REFERENCES counts(id),
        location TEXT, sku TEXT NOT NULL, model_quantity INTEGER, quantity INTEGER NOT NULL,
        row_json TEXT NOT NULL, by_device TEXT NOT NULL, by_name TEXT NOT NULL,
        corrected_at TEXT NOT NULL, row_condition TEXT, client_id TEXT)""",
    "CREATE INDEX IF NOT EXISTS corrections_count ON corrections(count_id)",
    """CREATE TABLE IF NOT EXISTS outbox (
        id TEXT PRIMARY KEY, count_id TEXT NOT NULL UNIQUE REFERENCES counts(id),
        session_id TEXT NOT NULL, walker TEXT NOT NULL, location TEXT,
        rows_json TEXT NOT NULL, created_at TEXT NOT NULL, revises TEXT)""",
    """CREATE TABLE IF NOT EXISTS outbox_delivery (
        entry_id TEXT NOT NULL REFERENCES outbox(id), sink TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0, delivered_at TEXT, last_error TEXT,
        retry_at TEXT, PRIMARY KEY (entry_id, sink))""",
)

# Columns added after versions 1, 2 and 3 (table, column): an older database gets those it
# lacks on opening (then these indexes).
_MIGRATE_FROM_3: tuple[tuple[str, str], ...] = (("devices", "token_at"),)
_MIGRATE_FROM_2: tuple[tuple[str, str], ...] = (
    *(("counts", column)
      for column in ("bay_id", "replaces", "part_of", "superseded_by", "location_choice",
                     "recount_note", "recount_by", "recount_at")),
    ("outbox", "revises"),
    ("devices", "last_seen"),
    ("devices", "revoked_at"),
    *_MIGRATE_FROM_3,
)
_MIGRATE_FROM_1: tuple[tuple[str, str], ...] = (
    ("corrections", "row_condition"),
    ("corrections", "client_id"),
    *_MIGRATE_FROM_2,
)
_MIGRATIONS = {"1": _MIGRATE_FROM_1, "2": _MIGRATE_FROM_2, "3": _MIGRATE_FROM_3}
_DDL_AFTER_MIGRATION: tuple[str, ...] = (
    # NULL client ids (corrections sent without one) never collide.
    "CREATE UNIQUE INDEX IF NOT EXISTS corrections_client ON corrections(count_id, client_id)",
    "CREATE INDEX IF NOT EXISTS counts_bay ON counts(bay_id)",
)

_DEVICE_COLUMNS = "id, name, role, created_at, last_seen, revoked_at, token_at"

_CORRECTION_COLUMNS = (
    "id, count_id, location, sku, model_quantity, quantity, row_json, by_device, by_name, "
    "corrected_at, row_condition, client_id"
)

_COUNT_COLUMNS = (
    "id, session_id, device_id, client_id, source, location, photo_hash, photo_bytes, status, "
    "attempts, error_code, error_message, result_json, created_at, updated_at, finished_at, "
    "confirmed_at, confirmed_by, bay_id, replaces, part_of, superseded_by, location_choice, "
    "recount_note, recount_by, recount_at"
)



def hash_token(token: str) -> str:
    """Tokens are stored hashed: a leaked database does not leak working tokens."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_id() -> str:
    return uuid.uuid4().hex


class Store:
    """Thread-safe access to the count database (SQLite file or PostgreSQL URL)."""

    def __init__(self, target: str | Path, *, schema: str | None = None) -> None:
        """``target``: a ``postgresql://`` URL or a SQLite file path.

        ``schema`` (PostgreSQL only) puts every table in that schema, created if needed; the
        tests use it to run in isolation on a shared server.
        """
        self._lock = threading.RLock()
        self._target = str(target)
        self._schema = schema
        self.is_postgres = self._target.startswith(("postgresql://", "postgres://"))
        if schema is not None and not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
            raise ValueError(f"bad schema name {schema!r}")
        self._conn: Any = None
        self._connect()
        with self._tx() as cur:
            for statement in _DDL:
                cur.execute(statement)
            cur.execute("SELECT value FROM meta WHERE key = ?", ("schema_version",))
            found = cur.fetchone()
            if found is None:
                cur.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    ("schema_version", SCHEMA_VERSION),
                )
            elif found[0] in _MIGRATIONS:
                for table, column in _MIGRATIONS[found[0]]:
                    self._add_column(cur, table, column)
                cur.execute(
                    "UPDATE meta SET value = ? WHERE key = ?", (SCHEMA_VERSION, "schema_version")
                )
            for statement in _DDL_AFTER_MIGRATION:
                cur.execute(statement)

    def _add_column(self, cur: _Cursor, table: str, column: str) -> None:
        """Add a TEXT column unless the table has it (tables created by this version do)."""
        if self.is_postgres:  # another process may be migrating at the same time
            cur.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} TEXT")
            return
        cur.execute(f"PRAGMA table_info({table})")
        if column not in {r[1] for r in cur.fetchall()}:
            cur.execute(f"ALTER TABLE {table} ADD COLUMN {column} TEXT")

    # -- connection plumbing ------------------------------------------------------------
    def _connect(self) -> None:
        if self.is_postgres:
            import psycopg

            self._conn = psycopg.connect(self._target, autocommit=True)
            if self._schema:
                self._conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self._schema}"')
                self._conn.execute(f'SET search_path TO "{self._schema}"')
        else:
            path = Path(self._target)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                str(path), check_same_thread=False, isolation_level=None, timeout=10.0
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.execute("PRAGMA busy_timeout=10000")

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.is_postgres else statement

    @contextmanager
    def _tx(self) -> Iterator[_Cursor]:
        """One transaction; everything inside commits together or not at all."""
        with self._lock:
            if self.is_postgres and (self._conn.closed or self._conn.broken):
                self._connect()
            raw = self._conn.cursor()
            cur = _Cursor(raw, self._sql)
            try:
                raw.execute("BEGIN" if self.is_postgres else "BEGIN IMMEDIATE")
                yield cur
                raw.execute("COMMIT")
            except BaseException:
                try:
                    raw.execute("ROLLBACK")
                except Exception:  # noqa: BLE001 - the original error matters more
                    pass
                raise
            finally:
                raw.close()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def drop_schema(self) -> None:
        """Tests only: remove the PostgreSQL schema this store created."""
        if self.is_postgres and self._schema:
            with self._lock:
                self._conn.execute(f'DROP SCHEMA IF EXISTS "{self._schema}" CASCADE')

    def ping(self) -> bool:
        try:
            with self._tx() as cur:
                cur.execute("SELECT 1")
                return cur.fetchone() is not None
        except Exception:  # noqa: BLE001 - health check reports, never raises
            return False

    # -- devices --------------------------------------------------------------------------
    def add_device(self, name: str, role: str = "walker") -> tuple[Device, str]:
        """Create a device (or re-pair an existing one) and return it with a fresh token.

        Re-adding a name replaces its token: the old phone stops working, which is what a
        manager wants when a phone is lost or re-paired.
        """
        name = name.strip()
        if not name or len(name) > 100:
            raise StoreError("bad_request", "device name must be 1-100 characters")
        if role not in ROLES:
            raise StoreError("bad_request", f"role must be one of {', '.join(ROLES)}")
        token = secrets.token_urlsafe(32)
        now = to_ts(utcnow())
        with self._tx() as cur:
            cur.execute("SELECT id, created_at FROM devices WHERE name = ?", (name,))
            found = cur.fetchone()
            if found:
                device_id, created = found
                cur.execute(
                    "UPDATE devices SET role = ?, token_hash = ?, revoked_at = NULL, "
                    "token_at = ? WHERE id = ?",
                    (role, hash_token(token), now, device_id),
                )
            else:
                device_id, created = new_id(), now
                cur.execute(
                    "INSERT INTO devices (id, name, role, token_hash, created_at, token_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (device_id, name, role, hash_token(token), now, now),
                )
        device = Device(device_id, name, role, from_ts(created),  # type: ignore[arg-type]
                        token_at=from_ts(now))
        return device, token

    def device_by_token(self, token: str) -> Device | None:
        if not token:
            return None
        with self._tx() as cur:
            cur.execute(
                f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE token_hash = ? AND "
                "revoked_at IS NULL", (hash_token(token),),
            )
            found = cur.fetchone()
        return None if found is None else _device(found)

    def device_by_name(self, name: str) -> Device | None:
        with self._tx() as cur:
            cur.execute(f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE name = ?", (name,))
            found = cur.fetchone()
        return None if found is None else _device(found)

    def revoke_device(self, name: str) -> Device:
        """Take a device's token away for good (its counts stay); re-pairing gives a new one."""
        now = to_ts(utcnow())
        with self._tx() as cur:
            cur.execute("SELECT id FROM devices WHERE name = ?", (name,))
            found = cur.fetchone()
            if found is None:
                raise StoreError("not_found", f"no device named {name!r}")
            cur.execute("UPDATE devices SET revoked_at = COALESCE(revoked_at, ?), "
                        "token_hash = ? WHERE id = ?",
                        (now, f"revoked:{found[0]}:{secrets.token_hex(8)}", found[0]))
            cur.execute(f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE id = ?", (found[0],))
            return _device(cur.fetchone())

    def touch_device(self, device_id: str) -> None:
        """Record that a device was just seen (the caller limits how often)."""
        with self._tx() as cur:
            cur.execute("UPDATE devices SET last_seen = ? WHERE id = ?",
                        (to_ts(utcnow()), device_id))

    def list_devices(self) -> list[Device]:
        with self._tx() as cur:
            cur.execute(f"SELECT {_DEVICE_COLUMNS} FROM devices ORDER BY name")
            return [_device(r) for r in cur.fetchall()]

    # -- sessions -------------------------------------------------------------------------
    def create_session(self, device: Device, label: str | None = None) -> Session:
        session = Session(new_id(), device.id, device.name, label, utcnow(), None)
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO sessions (id, device_id, walker, label, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (session.id, device.id, device.name, label, to_ts(session.created_at)),
            )
        return session

    def current_session(
        self, device: Device, *, max_age: timedelta = timedelta(hours=12)
    ) -> Session:
        """The device's open session of the last ``max_age`` (a new one when there is none).

        Used where a client sends photos without naming a session (REST, gRPC, cameras), so a
        fixed camera's photos of one round land in one session instead of one per photo.
        """
        since = to_ts(utcnow() - max_age)
        with self._tx() as cur:
            cur.execute(
                "SELECT id, device_id, walker, label, created_at, confirmed_at FROM sessions "
                "WHERE device_id = ? AND confirmed_at IS NULL AND created_at >= ? "
                "ORDER BY created_at DESC LIMIT 1",
                (device.id, since),
            )
            found = cur.fetchone()
        return _session(found) if found else self.create_session(device)

    def get_session(self, session_id: str) -> Session | None:
        with self._tx() as cur:
            cur.execute(
                "SELECT id, device_id, walker, label, created_at, confirmed_at FROM sessions "
                "WHERE id = ?",
                (session_id,),
            )
            found = cur.fetchone()
        return None if found is None else _session(found)

    def list_sessions(self, device_id: str | None = None, limit: int = 100) -> list[Session]:
        query = "SELECT id, device_id, walker, label, created_at, confirmed_at FROM sessions"
        params: tuple[Any, ...] = ()
        if device_id is not None:
            query += " WHERE device_id = ?"
            params = (device_id,)
        query += " ORDER BY created_at DESC LIMIT ?"
        with self._tx() as cur:
            cur.execute(query, (*params, int(limit)))
            return [_session(r) for r in cur.fetchall()]

    # -- counts ---------------------------------------------------------------------------
    def add_count(
        self,
        *,
        session_id: str,
        device_id: str,
        client_id: str,
        source: str,
        location: str | None,
        photo_hash: str,
        photo_bytes: int,
        replaces: str | None = None,
        part_of: str | None = None,
    ) -> tuple[CountRecord, bool]:
        """Record a stored photo as queued work; idempotent on (device, client id).

        Returns the count and whether it was created now. A second call with the same client
        id returns the first count unchanged (the same photo sent twice is one count).
        ``replaces`` / ``part_of``: count ids of the same session (checked by the caller); the
        photo's bay is settled when it is counted (``finish_count``).
        """
        now = to_ts(utcnow())
        with self._tx() as cur:
            existing = self._count_by_client(cur, device_id, client_id)
            if existing is not None:
                return existing, False
            count_id = new_id()
            cur.execute(
                f"INSERT INTO counts ({_COUNT_COLUMNS}) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, 'queued', 0, NULL, NULL, NULL, ?, ?, NULL, NULL, NULL, "
                "NULL, ?, ?, NULL, NULL, NULL, NULL, NULL)",
                (count_id, session_id, device_id, client_id, source, location, photo_hash,
                 int(photo_bytes), now, now, replaces, part_of),
            )
            record = self._count(cur, count_id)
        assert record is not None
        return record, True

    def get_count(self, count_id: str) -> CountRecord | None:
        with self._tx() as cur:
            return self._count(cur, count_id)

    def count_by_client(self, device_id: str, client_id: str) -> CountRecord | None:
        with self._tx() as cur:
            return self._count_by_client(cur, device_id, client_id)

    def session_counts(self, session_id: str) -> list[CountRecord]:
        with self._tx() as cur:
            return self._records(cur, "session_id = ?", (session_id,))

    def _records(self, cur: _Cursor, where: str, params: Sequence[Any]) -> list[CountRecord]:
        """Counts matching ``where`` with their corrections, oldest first."""
        cur.execute(f"SELECT {_COUNT_COLUMNS} FROM counts WHERE {where} ORDER BY created_at",
                    params)
        rows = cur.fetchall()
        corrections = self._corrections_for(cur, [r[0] for r in rows])
        return [_count(r, corrections.get(r[0], ())) for r in rows]

    def unfinished_counts(self) -> list[CountRecord]:
        """Counts a restart must resume (queued, interrupted or waiting for Triton)."""
        marks = ", ".join("?" for _ in UNFINISHED)
        with self._tx() as cur:
            cur.execute(
                f"SELECT {_COUNT_COLUMNS} FROM counts WHERE status IN ({marks}) "
                "ORDER BY created_at",
                UNFINISHED,
            )
            return [_count(r, ()) for r in cur.fetchall()]

    def set_status(self, count_id: str, status: str, *, attempt: bool = False,
                   undo_attempt: bool = False) -> None:
        """Move a count to queued/processing/waiting.

        ``attempt`` counts a processing try (a photo that crashes the gateway every time is
        given up after a few); ``undo_attempt`` takes one back when the try ended because
        Triton was unreachable, which is not the photo's fault.
        """
        delta = (1 if attempt else 0) - (1 if undo_attempt else 0)
        with self._tx() as cur:
            cur.execute(
                "UPDATE counts SET status = ?, attempts = CASE WHEN attempts + ? < 0 THEN 0 "
                "ELSE attempts + ? END, updated_at = ? "
                "WHERE id = ? AND status NOT IN ('done', 'failed')",
                (status, delta, delta, to_ts(utcnow()), count_id),
            )

    def finish_count(self, count_id: str, result: dict[str, Any]) -> None:
        """Store the result and settle the photo's bay in the same transaction."""
        now = to_ts(utcnow())
        with self._tx() as cur:
            cur.execute(
                "UPDATE counts SET status = 'done', result_json = ?, error_code = NULL, "
                "error_message = NULL, updated_at = ?, finished_at = ? WHERE id = ?",
                (json.dumps(result, default=str), now, now, count_id),
            )
            record = self._count(cur, count_id)
            if record is not None and record.bay_id is None:
                self._settle_bay(cur, record)

    def _settle_bay(self, cur: _Cursor, record: CountRecord) -> None:
        """Which bay a counted photo belongs to, and which photos it replaces (or stands
        behind: a retake of an already confirmed bay, or an older photo counted late)."""
        bay, replaced, behind = settle(record, self._session_done(cur, record.session_id))
        cur.execute("UPDATE counts SET bay_id = ?, superseded_by = ? WHERE id = ?",
                    (bay, behind, record.id))
        # Parts that pointed at this photo before it was counted follow it into its bay.
        cur.execute("UPDATE counts SET bay_id = ? WHERE bay_id = ? AND id <> ?",
                    (bay, record.id, record.id))
        for old in replaced:
            cur.execute("UPDATE counts SET superseded_by = ? WHERE id = ? AND "
                        "superseded_by IS NULL AND confirmed_at IS NULL", (record.id, old))

    def _session_done(self, cur: _Cursor, session_id: str) -> list[CountRecord]:
        return self._records(cur, "session_id = ? AND status = 'done'", (session_id,))

    def bay_members(self, count_id: str) -> list[CountRecord]:
        """The photos of this count's bay (current and replaced), oldest first."""
        with self._tx() as cur:
            record = self._count(cur, count_id)
            if record is None or record.bay_id is None:
                return [record] if record else []
            return self._records(cur, "bay_id = ? AND session_id = ? AND status = 'done'",
                                 (record.bay_id, record.session_id))

    def request_recount(self, count_id: str, note: str, by: Device) -> list[CountRecord]:
        """A manager sends the bay back: its current photos carry the note until a retake
        replaces them. Refused for a confirmed bay (reopening is another step)."""
        now = to_ts(utcnow())
        with self._tx() as cur:
            record = self._count(cur, count_id)
            if record is None:
                raise StoreError("not_found", "no such count")
            check_open(record)
            parts = self._bay_parts(cur, record)
            for part in parts:
                cur.execute("UPDATE counts SET recount_note = ?, recount_by = ?, recount_at = ?, "
                            "updated_at = ? WHERE id = ?", (note, by.name, now, now, part.id))
            return [self._count(cur, part.id) for part in parts]  # type: ignore[misc]

    def reopen(self, count_id: str, by: Device) -> list[CountRecord]:
        """A manager reopens a confirmed bay: each confirmed photo gets an open copy (same
        photo, result and corrections) that replaces it, so the bay can be corrected and
        confirmed again; the sinks then receive the new version as revising the old one."""
        with self._tx() as cur:
            record = self._count(cur, count_id)
            if record is None:
                raise StoreError("not_found", "no such count")
            if record.confirmed_at is None or not record.is_current:
                raise StoreError("not_confirmed", "only the confirmed photo of a bay can be "
                                 "reopened")
            parts = [p for p in self._bay_parts(cur, record) if p.confirmed_at is not None]
            copies = [self._reopened_copy(cur, part) for part in parts]
            cur.execute("UPDATE counts SET updated_at = ?, confirmed_by = ? WHERE id = ?",
                        (to_ts(utcnow()), f"{record.confirmed_by} (reopened by {by.name})",
                         record.id))
            return copies

    def _reopened_copy(self, cur: _Cursor, part: CountRecord) -> CountRecord:
        copy_id, now = new_id(), to_ts(utcnow())
        cur.execute("SELECT COUNT(*) FROM counts WHERE replaces = ?", (part.id,))
        client_id = f"{part.client_id[:80]}:reopen{cur.fetchone()[0] + 1}"
        cur.execute(
            f"INSERT INTO counts ({_COUNT_COLUMNS}) SELECT ?, session_id, device_id, ?, source, "
            "location, photo_hash, photo_bytes, 'done', attempts, NULL, NULL, result_json, ?, ?, "
            "?, NULL, NULL, bay_id, id, part_of, NULL, location_choice, NULL, NULL, NULL "
            "FROM counts WHERE id = ?",
            (copy_id, client_id, now, now, now, part.id))
        for c in part.corrections:
            cur.execute(
                f"INSERT INTO corrections ({_CORRECTION_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (new_id(), copy_id, c.location, c.sku, c.model_quantity, c.quantity,
                 json.dumps(c.row, default=str), c.by_device, c.by_name,
                 to_ts(c.corrected_at), c.condition, c.client_id))
        cur.execute("UPDATE counts SET superseded_by = ?, updated_at = ? WHERE id = ?",
                    (copy_id, now, part.id))
        copy = self._count(cur, copy_id)
        assert copy is not None
        return copy

    def sessions_since(self, since: datetime) -> list[Session]:
        """Every session started at or after ``since`` (a manager's day), oldest first."""
        with self._tx() as cur:
            cur.execute("SELECT id, device_id, walker, label, created_at, confirmed_at FROM "
                        "sessions WHERE created_at >= ? ORDER BY created_at", (to_ts(since),))
            return [_session(r) for r in cur.fetchall()]

    def set_location(self, count_id: str, location: str) -> CountRecord:
        """The walker's answer to a location conflict: every line of the photo moves there."""
        with self._tx() as cur:
            record = self._count(cur, count_id)
            if record is None:
                raise StoreError("not_found", "no such count")
            if record.status != "done":
                raise StoreError("not_ready", f"count is {record.status}, not counted yet")
            if record.confirmed_at is not None:
                raise StoreError("already_confirmed", "the bay is confirmed; its location "
                                 "is closed")
            cur.execute("UPDATE counts SET location_choice = ?, updated_at = ? WHERE id = ?",
                        (location, to_ts(utcnow()), count_id))
            updated = self._count(cur, count_id)
        assert updated is not None
        return updated

    def fail_count(self, count_id: str, code: str, message: str) -> None:
        now = to_ts(utcnow())
        with self._tx() as cur:
            cur.execute(
                "UPDATE counts SET status = 'failed', error_code = ?, error_message = ?, "
                "updated_at = ?, finished_at = ? WHERE id = ?",
                (code, message[:500], now, now, count_id),
            )

    # -- corrections and confirmation ------------------------------------------------------
    def correct(self, count_id: str, fix: CorrectionMessage, *, by: Device,
                catalog: dict[str, Any] | None = None) -> CountRecord:
        """Set one line's quantity (and Condition, expiry, SKU), keeping the model's figure
        and who/when. ``fix`` is already valid as a message (gateway.schema.Correction); what
        is checked here depends on the count.

        ``fix.condition`` is what the person saw, e.g. "Damaged"; None keeps the line's
        Condition. ``fix.expiry`` (ISO date, "" for none) fixes a misread date. ``new_sku``: the
        line is another product (or the unidentified line, ``sku`` "", is this one): the line
        is taken out and its items join ``new_sku``'s line; ``catalog`` then describes
        ``new_sku``. ``split`` (n, Condition): n of the line's items go to a line of their own
        with that Condition (e.g. 2 of 12 Damaged). Refused once the bay is confirmed: what
        the sinks received must stay what the store shows.

        Idempotent, because phones re-send what they are not sure arrived: a
        ``correction_id`` already recorded for this count returns the count unchanged, and so
        does, without one, a correction identical to the line's latest one by the same device
        (same quantity and Condition). Both are checked before the confirmation, so a re-sent
        correction that arrived before the bay was confirmed is not an error.
        """
        sku, new_sku, client_id = fix.sku, fix.new_sku, fix.correction_id
        now = utcnow()
        with self._tx() as cur:
            record = self._count(cur, count_id)
            if record is None:
                raise StoreError("not_found", "no such count")
            if already_recorded(record, by=by, sku=new_sku or sku, location=fix.location,
                                 quantity=fix.quantity, condition=fix.condition,
                                 client_id=client_id, expiry=fix.expiry):
                return record
            check_open(record)
            lines = corrected_lines(record, sku=sku, quantity=fix.quantity,
                                    location=fix.location, catalog=catalog,
                                    condition=fix.condition, now=now, new_sku=new_sku,
                                    expiry=fix.expiry)
            if fix.split is not None:
                lines = split_lines(record, lines, (fix.split.quantity, fix.split.condition),
                                    now)
            for i, (line_sku, model_quantity, row) in enumerate(lines):
                cid = client_id if client_id is None or i == len(lines) - 1 else (
                    f"{client_id[:90]}:{i}")
                cur.execute(
                    f"INSERT INTO corrections ({_CORRECTION_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (new_id(), count_id, row.get("Location"), line_sku, model_quantity,
                     int(row["Quantity_Counted"]), json.dumps(row, default=str), by.id,
                     by.name, to_ts(now), fix.condition if line_sku == (new_sku or sku) else None,
                     cid),
                )
            cur.execute("UPDATE counts SET updated_at = ? WHERE id = ?", (to_ts(now), count_id))
            updated = self._count(cur, count_id)
        assert updated is not None
        return updated

    def confirm_count(self, count_id: str, by: Device) -> tuple[CountRecord, bool]:
        """Confirm a bay: its effective rows go into the outbox in the same transaction.

        Returns (count, newly_confirmed); confirming again changes nothing.
        """
        with self._tx() as cur:
            return self._confirm(cur, count_id, by)

    def confirm_session(self, session_id: str, by: Device) -> list[tuple[CountRecord, bool]]:
        """Confirm every counted bay of a session (one transaction) and close the session.

        Counts that are not counted (queued/failed) are returned unconfirmed so the caller
        can tell the person.
        """
        out: list[tuple[CountRecord, bool]] = []
        with self._tx() as cur:
            cur.execute("SELECT id FROM sessions WHERE id = ?", (session_id,))
            if cur.fetchone() is None:
                raise StoreError("not_found", "no such session")
            cur.execute(
                "SELECT id, status FROM counts WHERE session_id = ? ORDER BY created_at",
                (session_id,),
            )
            for count_id, status in cur.fetchall():
                record = self._count(cur, count_id)
                assert record is not None
                if status != "done" or not record.is_current:
                    out.append((record, False))
                    continue
                try:
                    out.append(self._confirm(cur, count_id, by))
                except StoreError:  # e.g. a location conflict: the walker must decide
                    out.append((record, False))
            cur.execute(
                "UPDATE sessions SET confirmed_at = ? WHERE id = ? AND confirmed_at IS NULL",
                (to_ts(utcnow()), session_id),
            )
        return out

    def _confirm(self, cur: _Cursor, count_id: str, by: Device) -> tuple[CountRecord, bool]:
        """Confirm the photo's bay: all its current photos, their lines summed in one entry."""
        record = self._count(cur, count_id)
        if record is None:
            raise StoreError("not_found", "no such count")
        if record.confirmed_at is not None:
            return record, False
        if record.status != "done":
            raise StoreError("not_ready", f"count is {record.status}, not counted yet")
        if not record.is_current:
            raise StoreError("superseded", "this photo was replaced by another photo of the "
                             "bay (or its bay was confirmed before); confirm the current one")
        parts = self._bay_parts(cur, record)
        for part in parts:
            conflict = location_conflict(part)
            if conflict is not None:
                raise StoreError("location_conflict", f"{conflict['message']}: choose the "
                                 "location first")
        rows = sum_rows([part.rows for part in parts])
        cur.execute("SELECT walker FROM sessions WHERE id = ?", (record.session_id,))
        walker = cur.fetchone()[0]
        location = bay_location(record)
        now = to_ts(utcnow())
        for part in parts:
            cur.execute(
                "UPDATE counts SET confirmed_at = ?, confirmed_by = ?, updated_at = ? "
                "WHERE id = ? AND confirmed_at IS NULL",
                (now, by.name, now, part.id),
            )
        revises = None
        if record.bay_id is not None:  # a reopened bay: its last confirmation is replaced
            cur.execute("SELECT o.id FROM outbox o JOIN counts c ON c.id = o.count_id "
                        "WHERE c.bay_id = ? AND c.session_id = ? ORDER BY o.created_at DESC",
                        (record.bay_id, record.session_id))
            found = cur.fetchone()
            revises = found[0] if found else None
        cur.execute(
            "INSERT INTO outbox (id, count_id, session_id, walker, location, rows_json, "
            "created_at, revises) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (new_id(), count_id, record.session_id, walker, location or None,
             json.dumps(rows, default=str), now, revises),
        )
        confirmed = self._count(cur, count_id)
        assert confirmed is not None
        return confirmed, True

    def _bay_parts(self, cur: _Cursor, record: CountRecord) -> list[CountRecord]:
        """The current photos of the record's bay; refused while one is still being counted."""
        if record.bay_id is None:
            return [record]
        parts = self._records(cur, "session_id = ? AND superseded_by IS NULL AND "
                              "(bay_id = ? OR part_of = ? OR id = ?)",
                              (record.session_id, record.bay_id, record.bay_id, record.id))
        if any(p.status in UNFINISHED for p in parts):
            raise StoreError("not_ready", "another photo of this bay is still being counted")
        return [p for p in parts if p.status == "done"]

    def session_rows(self, session_id: str) -> list[dict[str, Any]]:
        """Confirmed rows of a session, as delivered to the sinks (for ``shelfcount export``)."""
        with self._tx() as cur:
            cur.execute(
                "SELECT rows_json FROM outbox WHERE session_id = ? ORDER BY created_at, id",
                (session_id,),
            )
            return [row for (text,) in cur.fetchall() for row in json.loads(text)]

    # -- outbox ---------------------------------------------------------------------------
    def outbox_due(self, sink: str, now: datetime, limit: int) -> list[OutboxEntry]:
        """Entries not yet delivered to ``sink`` whose retry time has come, oldest first."""
        with self._tx() as cur:
            cur.execute(
                "SELECT o.id, o.count_id, o.session_id, o.walker, o.location, o.rows_json, "
                "o.created_at, o.revises FROM outbox o LEFT JOIN outbox_delivery d "
                "ON d.entry_id = o.id AND d.sink = ? "
                "WHERE d.delivered_at IS NULL AND (d.retry_at IS NULL OR d.retry_at <= ?) "
                "ORDER BY o.created_at, o.id LIMIT ?",
                (sink, to_ts(now), int(limit)),
            )
            return [
                OutboxEntry(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), from_ts(r[6]),  # type: ignore[arg-type]
                            r[7])
                for r in cur.fetchall()
            ]

    def outbox_entries(self, session_id: str) -> list[OutboxEntry]:
        """All outbox entries of a session (delivered or not), for re-sending on demand."""
        with self._tx() as cur:
            cur.execute(
                "SELECT id, count_id, session_id, walker, location, rows_json, created_at, "
                "revises FROM outbox WHERE session_id = ? ORDER BY created_at, id",
                (session_id,),
            )
            return [
                OutboxEntry(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), from_ts(r[6]),  # type: ignore[arg-type]
                            r[7])
                for r in cur.fetchall()
            ]

    def outbox_mark_delivered(self, entry_id: str, sink: str) -> None:
        self._delivery(entry_id, sink, delivered=True, error=None, retry_at=None)

    def outbox_mark_failed(
        self, entry_id: str, sink: str, error: str, retry_at: datetime
    ) -> None:
        self._delivery(entry_id, sink, delivered=False, error=error[:1000], retry_at=retry_at)

    def outbox_status(self, entry_id: str) -> dict[str, dict[str, Any]]:
        """Per sink: attempts, delivered_at, last_error, retry_at (for doctor / tests)."""
        with self._tx() as cur:
            cur.execute(
                "SELECT sink, attempts, delivered_at, last_error, retry_at FROM outbox_delivery "
                "WHERE entry_id = ?",
                (entry_id,),
            )
            return {
                r[0]: {"attempts": r[1], "delivered_at": from_ts(r[2]), "last_error": r[3],
                       "retry_at": from_ts(r[4])}
                for r in cur.fetchall()
            }

    def _delivery(
        self, entry_id: str, sink: str, *, delivered: bool, error: str | None,
        retry_at: datetime | None,
    ) -> None:
        now = to_ts(utcnow())
        with self._tx() as cur:
            cur.execute("SELECT 1 FROM outbox WHERE id = ?", (entry_id,))
            if cur.fetchone() is None:
                raise StoreError("not_found", f"no outbox entry {entry_id}")
            cur.execute(
                "SELECT attempts FROM outbox_delivery WHERE entry_id = ? AND sink = ?",
                (entry_id, sink),
            )
            found = cur.fetchone()
            values = (now if delivered else None, error,
                      None if retry_at is None else to_ts(retry_at))
            if found is None:
                cur.execute(
                    "INSERT INTO outbox_delivery (entry_id, sink, attempts, delivered_at, "
                    "last_error, retry_at) VALUES (?, ?, 1, ?, ?, ?)",
                    (entry_id, sink, *values),
                )
            else:
                cur.execute(
                    "UPDATE outbox_delivery SET attempts = attempts + 1, delivered_at = ?, "
                    "last_error = ?, retry_at = ? WHERE entry_id = ? AND sink = ?",
                    (*values, entry_id, sink),
                )

    # -- retention ------------------------------------------------------------------------
    def expired_photos(self, before: datetime, limit: int = 1000) -> list[tuple[str, str]]:
        """(count id, photo hash) of finished counts older than ``before`` still holding a photo."""
        with self._tx() as cur:
            cur.execute(
                "SELECT id, photo_hash FROM counts WHERE created_at < ? AND "
                "status IN ('done', 'failed') AND photo_purged_at IS NULL "
                "ORDER BY created_at LIMIT ?",
                (to_ts(before), int(limit)),
            )
            return [(r[0], r[1]) for r in cur.fetchall()]

    def mark_purged(self, count_ids: Sequence[str]) -> None:
        now = to_ts(utcnow())
        with self._tx() as cur:
            for count_id in count_ids:
                cur.execute(
                    "UPDATE counts SET photo_purged_at = ? WHERE id = ?", (now, count_id)
                )

    def photo_in_use(self, photo_hash: str) -> bool:
        """Whether any count still needs this photo file (unpurged)."""
        with self._tx() as cur:
            cur.execute(
                "SELECT 1 FROM counts WHERE photo_hash = ? AND photo_purged_at IS NULL LIMIT 1",
                (photo_hash,),
            )
            return cur.fetchone() is not None

    # -- helpers --------------------------------------------------------------------------
    def _count(self, cur: _Cursor, count_id: str) -> CountRecord | None:
        cur.execute(f"SELECT {_COUNT_COLUMNS} FROM counts WHERE id = ?", (count_id,))
        found = cur.fetchone()
        if found is None:
            return None
        return _count(found, self._corrections_for(cur, [count_id]).get(count_id, ()))

    def _count_by_client(self, cur: _Cursor, device_id: str, client_id: str) -> CountRecord | None:
        cur.execute(
            "SELECT id FROM counts WHERE device_id = ? AND client_id = ?", (device_id, client_id)
        )
        found = cur.fetchone()
        return None if found is None else self._count(cur, found[0])

    def _corrections_for(
        self, cur: _Cursor, count_ids: Sequence[str]
    ) -> dict[str, tuple[Correction, ...]]:
        out: dict[str, list[Correction]] = {}
        for start in range(0, len(count_ids), 500):
            chunk = list(count_ids[start:start + 500])
            if not chunk:
                break
            marks = ", ".join("?" for _ in chunk)
            cur.execute(
                f"SELECT {_CORRECTION_COLUMNS} FROM corrections WHERE count_id IN ({marks}) "
                "ORDER BY corrected_at, id",
                chunk,
            )
            for r in cur.fetchall():
                out.setdefault(r[1], []).append(
                    Correction(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), r[7], r[8],
                               from_ts(r[9]), r[10], r[11])  # type: ignore[arg-type]
                )
        return {k: tuple(v) for k, v in out.items()}


class _Cursor:
    """A DB-API cursor that takes ``?`` placeholders on both back-ends."""

    def __init__(self, raw: Any, translate: Any) -> None:
        self._raw = raw
        self._translate = translate

    def execute(self, statement: str, params: Sequence[Any] = ()) -> None:
        self._raw.execute(self._translate(statement), tuple(params))

    def fetchone(self) -> Any:
        return self._raw.fetchone()

    def fetchall(self) -> list[Any]:
        return list(self._raw.fetchall())


def _device(r: Sequence[Any]) -> Device:
    return Device(r[0], r[1], r[2], from_ts(r[3]), from_ts(r[4]),  # type: ignore[arg-type]
                  from_ts(r[5]), from_ts(r[6]))


def _session(r: Sequence[Any]) -> Session:
    return Session(r[0], r[1], r[2], r[3], from_ts(r[4]), from_ts(r[5]))  # type: ignore[arg-type]


def _count(r: Sequence[Any], corrections: Sequence[Correction]) -> CountRecord:
    return CountRecord(
        id=r[0], session_id=r[1], device_id=r[2], client_id=r[3], source=r[4], location=r[5],
        photo_hash=r[6], photo_bytes=r[7], status=r[8], attempts=r[9], error_code=r[10],
        error_message=r[11], result=None if r[12] is None else json.loads(r[12]),
        created_at=from_ts(r[13]), updated_at=from_ts(r[14]),  # type: ignore[arg-type]
        finished_at=from_ts(r[15]), confirmed_at=from_ts(r[16]), confirmed_by=r[17],
        corrections=tuple(corrections), bay_id=r[18], replaces=r[19], part_of=r[20],
        superseded_by=r[21], location_choice=r[22], recount_note=r[23], recount_by=r[24],
        recount_at=from_ts(r[25]),
    )
