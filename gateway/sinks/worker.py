"""The outbox worker: every confirmed bay to every configured sink, exactly once.

The outbox lives in the store (written in the transaction that confirms a bay), so nothing is
lost when the gateway stops: on start the worker simply asks the store for what is due. Per
sink and entry the store records delivery or the failure, its attempt count and the time of
the next try; the worker computes that time with exponential backoff and jitter from the
stored attempt count, so the schedule survives restarts too. Sinks are idempotent, which
covers the one gap no outbox closes: a delivery that reached the destination just before the
process died, without being recorded. Sinks run in registry order (Tryton first, since the
sheet and alerts read the system quantity it snapshots) and independently: one destination
being away does not hold up the others.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, Protocol

from gateway.store.leases_repo import dead_local_owner, replica_owner

from .base import Entry, Sink, SinkError

log = logging.getLogger(__name__)


class Outbox(Protocol):
    """What the worker needs from the store (gateway.store.Store)."""

    def outbox_claim(self, sink: str, owner: str, now: datetime, limit: int,
                     lease_s: float) -> Sequence[Entry]: ...
    def outbox_renew(self, entry_ids: Sequence[str], sink: str, owner: str,
                     lease_s: float) -> None: ...
    def outbox_release(self, owner: str) -> None: ...
    def outbox_owners(self) -> set[str]: ...
    def outbox_mark_delivered(self, entry_id: str, sink: str) -> None: ...
    def outbox_mark_failed(self, entry_id: str, sink: str, error: str,
                           retry_at: datetime) -> None: ...
    def outbox_status(self, entry_id: str) -> dict[str, dict[str, Any]]: ...


@contextmanager
def _renewing(renew: Callable[[], None], every_s: float) -> Iterator[None]:
    """Call ``renew`` every ``every_s`` seconds while the block runs (a delivery to a slow
    destination must not lose its claim to another replica half-way)."""
    done = threading.Event()

    def loop() -> None:
        while not done.wait(max(0.2, every_s)):
            try:
                renew()
            except Exception:  # noqa: BLE001 - the database away for a moment: next time
                log.exception("renewing outbox claims failed")

    thread = threading.Thread(target=loop, name="outbox-renew", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(5)


def _utcnow() -> datetime:
    from gateway.store.types import utcnow

    return utcnow()


class PollingWorker:
    """A thread that runs ``run_once`` until stopped: at once again while there was work, else
    after ``poll_s`` or a ``wake``. Retries follow :meth:`backoff_s` from the stored attempt
    count, so the schedule survives restarts."""

    thread_name = "worker"

    def __init__(self, *, base_delay_s: float = 2.0, max_delay_s: float = 600.0,
                 poll_s: float = 2.0, clock: Callable[[], datetime] = _utcnow,
                 rng: random.Random | None = None) -> None:
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.poll_s = poll_s
        self.clock = clock
        self.rng = rng or random.Random()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def backoff_s(self, attempt: int, error: Exception) -> float:
        """Seconds until the next try after ``attempt`` failed attempts.

        Transient: base * 2^(attempt-1), capped, with "equal jitter" (half fixed, half
        random) so many gateways behind one quota do not retry in lockstep; at least the
        server's Retry-After. Needs a person (missing product...): the cap.
        """
        if isinstance(error, SinkError) and not error.transient:
            return self.max_delay_s
        # the exponent is capped: an entry failing for months (thousands of attempts) would
        # overflow the float long after the delay reached max_delay_s
        delay = min(self.max_delay_s, self.base_delay_s * 2 ** min(max(0, attempt - 1), 40))
        delay = delay / 2 + self.rng.uniform(0, delay / 2)
        if isinstance(error, SinkError) and error.retry_after:
            delay = max(delay, min(error.retry_after, self.max_delay_s))
        return delay

    def run_once(self) -> int:
        """One pass; returns how much work was done (0: wait for the next poll)."""
        raise NotImplementedError

    def wake(self) -> None:
        """New work: do it now instead of at the next poll."""
        self._wake.set()

    def start(self) -> PollingWorker:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """Finish the delivery in progress (sinks have their own timeouts) and end."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.is_set():
            busy = False
            try:
                busy = self.run_once() > 0
            except Exception:  # noqa: BLE001 - e.g. the database briefly away: try again
                log.exception("%s pass failed", self.thread_name)
            if not busy:
                self._wake.wait(self.poll_s)
                self._wake.clear()


class OutboxWorker(PollingWorker):
    """Delivers due outbox entries; ``run_once`` for one pass, ``start``/``stop`` for a thread."""

    thread_name = "outbox-worker"

    def __init__(self, store: Outbox, sinks: Sequence[Sink], *, batch: int = 50,
                 lease_s: float = 30.0, owner: str | None = None, **timing: Any) -> None:
        super().__init__(**timing)
        self.store = store
        self.sinks = list(sinks)
        self.batch = batch
        self.lease_s = lease_s
        self.owner = owner or replica_owner()

    def start(self) -> OutboxWorker:
        self.free_dead_claims()
        super().start()
        return self

    def free_dead_claims(self) -> None:
        """Free the claims of this machine's gateway processes that died (a restart need not
        wait for their leases to run out)."""
        try:
            for owner in self.store.outbox_owners():
                if dead_local_owner(owner):
                    self.store.outbox_release(owner)
        except Exception:  # noqa: BLE001 - their leases run out anyway
            log.exception("freeing a dead gateway's outbox claims failed")

    def stop(self, timeout_s: float = 30.0) -> None:
        """Finish the delivery in progress, then hand this replica's claims on at once."""
        super().stop(timeout_s)
        try:
            self.store.outbox_release(self.owner)
        except Exception:  # noqa: BLE001 - the claims run out anyway
            log.exception("releasing outbox claims failed")

    def run_once(self) -> int:
        """One pass over every sink; returns how many deliveries were recorded."""
        delivered = 0
        for sink in self.sinks:
            delivered += self._run_sink(sink)
        return delivered

    def _run_sink(self, sink: Sink) -> int:
        entries = list(self.store.outbox_claim(sink.name, self.owner, self.clock(),
                                               self.batch, self.lease_s))
        if not entries:
            return 0
        with _renewing(lambda: self.store.outbox_renew([e.id for e in entries], sink.name,
                                                       self.owner, self.lease_s),
                       self.lease_s / 3):
            try:
                outcomes = sink.deliver_batch(entries)
            except Exception as exc:  # noqa: BLE001 - a sink bug must not stop the others
                outcomes = [exc] * len(entries)
        delivered = 0
        # Entries that failed together (one quota error for the batch) retry together, so
        # they go out as one batch again instead of trickling in one request each.
        delays: dict[tuple[int, int], float] = {}
        for entry, outcome in zip(entries, outcomes, strict=True):
            if outcome is None:
                self.store.outbox_mark_delivered(entry.id, sink.name)
                delivered += 1
                continue
            attempts = self.store.outbox_status(entry.id).get(sink.name, {}).get("attempts", 0)
            key = (id(outcome), int(attempts))
            delay = delays.setdefault(key, self.backoff_s(int(attempts) + 1, outcome))
            log.warning("delivery to %s of count %s failed (attempt %d), next try in %.0f s: %s",
                        sink.name, entry.count_id, attempts + 1, delay, outcome)
            self.store.outbox_mark_failed(entry.id, sink.name, str(outcome),
                                          self.clock() + timedelta(seconds=delay))
        return delivered
