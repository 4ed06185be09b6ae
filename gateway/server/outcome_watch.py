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

from collections.abc import Callable
from typing import Any

from gateway.sinks.worker import PollingWorker


class OutcomeWatcher(PollingWorker):
    """Polls the followed counts' ``updated_at`` and republishes the changed ones."""

    thread_name = "outcome-watch"

    def __init__(self, store: Any, watched: Callable[[], list[str]],
                 publish: Callable[[Any], None], poll_s: float = 1.0) -> None:
        super().__init__(poll_s=poll_s)
        self.store = store
        self.watched = watched
        self.publish = publish
        self._seen: dict[str, str] = {}

    def run_once(self) -> int:
        """One look; returns how many counts were republished."""
        ids = self.watched()
        stamps = self.store.count_stamps(ids) if ids else {}
        changed = [i for i, stamp in stamps.items() if self._seen.get(i) != stamp]
        self._seen = stamps
        for count_id in changed:
            self.publish(self.store.get_count(count_id))
        return len(changed)
