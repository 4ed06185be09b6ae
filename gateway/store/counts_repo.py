"""Sessions and counts: a walker's round, each stored photo's count, its bay, confirmation
(which writes the outbox in the same transaction) and photo retention."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, case, func, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from .bays import bay_location, location_conflict, settle, sum_rows
from .corrections import check_open
from .corrections_repo import box_edits_for, copy_corrections, corrections_for
from .devices_repo import new_id
from .engine import Database
from .outbox_repo import add_entry, latest_entry_of_bay
from .tables import counts, sessions
from .types import (
    UNFINISHED,
    BoxEdit,
    Correction,
    CountRecord,
    Device,
    Session,
    StoreError,
    from_ts,
    to_ts,
    utcnow,
)

c = counts.c


class CountRepository:
    """The ``sessions`` and ``counts`` tables."""

    db: Database

    # -- sessions ---------------------------------------------------------------------------
    def create_session(self, device: Device, label: str | None = None) -> Session:
        session = Session(new_id(), device.id, device.name, label, utcnow(), None)
        with self.db.tx() as conn:
            conn.execute(sessions.insert().values(
                id=session.id, device_id=device.id, walker=device.name, label=label,
                created_at=to_ts(session.created_at)))
        return session

    def current_session(
        self, device: Device, *, max_age: timedelta = timedelta(hours=12)
    ) -> Session:
        """The device's open session of the last ``max_age`` (a new one when there is none).

        Used where a client sends photos without naming a session (REST, gRPC, cameras), so a
        fixed camera's photos of one round land in one session instead of one per photo.
        """
        since = to_ts(utcnow() - max_age)
        found = self._sessions((sessions.c.device_id == device.id)
                               & sessions.c.confirmed_at.is_(None)
                               & (sessions.c.created_at >= since),
                               sessions.c.created_at.desc(), limit=1)
        return found[0] if found else self.create_session(device)

    def get_session(self, session_id: str) -> Session | None:
        found = self._sessions(sessions.c.id == session_id)
        return found[0] if found else None

    def list_sessions(self, device_id: str | None = None, limit: int = 100) -> list[Session]:
        where = sessions.c.device_id == device_id if device_id is not None else None
        return self._sessions(where, sessions.c.created_at.desc(), limit=int(limit))

    def sessions_since(self, since: datetime) -> list[Session]:
        """Every session started at or after ``since`` (a manager's day), oldest first."""
        return self._sessions(sessions.c.created_at >= to_ts(since), sessions.c.created_at)

    def _sessions(self, where: ColumnElement[bool] | None, *order: Any,
                  limit: int | None = None) -> list[Session]:
        query = select(sessions)
        if where is not None:
            query = query.where(where)
        query = query.order_by(*order).limit(limit)
        with self.db.tx() as conn:
            return [_session(r) for r in conn.execute(query).mappings()]

    # -- counts -----------------------------------------------------------------------------
    def add_count(
        self, *, session_id: str, device_id: str, client_id: str, source: str,
        location: str | None, photo_hash: str, photo_bytes: int,
        replaces: str | None = None, part_of: str | None = None,
        crops_hash: str | None = None, crops: dict[str, Any] | None = None,
    ) -> tuple[CountRecord, bool]:
        """Record a stored photo as queued work; idempotent on (device, client id).

        Returns the count and whether it was created now. A second call with the same client
        id returns the first count unchanged (the same photo sent twice is one count).
        ``replaces`` / ``part_of``: count ids of the same session (checked by the caller); the
        photo's bay is settled when it is counted (``finish_count``).
        """
        now = to_ts(utcnow())
        with self.db.tx() as conn:
            existing = self._count_by_client(conn, device_id, client_id)
            if existing is not None:
                return existing, False
            count_id = new_id()
            conn.execute(counts.insert().values(
                id=count_id, session_id=session_id, device_id=device_id, client_id=client_id,
                source=source, location=location, photo_hash=photo_hash,
                photo_bytes=int(photo_bytes), status="queued", attempts=0, created_at=now,
                updated_at=now, replaces=replaces, part_of=part_of, crops_hash=crops_hash,
                crops_json=None if crops is None else json.dumps(crops)))
            record = self._count(conn, count_id)
        assert record is not None
        return record, True

    def get_count(self, count_id: str) -> CountRecord | None:
        with self.db.tx() as conn:
            return self._count(conn, count_id)

    def count_stamps(self, count_ids: Sequence[str]) -> dict[str, str]:
        """When each count last changed (``updated_at``), for watching other replicas' work."""
        out: dict[str, str] = {}
        ids = list(count_ids)
        with self.db.tx() as conn:
            for start in range(0, len(ids), 500):
                rows = conn.execute(select(c.id, c.updated_at)
                                    .where(c.id.in_(ids[start:start + 500]))).all()
                out.update((row[0], row[1]) for row in rows)
        return out

    def count_by_client(self, device_id: str, client_id: str) -> CountRecord | None:
        with self.db.tx() as conn:
            return self._count_by_client(conn, device_id, client_id)

    def session_counts(self, session_id: str) -> list[CountRecord]:
        with self.db.tx() as conn:
            return self._records(conn, c.session_id == session_id)

    def unfinished_counts(self) -> list[CountRecord]:
        """Counts a restart must resume (queued, interrupted or waiting for Triton)."""
        with self.db.tx() as conn:
            return self._records(conn, c.status.in_(UNFINISHED), with_corrections=False)

    def set_status(self, count_id: str, status: str, *, attempt: bool = False,
                   undo_attempt: bool = False) -> None:
        """Move a count to queued/processing/waiting.

        ``attempt`` counts a processing try (a photo that crashes the gateway every time is
        given up after a few); ``undo_attempt`` takes one back when the try ended because
        Triton was unreachable, which is not the photo's fault.
        """
        delta = (1 if attempt else 0) - (1 if undo_attempt else 0)
        with self.db.tx() as conn:
            conn.execute(update(counts).where(
                (c.id == count_id) & c.status.not_in(("done", "failed"))).values(
                status=status, updated_at=to_ts(utcnow()),
                attempts=case((c.attempts + delta < 0, 0), else_=c.attempts + delta)))

    def finish_count(self, count_id: str, result: dict[str, Any], *,
                     once: bool = False) -> bool:
        """Store the result and settle the photo's bay in the same transaction. ``once`` (the
        count workers): False, and nothing changed, when the count is finished already
        (another replica was first)."""
        now = to_ts(utcnow())
        where = (c.id == count_id) & c.status.in_(UNFINISHED) if once else c.id == count_id
        with self.db.tx() as conn:
            done = conn.execute(update(counts).where(where).values(
                status="done", result_json=json.dumps(result, default=str), error_code=None,
                error_message=None, updated_at=now, finished_at=now))
            if done.rowcount != 1:
                return False
            record = self._count(conn, count_id)
            if record is not None and record.bay_id is None:
                self._settle_bay(conn, record)
        return True

    def fail_count(self, count_id: str, code: str, message: str) -> None:
        now = to_ts(utcnow())
        with self.db.tx() as conn:
            conn.execute(update(counts).where(c.id == count_id).values(
                status="failed", error_code=code, error_message=message[:500], updated_at=now,
                finished_at=now))

    # -- bays -------------------------------------------------------------------------------
    def _settle_bay(self, conn: Connection, record: CountRecord) -> None:
        """Which bay a counted photo belongs to, and which photos it replaces (or stands
        behind: a retake of an already confirmed bay, or an older photo counted late)."""
        done = self._records(conn, (c.session_id == record.session_id) & (c.status == "done"))
        bay, replaced, behind = settle(record, done)
        conn.execute(update(counts).where(c.id == record.id)
                     .values(bay_id=bay, superseded_by=behind))
        # Parts that pointed at this photo before it was counted follow it into its bay.
        conn.execute(update(counts).where((c.bay_id == record.id) & (c.id != record.id))
                     .values(bay_id=bay))
        for old in replaced:
            conn.execute(update(counts).where(
                (c.id == old) & c.superseded_by.is_(None) & c.confirmed_at.is_(None))
                .values(superseded_by=record.id))

    def bay_members(self, count_id: str) -> list[CountRecord]:
        """The photos of this count's bay (current and replaced), oldest first."""
        with self.db.tx() as conn:
            record = self._count(conn, count_id)
            if record is None or record.bay_id is None:
                return [record] if record else []
            return self._records(conn, (c.bay_id == record.bay_id)
                                 & (c.session_id == record.session_id) & (c.status == "done"))

    def request_recount(self, count_id: str, note: str, by: Device) -> list[CountRecord]:
        """A manager sends the bay back: its current photos carry the note until a retake
        replaces them. Refused for a confirmed bay (reopening is another step)."""
        now = to_ts(utcnow())
        with self.db.tx() as conn:
            record = self._required(conn, count_id)
            check_open(record)
            parts = self._bay_parts(conn, record)
            for part in parts:
                conn.execute(update(counts).where(c.id == part.id).values(
                    recount_note=note, recount_by=by.name, recount_at=now, updated_at=now))
            return [self._count(conn, part.id) for part in parts]  # type: ignore[misc]

    def reopen(self, count_id: str, by: Device) -> list[CountRecord]:
        """A manager reopens a confirmed bay: each confirmed photo gets an open copy (same
        photo, result and corrections) that replaces it, so the bay can be corrected and
        confirmed again; the sinks then receive the new version as revising the old one."""
        with self.db.tx() as conn:
            record = self._required(conn, count_id)
            if record.confirmed_at is None or not record.is_current:
                raise StoreError("not_confirmed", "only the confirmed photo of a bay can be "
                                 "reopened")
            parts = [p for p in self._bay_parts(conn, record) if p.confirmed_at is not None]
            copies = [self._reopened_copy(conn, part) for part in parts]
            conn.execute(update(counts).where(c.id == record.id).values(
                updated_at=to_ts(utcnow()),
                confirmed_by=f"{record.confirmed_by} (reopened by {by.name})"))
            return copies

    def _reopened_copy(self, conn: Connection, part: CountRecord) -> CountRecord:
        copy_id, now = new_id(), to_ts(utcnow())
        earlier = conn.execute(select(func.count()).where(c.replaces == part.id)).scalar_one()
        source = conn.execute(select(counts).where(c.id == part.id)).mappings().one()
        conn.execute(counts.insert().values({
            **source, "id": copy_id, "client_id": f"{part.client_id[:80]}:reopen{earlier + 1}",
            "status": "done", "error_code": None, "error_message": None, "created_at": now,
            "updated_at": now, "finished_at": now, "confirmed_at": None, "confirmed_by": None,
            "photo_purged_at": None, "replaces": part.id, "superseded_by": None,
            "recount_note": None, "recount_by": None, "recount_at": None}))
        copy_corrections(conn, part, copy_id)
        conn.execute(update(counts).where(c.id == part.id)
                     .values(superseded_by=copy_id, updated_at=now))
        copy = self._count(conn, copy_id)
        assert copy is not None
        return copy

    def set_location(self, count_id: str, location: str) -> CountRecord:
        """The walker's answer to a location conflict: every line of the photo moves there."""
        with self.db.tx() as conn:
            record = self._required(conn, count_id)
            if record.status != "done":
                raise StoreError("not_ready", f"count is {record.status}, not counted yet")
            if record.confirmed_at is not None:
                raise StoreError("already_confirmed", "the bay is confirmed; its location "
                                 "is closed")
            conn.execute(update(counts).where(c.id == count_id).values(
                location_choice=location, updated_at=to_ts(utcnow())))
            return self._required(conn, count_id)

    # -- confirmation -----------------------------------------------------------------------
    def confirm_count(self, count_id: str, by: Device) -> tuple[CountRecord, bool]:
        """Confirm a bay: its effective rows go into the outbox in the same transaction.

        Returns (count, newly_confirmed); confirming again changes nothing.
        """
        with self.db.tx() as conn:
            return self._confirm(conn, count_id, by)

    def confirm_session(self, session_id: str, by: Device) -> list[tuple[CountRecord, bool]]:
        """Confirm every counted bay of a session (one transaction) and close the session.

        Counts that are not counted (queued/failed) are returned unconfirmed so the caller
        can tell the person.
        """
        out: list[tuple[CountRecord, bool]] = []
        with self.db.tx() as conn:
            if conn.execute(select(sessions.c.id).where(sessions.c.id == session_id)).first() \
                    is None:
                raise StoreError("not_found", "no such session")
            ids = conn.execute(select(c.id).where(c.session_id == session_id)
                               .order_by(c.created_at)).scalars().all()
            for count_id in ids:
                record = self._required(conn, count_id)
                if record.status != "done" or not record.is_current:
                    out.append((record, False))
                    continue
                try:
                    out.append(self._confirm(conn, count_id, by))
                except StoreError:  # e.g. a location conflict: the walker must decide
                    out.append((record, False))
            conn.execute(update(sessions).where(
                (sessions.c.id == session_id) & sessions.c.confirmed_at.is_(None))
                .values(confirmed_at=to_ts(utcnow())))
        return out

    def _confirm(self, conn: Connection, count_id: str, by: Device) -> tuple[CountRecord, bool]:
        """Confirm the photo's bay: all its current photos, their lines summed in one entry."""
        record = self._required(conn, count_id)
        if record.confirmed_at is not None:
            return record, False
        if record.status != "done":
            raise StoreError("not_ready", f"count is {record.status}, not counted yet")
        if not record.is_current:
            raise StoreError("superseded", "this photo was replaced by another photo of the "
                             "bay (or its bay was confirmed before); confirm the current one")
        parts = self._bay_parts(conn, record)
        for part in parts:
            conflict = location_conflict(part)
            if conflict is not None:
                raise StoreError("location_conflict", f"{conflict['message']}: choose the "
                                 "location first")
        walker = conn.execute(select(sessions.c.walker)
                              .where(sessions.c.id == record.session_id)).scalar_one()
        now = to_ts(utcnow())
        conn.execute(update(counts).where(c.id.in_([p.id for p in parts])
                                          & c.confirmed_at.is_(None))
                     .values(confirmed_at=now, confirmed_by=by.name, updated_at=now))
        revises = None  # a reopened bay: its last confirmation is replaced
        if record.bay_id is not None:
            revises = latest_entry_of_bay(conn, record.bay_id, record.session_id)
        location = bay_location(record) or None
        add_entry(conn, count_id=count_id, session_id=record.session_id, walker=walker,
                  location=location, rows=sum_rows([part.rows for part in parts]),
                  created_at=now, revises=revises,
                  findings=[{**f, "Photo": part.id, "Location": location or ""}
                            for part in parts for f in part.findings])
        return self._required(conn, count_id), True

    def _bay_parts(self, conn: Connection, record: CountRecord) -> list[CountRecord]:
        """The current photos of the record's bay; refused while one is still being counted."""
        if record.bay_id is None:
            return [record]
        parts = self._records(conn, (c.session_id == record.session_id)
                              & c.superseded_by.is_(None)
                              & or_(c.bay_id == record.bay_id, c.part_of == record.bay_id,
                                    c.id == record.id))
        if any(p.status in UNFINISHED for p in parts):
            raise StoreError("not_ready", "another photo of this bay is still being counted")
        return [p for p in parts if p.status == "done"]

    # -- metrics ----------------------------------------------------------------------------
    def count_totals(self) -> list[tuple[str, str, str, int]]:
        """(source, status, error code or "", how many) over every stored photo: what the
        gateway's /metrics reports as totals and queue depth."""
        with self.db.tx() as conn:
            rows = conn.execute(select(c.source, c.status, func.coalesce(c.error_code, ""),
                                       func.count()).group_by(c.source, c.status, c.error_code))
            return [(r[0], r[1], r[2], int(r[3])) for r in rows]

    # -- retention --------------------------------------------------------------------------
    def expired_photos(self, before: datetime, limit: int = 1000) -> list[tuple[str, str]]:
        """(count id, file hash) of finished counts older than ``before`` still holding a
        photo: its photo and, when it came with code crops, their file too."""
        with self.db.tx() as conn:
            rows = conn.execute(select(c.id, c.photo_hash, c.crops_hash).where(and_(
                c.created_at < to_ts(before), c.status.in_(("done", "failed")),
                c.photo_purged_at.is_(None))).order_by(c.created_at).limit(int(limit)))
            return [(r[0], digest) for r in rows for digest in (r[1], r[2]) if digest]

    def mark_purged(self, count_ids: Sequence[str]) -> None:
        now = to_ts(utcnow())
        with self.db.tx() as conn:
            for count_id in count_ids:
                conn.execute(update(counts).where(c.id == count_id).values(photo_purged_at=now))

    def photo_in_use(self, photo_hash: str) -> bool:
        """Whether any count still needs this photo file (unpurged)."""
        with self.db.tx() as conn:
            return conn.execute(select(c.id).where(
                ((c.photo_hash == photo_hash) | (c.crops_hash == photo_hash))
                & c.photo_purged_at.is_(None)).limit(1)).first() is not None

    # -- reading ----------------------------------------------------------------------------
    def _count(self, conn: Connection, count_id: str) -> CountRecord | None:
        found = self._records(conn, c.id == count_id)
        return found[0] if found else None

    def _required(self, conn: Connection, count_id: str) -> CountRecord:
        record = self._count(conn, count_id)
        if record is None:
            raise StoreError("not_found", "no such count")
        return record

    def _count_by_client(self, conn: Connection, device_id: str, client_id: str
                         ) -> CountRecord | None:
        found = self._records(conn, (c.device_id == device_id) & (c.client_id == client_id))
        return found[0] if found else None

    def _records(self, conn: Connection, where: ColumnElement[bool], *,
                 with_corrections: bool = True) -> list[CountRecord]:
        """Counts matching ``where`` (with their corrections), oldest first."""
        rows = conn.execute(select(counts).where(where).order_by(c.created_at)).mappings().all()
        ids = [r["id"] for r in rows]
        fixes = corrections_for(conn, ids) if with_corrections else {}
        boxes = box_edits_for(conn, ids) if with_corrections else {}
        return [_count_record(r, fixes.get(r["id"], ()), boxes.get(r["id"])) for r in rows]


def _session(r: Any) -> Session:
    return Session(r["id"], r["device_id"], r["walker"], r["label"],
                   from_ts(r["created_at"]), from_ts(r["confirmed_at"]))  # type: ignore[arg-type]


def _count_record(r: Any, fixes: Sequence[Correction], box_edit: BoxEdit | None
                  ) -> CountRecord:
    return CountRecord(
        id=r["id"], session_id=r["session_id"], device_id=r["device_id"],
        client_id=r["client_id"], source=r["source"], location=r["location"],
        photo_hash=r["photo_hash"], photo_bytes=r["photo_bytes"], status=r["status"],
        attempts=r["attempts"], error_code=r["error_code"], error_message=r["error_message"],
        result=None if r["result_json"] is None else json.loads(r["result_json"]),
        created_at=from_ts(r["created_at"]), updated_at=from_ts(r["updated_at"]),  # type: ignore[arg-type]
        finished_at=from_ts(r["finished_at"]), confirmed_at=from_ts(r["confirmed_at"]),
        confirmed_by=r["confirmed_by"], corrections=tuple(fixes), bay_id=r["bay_id"],
        replaces=r["replaces"], part_of=r["part_of"], superseded_by=r["superseded_by"],
        location_choice=r["location_choice"], recount_note=r["recount_note"],
        recount_by=r["recount_by"], recount_at=from_ts(r["recount_at"]), box_edit=box_edit,
        crops_hash=r["crops_hash"],
        crops=None if r["crops_json"] is None else json.loads(r["crops_json"]),
    )
