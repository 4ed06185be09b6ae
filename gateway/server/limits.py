"""Per-device rate limits and a cap on concurrent connections.

Token buckets: a walker photographing a bay every few seconds never notices them, a stuck
client resending in a loop is slowed down instead of filling the disk. The connection cap
protects the threads of the HTTP server (one per WebSocket) and the gRPC streams.
"""

from __future__ import annotations

import threading
import time


class RateLimiter:
    """A token bucket per key: ``rate`` tokens per second, at most ``burst`` saved up."""

    def __init__(self, rate_per_s: float, burst: float) -> None:
        self.rate = max(rate_per_s, 1e-9)
        self.burst = max(burst, 1.0)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, now: float | None = None) -> float:
        """Spend one token; returns 0.0 when allowed, else the seconds to wait."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate


class ConnectionLimiter:
    """Counts open connections; ``acquire`` refuses beyond ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open = 0
        self._lock = threading.Lock()

    @property
    def open(self) -> int:
        return self._open

    def acquire(self) -> bool:
        with self._lock:
            if self._open >= self.limit:
                return False
            self._open += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._open = max(0, self._open - 1)
