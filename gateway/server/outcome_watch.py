"""Outcomes another gateway replica produced, passed on to this replica's listeners.

Why: a walker's connection and the replica that counts the photo need not be the same (a
reconnect lands on another replica behind the load balancer, or the counting replica died and
another took the photo over). Each replica publishes only what it counts itself, so with
several replicas on one PostgreSQL this watcher looks, once a ``poll_s``, at the counts this
replica's connections follow and republishes those whose row changed. The listeners drop what
they already sent (WebSocket and gRPC both remember the outcomes they sent), so an outcome
seen both ways reaches a client once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("shelfcount.gateway")


class OutcomeWatcher:
    """Polls the followed counts' ``updated_at`` and republishes the changed ones."""

    def __init__(self, store: Any, watched: Callable[[], list[str]],
                 publish: Callable[[Any], None], poll_s: float = 1.0) -> None:
        self.store = store
        self.watched = watched
        self.publish = publish
        self.poll_s = poll_s
        self._seen: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_once(self) -> int:
        """One look; returns how many counts were republished."""
        ids = self.watched()
        stamps = self.store.count_stamps(ids) if ids else {}
        changed = [i for i, stamp in stamps.items() if self._seen.get(i) != stamp]
        self._seen = stamps
        for count_id in changed:
            self.publish(self.store.get_count(count_id))
        return len(changed)

    def start(self) -> OutcomeWatcher:
        self._thread = threading.Thread(target=self._loop, name="outcome-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 - the database away for a moment: next time
                log.exception("watching other replicas' outcomes failed")
