"""Fan-out of count outcomes to the connections and calls waiting for them."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("shelfcount.gateway")


class Hub:
    """Fan-out of count outcomes to whoever listens (WebSocket connections, waiting calls)."""

    def __init__(self) -> None:
        self._listeners: dict[str, set[Callable[[dict[str, Any]], None]]] = {}
        self._lock = threading.Lock()

    def subscribe(self, count_id: str, listener: Callable[[dict[str, Any]], None]) -> None:
        with self._lock:
            self._listeners.setdefault(count_id, set()).add(listener)

    def unsubscribe(self, count_id: str, listener: Callable[[dict[str, Any]], None]) -> None:
        with self._lock:
            listeners = self._listeners.get(count_id)
            if listeners is not None:
                listeners.discard(listener)
                if not listeners:
                    del self._listeners[count_id]

    def watched(self) -> list[str]:
        """The counts someone listens to now."""
        with self._lock:
            return list(self._listeners)

    def publish(self, count_id: str, message: dict[str, Any]) -> None:
        with self._lock:
            listeners = list(self._listeners.get(count_id, ()))
        for listener in listeners:
            try:
                listener(message)
            except Exception:  # noqa: BLE001 - one broken client must not stop the others
                log.debug("listener for %s failed", count_id, exc_info=True)
