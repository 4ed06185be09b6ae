"""Camera runs: which gateway replica fetches a zone's fixed cameras at a scheduled minute.

Why: every replica runs the same cron schedule; without a claim each would fetch every camera
and open a session of its own for the same round. The first replica to write the run's row
(zone, minute) holds it and renews its lease camera by camera; a run whose holder stopped
renewing before it was done is finished by another replica in the same session (the photos'
ids are zone + camera + minute, so a snapshot already stored is not counted twice).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from .engine import Database, insert_unless_present
from .tables import camera_runs
from .types import to_ts, utcnow

r = camera_runs.c


@dataclass(frozen=True)
class CameraRun:
    """A zone's round at one minute (``minute`` as its ISO text), held by this replica."""

    zone: str
    minute: str
    session_id: str | None


class CameraRunRepository:
    """The ``camera_runs`` table (see the module docstring)."""

    db: Database

    def claim_camera_run(self, zone: str, minute: str, owner: str, lease_s: float,
                         now: datetime | None = None) -> CameraRun | None:
        """Start the zone's run at ``minute``; None when another replica has started it."""
        now = now or utcnow()
        with self.db.tx() as conn:
            done = conn.execute(insert_unless_present(conn, camera_runs).values(
                zone=zone, minute=minute, lease_owner=owner, started_at=to_ts(now),
                lease_until=to_ts(now + timedelta(seconds=lease_s)))
                .returning(r.zone)).first()
            return CameraRun(zone, minute, None) if done is not None else None

    def claim_stalled_camera_runs(self, owner: str, lease_s: float, since: datetime,
                                  now: datetime | None = None) -> list[CameraRun]:
        """Take over the runs started after ``since`` that are not done and whose holder
        stopped renewing (it died half-way through its cameras)."""
        now = now or utcnow()
        stamp = to_ts(now)
        with self.db.tx() as conn:
            rows = conn.execute(
                select(r.zone, r.minute, r.session_id)
                .where(r.done_at.is_(None), r.lease_until < stamp,
                       r.started_at >= to_ts(since))
                .order_by(r.started_at, r.zone).with_for_update(skip_locked=True)).all()
            for zone, minute, _ in rows:
                conn.execute(update(camera_runs).where(r.zone == zone, r.minute == minute)
                             .values(lease_owner=owner,
                                     lease_until=to_ts(now + timedelta(seconds=lease_s))))
            return [CameraRun(*row) for row in rows]

    def camera_run_session(self, run: CameraRun, session_id: str) -> None:
        """The session the run's photos go to (kept for a replica that finishes the run)."""
        with self.db.tx() as conn:
            conn.execute(update(camera_runs).where(r.zone == run.zone, r.minute == run.minute)
                         .values(session_id=session_id))

    def renew_camera_run(self, run: CameraRun, owner: str, lease_s: float) -> bool:
        """Push the run's deadline; False when another replica has taken it over."""
        with self.db.tx() as conn:
            done = conn.execute(update(camera_runs).where(
                r.zone == run.zone, r.minute == run.minute, r.lease_owner == owner)
                .values(lease_until=to_ts(utcnow() + timedelta(seconds=lease_s))))
            return done.rowcount == 1

    def finish_camera_run(self, run: CameraRun, owner: str) -> None:
        with self.db.tx() as conn:
            conn.execute(update(camera_runs).where(
                r.zone == run.zone, r.minute == run.minute, r.lease_owner == owner)
                .values(done_at=to_ts(utcnow()), lease_owner=None, lease_until=None))
