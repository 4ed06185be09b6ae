"""``/metrics`` in Prometheus' text format (issue 18): what a dashboard and an autoscaler need.

Totals (photos received, counted, failed by error code), the counting queue's depth and the
outbox per sink (delivered, waiting, retries) are read from the store when scraped: they
survive restarts and are the same whichever gateway process answers. Per-stage latencies and
Triton outages are observed by this process as it counts. Each gateway has its own registry,
so several in one process (the tests) do not collide.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

QUEUED = ("queued", "processing", "waiting")  # a count's states before it is done or failed
CACHE_S = 2.0
STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _StoreCollector(Collector):
    """Totals and depths from the store, at scrape time."""

    def __init__(self, store: Any, sinks: Callable[[], list[str]]) -> None:
        self.store = store
        self.sinks = sinks

    def collect(self) -> Iterator[Any]:
        received = CounterMetricFamily("shelfcount_photos_received", "Photos stored for "
                                       "counting", labels=["source"])
        done = CounterMetricFamily("shelfcount_photos_counted", "Photos counted")
        failed = CounterMetricFamily("shelfcount_photos_failed", "Photos that could not be "
                                     "counted", labels=["code"])
        depth = GaugeMetricFamily("shelfcount_count_queue_depth", "Photos waiting to be "
                                  "counted (queued, being counted, or waiting for Triton)")
        by_source: dict[str, int] = {}
        by_code: dict[str, int] = {}
        counted = waiting = 0
        for source, status, code, n in self.store.count_totals():
            by_source[source] = by_source.get(source, 0) + n
            counted += n if status == "done" else 0
            waiting += n if status in QUEUED else 0
            if status == "failed":
                by_code[code or "unknown"] = by_code.get(code or "unknown", 0) + n
        for source, n in sorted(by_source.items()):
            received.add_metric([source], n)
        for code, n in sorted(by_code.items()):
            failed.add_metric([code], n)
        done.add_metric([], counted)
        depth.add_metric([], waiting)
        yield from (received, done, failed, depth)
        yield from self._outbox()

    def _outbox(self) -> Iterator[Any]:
        delivered = CounterMetricFamily("shelfcount_sink_deliveries", "Confirmed bays "
                                        "delivered, per sink", labels=["sink"])
        retries = CounterMetricFamily("shelfcount_sink_retries", "Delivery attempts after "
                                      "the first, per sink", labels=["sink"])
        waiting = GaugeMetricFamily("shelfcount_sink_waiting", "Confirmed bays not yet "
                                    "delivered, per sink", labels=["sink"])
        for sink, t in self.store.outbox_totals(self.sinks()).items():
            delivered.add_metric([sink], t["delivered"])
            retries.add_metric([sink], t["retries"])
            waiting.add_metric([sink], t["waiting"])
        yield from (delivered, retries, waiting)


class GatewayMetrics:
    """One gateway's metrics registry."""

    def __init__(self, store: Any, sinks: Callable[[], list[str]]) -> None:
        self.registry = CollectorRegistry()
        self.stage_seconds = Histogram(
            "shelfcount_stage_seconds", "Time a counted photo spent in each pipeline stage",
            ["stage"], buckets=STAGE_BUCKETS, registry=self.registry)
        self.triton_errors = Counter(
            "shelfcount_triton_errors", "Counts that found Triton unavailable",
            registry=self.registry)
        self.registry.register(_StoreCollector(store, sinks))
        self._lock = threading.Lock()
        self._cached: tuple[float, bytes] | None = None

    def observe_count(self, timings_ms: dict[str, float]) -> None:
        for stage, ms in timings_ms.items():
            if isinstance(ms, int | float) and ms >= 0:
                self.stage_seconds.labels(stage).observe(ms / 1000)

    def render(self) -> tuple[bytes, str]:
        """The scrape's body and content type; kept CACHE_S, so that a client asking in a
        loop (the route needs no token) costs the store two queries every few seconds."""
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] > CACHE_S:
                self._cached = (now, generate_latest(self.registry))
            return self._cached[1], CONTENT_TYPE_LATEST
