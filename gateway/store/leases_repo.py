"""Count leases: several gateway replicas on one database share the stored photos to count.

Why: a replica that acknowledged a photo and then died must not leave it uncounted, and two
replicas must not count one photo at once. A replica takes a photo by writing its name and a
deadline on the count (a conditional UPDATE: atomic on SQLite and PostgreSQL), renews the
deadline while it holds the photo, and any replica may take over a photo whose deadline has
passed. Looking for such photos uses ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so replicas
polling at once each get different rows instead of queueing behind each other's locks.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update

from .engine import Database
from .tables import counts
from .types import UNFINISHED, to_ts, utcnow

c = counts.c


def replica_owner() -> str:
    """A lease holder's name: machine, process id, and a random part (one per worker), so a
    replica can tell a dead process of its own machine from a live one elsewhere."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def dead_local_owner(owner: str) -> bool:
    """Whether ``owner`` (a :func:`replica_owner` name) is a process of this machine that is
    gone: its leases need not run out before a restarted gateway takes its work over."""
    host, _, pid = owner.rsplit(":", 1)[0].rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    return False


def _free(now: str, owner: str):  # noqa: ANN202 - a SQLAlchemy condition
    """Not leased, leased by ``owner``, or leased with its deadline passed."""
    return or_(c.lease_until.is_(None), c.lease_until < now, c.lease_owner == owner)


class LeaseRepository:
    """Leases on unfinished counts (see the module docstring)."""

    db: Database

    def claim_count(self, count_id: str, owner: str, lease_s: float,
                    now: datetime | None = None) -> bool:
        """Take (or keep) the lease on one unfinished count; False when another replica
        holds it, or the count is finished."""
        now = now or utcnow()
        with self.db.tx() as conn:
            done = conn.execute(update(counts).where(
                (c.id == count_id) & c.status.in_(UNFINISHED) & _free(to_ts(now), owner))
                .values(lease_owner=owner, lease_until=to_ts(now + timedelta(seconds=lease_s))))
            return done.rowcount == 1

    def claim_expired(self, owner: str, lease_s: float, limit: int = 50,
                      now: datetime | None = None) -> list[str]:
        """Take the unfinished counts nobody holds (a dead replica's, or never leased),
        oldest first; returns their ids."""
        now = now or utcnow()
        stamp = to_ts(now)
        with self.db.tx() as conn:
            query = (select(c.id).where(c.status.in_(UNFINISHED)
                                        & or_(c.lease_until.is_(None), c.lease_until < stamp))
                     .order_by(c.created_at).limit(limit).with_for_update(skip_locked=True))
            ids = list(conn.execute(query).scalars())
            if ids:
                conn.execute(update(counts).where(c.id.in_(ids)).values(
                    lease_owner=owner, lease_until=to_ts(now + timedelta(seconds=lease_s))))
            return ids

    def take_over(self, dead_owner: str, owner: str, lease_s: float,
                  now: datetime | None = None) -> list[str]:
        """Take every unfinished count ``dead_owner`` holds (a process on this machine that
        is gone: its leases need not run out first); returns their ids."""
        now = now or utcnow()
        with self.db.tx() as conn:
            ids = list(conn.execute(select(c.id).where(
                c.status.in_(UNFINISHED) & (c.lease_owner == dead_owner))).scalars())
            if ids:
                conn.execute(update(counts).where(
                    c.id.in_(ids) & (c.lease_owner == dead_owner)).values(
                    lease_owner=owner, lease_until=to_ts(now + timedelta(seconds=lease_s))))
            return ids

    def release_leases(self, owner: str) -> None:
        """Give up every lease ``owner`` holds (a replica stopping cleanly)."""
        with self.db.tx() as conn:
            conn.execute(update(counts).where(c.lease_owner == owner).values(
                lease_owner=None, lease_until=None))

    def lease_owners(self) -> set[str]:
        """Who holds leases on unfinished counts."""
        with self.db.tx() as conn:
            return set(conn.execute(select(c.lease_owner).distinct().where(
                c.status.in_(UNFINISHED) & c.lease_owner.is_not(None))).scalars())

    def renew_leases(self, count_ids: Sequence[str], owner: str, lease_s: float,
                     now: datetime | None = None) -> set[str]:
        """Push the deadline of the leases ``owner`` still holds; returns those ids (one
        missing was taken over: its holder was too slow to renew)."""
        if not count_ids:
            return set()
        now = now or utcnow()
        with self.db.tx() as conn:
            conn.execute(update(counts).where(
                c.id.in_(list(count_ids)) & (c.lease_owner == owner)
                & c.status.in_(UNFINISHED)).values(
                lease_until=to_ts(now + timedelta(seconds=lease_s))))
            return set(conn.execute(select(c.id).where(
                c.id.in_(list(count_ids)) & (c.lease_owner == owner))).scalars())
