"""The outbox: each confirmed bay's rows, and per sink whether they were delivered (so every
sink gets every confirmation exactly once, after restarts and outages)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, case, exists, func, or_, select, update

from .devices_repo import new_id
from .engine import Database, insert_unless_present
from .tables import counts, outbox, outbox_delivery
from .types import OutboxEntry, StoreError, from_ts, to_ts, utcnow

o, d = outbox.c, outbox_delivery.c
REOPENED = "Reopened"  # session_rows: the row's bay was reopened and confirmed again


class OutboxRepository:
    """The ``outbox`` and ``outbox_delivery`` tables."""

    db: Database

    def outbox_totals(self, sinks: list[str]) -> dict[str, dict[str, int]]:
        """Per sink: entries delivered, entries still waiting, and retries (attempts after
        the first), for /metrics."""
        with self.db.tx() as conn:
            entries = int(conn.execute(select(func.count()).select_from(outbox)).scalar_one())
            # a delivery row is written when an entry is first claimed (attempts 0)
            retries = func.sum(case((d.attempts > 1, d.attempts - 1), else_=0))
            rows = conn.execute(select(d.sink, func.count(d.delivered_at),
                                       func.coalesce(retries, 0))
                                .group_by(d.sink)).all()
        seen = {r[0]: (int(r[1]), int(r[2])) for r in rows}
        return {sink: {"delivered": seen.get(sink, (0, 0))[0],
                       "waiting": entries - seen.get(sink, (0, 0))[0],
                       "retries": seen.get(sink, (0, 0))[1]} for sink in sinks}

    def outbox_due(self, sink: str, now: datetime, limit: int) -> list[OutboxEntry]:
        """Entries not yet delivered to ``sink`` whose retry time has come, oldest first."""
        query = (select(outbox).select_from(outbox.outerjoin(
                     outbox_delivery, and_(d.entry_id == o.id, d.sink == sink)))
                 .where(d.delivered_at.is_(None),
                        or_(d.retry_at.is_(None), d.retry_at <= to_ts(now)))
                 .order_by(o.created_at, o.id).limit(int(limit)))
        with self.db.tx() as conn:
            return [_entry(r) for r in conn.execute(query).mappings()]

    def outbox_claim(self, sink: str, owner: str, now: datetime, limit: int,
                     lease_s: float) -> list[OutboxEntry]:
        """Due entries for ``sink`` that no other gateway replica is delivering, leased to
        ``owner`` for ``lease_s`` seconds (oldest first).

        Why: replicas on one database would otherwise each deliver every entry. The lease
        sits on the entry's delivery row, written here when missing; on PostgreSQL the rows
        are picked ``FOR UPDATE SKIP LOCKED``, so replicas claiming at once get different
        entries instead of waiting for each other. A replica that dies leaves its claims to
        the others once the lease runs out.
        """
        stamp = to_ts(now)
        with self.db.tx() as conn:
            self._add_delivery_rows(conn, sink, limit)
            query = (select(d.entry_id).select_from(outbox_delivery.join(outbox,
                                                                          o.id == d.entry_id))
                     .where(d.sink == sink, d.delivered_at.is_(None),
                            or_(d.retry_at.is_(None), d.retry_at <= stamp),
                            or_(d.lease_until.is_(None), d.lease_until < stamp,
                                d.lease_owner == owner))
                     .order_by(o.created_at, o.id).limit(int(limit))
                     .with_for_update(of=outbox_delivery, skip_locked=True))
            ids = list(conn.execute(query).scalars())
            if not ids:
                return []
            until = to_ts(now + timedelta(seconds=lease_s))
            conn.execute(update(outbox_delivery).where(d.sink == sink, d.entry_id.in_(ids))
                         .values(lease_owner=owner, lease_until=until))
            rows = {r["id"]: r for r in conn.execute(select(outbox).where(o.id.in_(ids)))
                    .mappings()}
            return [_entry(rows[i]) for i in ids]

    def outbox_renew(self, entry_ids: Sequence[str], sink: str, owner: str,
                     lease_s: float, now: datetime | None = None) -> None:
        """Push the deadline of ``owner``'s claims (a slow destination: the delivery is still
        running)."""
        if not entry_ids:
            return
        until = to_ts((now or utcnow()) + timedelta(seconds=lease_s))
        with self.db.tx() as conn:
            conn.execute(update(outbox_delivery).where(
                d.sink == sink, d.entry_id.in_(list(entry_ids)), d.lease_owner == owner)
                .values(lease_until=until))

    def outbox_release(self, owner: str) -> None:
        """Give up every delivery claim ``owner`` holds (a replica stopping cleanly)."""
        with self.db.tx() as conn:
            conn.execute(update(outbox_delivery).where(d.lease_owner == owner)
                         .values(lease_owner=None, lease_until=None))

    def outbox_owners(self) -> set[str]:
        """Who holds delivery claims (live or not)."""
        with self.db.tx() as conn:
            return set(conn.execute(select(d.lease_owner).distinct().where(
                d.lease_owner.is_not(None))).scalars())

    def _add_delivery_rows(self, conn: Connection, sink: str, limit: int) -> None:
        """A delivery row (no attempt yet) for the oldest entries ``sink`` has none for, so a
        claim has a row to lock; two replicas adding the same one at once is not an error."""
        missing = list(conn.execute(
            select(o.id).where(~exists().where(d.entry_id == o.id, d.sink == sink))
            .order_by(o.created_at, o.id).limit(int(limit))).scalars())
        if not missing:
            return
        conn.execute(insert_unless_present(conn, outbox_delivery)
                     .values([{"entry_id": i, "sink": sink, "attempts": 0} for i in missing]))

    def outbox_entries(self, session_id: str) -> list[OutboxEntry]:
        """All outbox entries of a session (delivered or not), for re-sending on demand."""
        with self.db.tx() as conn:
            rows = conn.execute(select(outbox).where(o.session_id == session_id)
                                .order_by(o.created_at, o.id)).mappings()
            return [_entry(r) for r in rows]

    def session_rows(self, session_id: str) -> list[dict[str, Any]]:
        """Confirmed rows of a session as they stand (the drop folder's files): a bay that was
        reopened and confirmed again counts with its latest rows only, those marked ``Reopened``."""
        entries = self.outbox_entries(session_id)
        revised = {e.revises for e in entries if e.revises}
        return [{**row, REOPENED: True} if entry.revises else row for entry in entries
                if entry.id not in revised for row in entry.rows]

    def session_findings(self, session_id: str) -> list[dict[str, Any]]:
        """The shelf audit findings of a session's confirmed bays as they stand (a reopened
        bay's latest confirmation only)."""
        entries = self.outbox_entries(session_id)
        revised = {e.revises for e in entries if e.revises}
        return [f for entry in entries if entry.id not in revised for f in entry.findings]

    def outbox_mark_delivered(self, entry_id: str, sink: str) -> None:
        self._delivery(entry_id, sink, delivered=True, error=None, retry_at=None)

    def outbox_mark_failed(self, entry_id: str, sink: str, error: str,
                           retry_at: datetime) -> None:
        self._delivery(entry_id, sink, delivered=False, error=error[:1000], retry_at=retry_at)

    def outbox_status(self, entry_id: str) -> dict[str, dict[str, Any]]:
        """Per sink: attempts, delivered_at, last_error, retry_at (for doctor / tests)."""
        with self.db.tx() as conn:
            rows = conn.execute(select(outbox_delivery).where(d.entry_id == entry_id)).mappings()
            return {r["sink"]: {"attempts": r["attempts"],
                                "delivered_at": from_ts(r["delivered_at"]),
                                "last_error": r["last_error"], "retry_at": from_ts(r["retry_at"])}
                    for r in rows}

    def _delivery(self, entry_id: str, sink: str, *, delivered: bool, error: str | None,
                  retry_at: datetime | None) -> None:
        values = {"delivered_at": to_ts(utcnow()) if delivered else None, "last_error": error,
                  "retry_at": None if retry_at is None else to_ts(retry_at),
                  "lease_owner": None, "lease_until": None}
        with self.db.tx() as conn:
            if conn.execute(select(o.id).where(o.id == entry_id)).first() is None:
                raise StoreError("not_found", f"no outbox entry {entry_id}")
            key = and_(d.entry_id == entry_id, d.sink == sink)
            if conn.execute(select(d.attempts).where(key)).first() is None:
                conn.execute(outbox_delivery.insert().values(entry_id=entry_id, sink=sink,
                                                             attempts=1, **values))
            else:
                conn.execute(update(outbox_delivery).where(key)
                             .values(attempts=d.attempts + 1, **values))


def add_entry(conn: Connection, *, count_id: str, session_id: str, walker: str,
              location: str | None, rows: list[dict[str, Any]], created_at: str,
              revises: str | None, findings: list[dict[str, Any]] | None = None) -> None:
    """A confirmed bay's rows (and its photos' audit findings), written in the
    confirmation's transaction."""
    conn.execute(outbox.insert().values(
        id=new_id(), count_id=count_id, session_id=session_id, walker=walker,
        location=location, rows_json=json.dumps(rows, default=str), created_at=created_at,
        revises=revises, findings_json=json.dumps(findings or [])))


def latest_entry_of_bay(conn: Connection, bay_id: str, session_id: str) -> str | None:
    """The bay's last confirmation (a reopened bay's new one revises it)."""
    return conn.execute(
        select(o.id).select_from(outbox.join(counts, counts.c.id == o.count_id))
        .where(counts.c.bay_id == bay_id, counts.c.session_id == session_id)
        .order_by(o.created_at.desc()).limit(1)).scalar()


def _entry(r: Any) -> OutboxEntry:
    return OutboxEntry(r["id"], r["count_id"], r["session_id"], r["walker"], r["location"],
                       json.loads(r["rows_json"]), from_ts(r["created_at"]),  # type: ignore[arg-type]
                       r["revises"], json.loads(r["findings_json"] or "[]"))
