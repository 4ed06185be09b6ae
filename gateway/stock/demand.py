"""Daily demand from counts: consumption between two counts, spread over the days between.

Consumption between counts = previous count + receipts in between - current count. Counts
come at irregular gaps (1 to 30 days), so each interval's consumption is spread evenly over its
days, and each day keeps how certain it is (1 / the interval's length in days: a day from a
daily count is known, one from a monthly count is an average). An interval where stock rose
more than the receipts explain (a receipt not recorded, or a miscount) gives 0 and is counted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np

from gateway.store.stock_repo import StockEvent


@dataclass
class DemandSeries:
    """Daily demand of one SKU at one location, from its first count to its last."""

    sku: str
    location: str
    start: date
    demand: np.ndarray
    certainty: np.ndarray
    on_hand: int
    last_count: datetime
    counts: int
    unexplained_rises: int = 0


def _last_per_day(events: list[StockEvent]) -> list[StockEvent]:
    by_day: dict[date, StockEvent] = {}
    for e in sorted(events, key=lambda e: e.at):
        by_day[e.at.date()] = e
    return [by_day[d] for d in sorted(by_day)]


def series_of(counts: list[StockEvent], receipts: list[StockEvent]) -> DemandSeries:
    """One key's series (``counts`` non-empty, one per day is kept: the day's last)."""
    counts = _last_per_day(counts)
    first, last = counts[0], counts[-1]
    days = (last.at.date() - first.at.date()).days
    demand, certainty = np.zeros(days), np.zeros(days)
    rises = 0
    for before, after in zip(counts, counts[1:], strict=False):
        received = sum(r.quantity for r in receipts if before.at < r.at <= after.at)
        used = before.quantity + received - after.quantity
        if used < 0:
            rises += 1
            used = 0
        lo = (before.at.date() - first.at.date()).days
        hi = (after.at.date() - first.at.date()).days
        demand[lo:hi] = used / (hi - lo)
        certainty[lo:hi] = 1.0 / (hi - lo)
    return DemandSeries(first.sku, first.location, first.at.date(), demand, certainty,
                        last.quantity, last.at, len(counts), rises)


def demand_series(history: Sequence[StockEvent], receipts: Sequence[StockEvent]
                  ) -> list[DemandSeries]:
    """Every (SKU, location) with at least one count, sorted by SKU then location."""
    counts: dict[tuple[str, str], list[StockEvent]] = defaultdict(list)
    received: dict[tuple[str, str], list[StockEvent]] = defaultdict(list)
    for e in history:
        counts[(e.sku, e.location)].append(e)
    for r in receipts:
        received[(r.sku, r.location)].append(r)
    return [series_of(counts[k], received[k]) for k in sorted(counts)]
