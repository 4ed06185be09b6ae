"""Daily demand from counts: consumption between two counts, spread over the days between.
Where a bin's shipments are known (imported, or Tryton's moves), they are its daily demand
from when they began to be recorded.

Consumption between counts = previous count + receipts in between - current count. Counts
come at irregular gaps (1 to 30 days), so each interval's consumption is spread evenly over its
days, and each day keeps how certain it is (1 / the interval's length in days: a day from a
daily count is known, one from a monthly count is an average). An interval where stock rose
more than the receipts explain (a receipt not recorded, or a miscount) gives 0 and is counted.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np

from gateway.store.stock_repo import StockEvent


@dataclass(frozen=True)
class Interval:
    """Two successive counts of a key and what was received between them. ``used`` is the
    raw consumption (negative: stock rose more than the receipts explain)."""

    before: StockEvent
    after: StockEvent
    received: int
    shipped: int | None = None  # None: the bin's shipments are not known

    @property
    def used(self) -> int:
        return self.before.quantity + self.received - self.after.quantity

    @property
    def days(self) -> int:
        return max(1, (self.after.at.date() - self.before.at.date()).days)


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
    intervals: list[Interval] = field(default_factory=list)
    expires: str | None = None  # the last count's Expiration_Date


def _last_per_day(events: list[StockEvent]) -> list[StockEvent]:
    by_day: dict[date, StockEvent] = {}
    for e in sorted(events, key=lambda e: e.at):
        by_day[e.at.date()] = e
    return [by_day[d] for d in sorted(by_day)]


class _Moves:
    """Quantities moved in (after, up to and including] a time, summed fast."""

    def __init__(self, events: list[StockEvent]) -> None:
        events = sorted(events, key=lambda e: e.at)
        self.times = [e.at for e in events]
        self.running = np.concatenate([[0], np.cumsum([e.quantity for e in events])])

    def between(self, start: datetime, end: datetime) -> int:
        lo, hi = bisect_right(self.times, start), bisect_right(self.times, end)
        return int(self.running[hi] - self.running[lo])


def _known_from(counts: list[StockEvent], shipments: list[StockEvent] | None) -> datetime | None:
    """From which count on the bin's shipments are known: the start of the interval holding
    the first shipment recorded (shipments began to be recorded then: an import's or the
    ERP link's start), None when none is. Earlier intervals stay count-based."""
    if not shipments:
        return None
    first = min(m.at for m in shipments)
    before = [c.at for c in counts if c.at < first]
    return before[-1] if before else counts[0].at


def series_of(counts: list[StockEvent], receipts: list[StockEvent],
              shipments: list[StockEvent] | None = None) -> DemandSeries:
    """One key's series (``counts`` non-empty, one per day is kept: the day's last)."""
    counts = _last_per_day(counts)
    first, last = counts[0], counts[-1]
    days = (last.at.date() - first.at.date()).days
    demand, certainty = np.zeros(days), np.zeros(days)
    known = _known_from(counts, shipments)
    got, sent = _Moves(receipts), _Moves(shipments or [])
    intervals = [Interval(b, a, got.between(b.at, a.at),
                          sent.between(b.at, a.at) if known and b.at >= known else None)
                 for b, a in zip(counts, counts[1:], strict=False)]
    for iv in intervals:
        lo = (iv.before.at.date() - first.at.date()).days
        hi = (iv.after.at.date() - first.at.date()).days
        demand[lo:hi] = max(0, iv.used) / (hi - lo)
        certainty[lo:hi] = 1.0 / (hi - lo)
    if known is not None:  # what left each day is known: demand day by day, not spread
        start = (known.date() - first.at.date()).days
        demand[start:] = 0
        certainty[start:] = 1.0
        for m in shipments or []:
            day = (m.at.date() - first.at.date()).days
            if start <= day < days:
                demand[day] += m.quantity
    return DemandSeries(first.sku, first.location, first.at.date(), demand, certainty,
                        last.quantity, last.at, len(counts),
                        sum(1 for iv in intervals if iv.used < 0), intervals, last.expires)


def demand_series(history: Sequence[StockEvent], receipts: Sequence[StockEvent],
                  shipments: Sequence[StockEvent] = ()) -> list[DemandSeries]:
    """Every (SKU, location) with at least one count, sorted by SKU then location. A key
    with shipments recorded has them known from the interval of the first one on (those
    intervals' ``shipped``); before it, its demand is spread from the counts."""
    counts: dict[tuple[str, str], list[StockEvent]] = defaultdict(list)
    received: dict[tuple[str, str], list[StockEvent]] = defaultdict(list)
    shipped: dict[tuple[str, str], list[StockEvent]] = defaultdict(list)
    for e in history:
        counts[(e.sku, e.location)].append(e)
    for r in receipts:
        received[(r.sku, r.location)].append(r)
    for m in shipments:
        shipped[(m.sku, m.location)].append(m)
    return [series_of(counts[k], received[k], shipped.get(k)) for k in sorted(counts)]
