"""What the counts say beyond the next order: slow movers, expiry at risk, shrinkage, and which
bins to count when (ABC classes).

Everything here is computed from the count history and receipts each time it is asked for, so
it always reflects the latest counts and imports, and nothing can go stale in a table.

Shrinkage: where the bin's shipments are known (``shelfcount shipments import``), a drop
between two counts that they and the receipts do not explain, beyond counting error, is an
alert. Otherwise the consumption of each interval is compared with what the bin usually uses
(its recent rate, with the spread of its earlier intervals: lumpy demand earns a wide margin),
and a drop ``shrinkage_z`` standard deviations above that, of at least a few units, is an
alert. The next count settles it when it comes within ``recount_days``: stock still missing is
shrinkage (with its value), stock back is a miscount; with no such count yet the alert is a
recount task for walkers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from gateway.stock.demand import DemandSeries, Interval

MIN_HISTORY_DAYS = 14  # below this a bin's usual demand is not known well enough to judge
MIN_INTERVALS = 3
RATE_WINDOW_DAYS = 90  # a bin's usual rate: its recent intervals (demand trends)
LUMPY_CV2 = 0.49
COUNT_ERROR = 0.01  # a count's error, as a share of the stock counted
MIN_EXCESS_UNITS = 3
EXCESS_SHARE = 0.05  # and at least this share of the stock before the drop


@dataclass(frozen=True)
class InsightSettings:
    """The ``SHELFCOUNT_*`` thresholds (README, Settings)."""

    slow_mover_days: int = 60
    slow_mover_weeks: float = 26.0
    shrinkage_z: float = 3.0
    recount_days: int = 7
    abc_shares: tuple[float, float] = (0.8, 0.95)
    count_every_days: tuple[int, int, int] = (30, 91, 365)

    @classmethod
    def from_settings(cls, settings: Any) -> InsightSettings:
        return cls(settings.slow_mover_days, settings.slow_mover_weeks, settings.shrinkage_z,
                   settings.recount_days, tuple(settings.abc_shares),
                   tuple(settings.count_every_days))


Price = Callable[[str], Decimal | None]


def _value(units: float, price: Decimal | None) -> str | None:
    if price is None:
        return None
    return str((price * Decimal(str(round(units, 3)))).quantize(Decimal("0.01")))


def _mean_daily(s: DemandSeries) -> float:
    return float(s.demand.mean()) if len(s.demand) else 0.0


def slow_movers(series: Sequence[DemandSeries], price: Price, today: date,
                cfg: InsightSettings) -> list[dict[str, Any]]:
    """Bins holding stock that does not move: no consumption for ``slow_mover_days`` or more
    than ``slow_mover_weeks`` of cover; a "clear" suggestion with the value tied up."""
    out = []
    for s in series:
        if s.on_hand <= 0 or s.counts < 2:
            continue
        used = [i for i, v in enumerate(s.demand) if v > 0]
        last_use = s.start + timedelta(days=used[-1] + 1) if used else s.start
        idle = (today - last_use).days
        daily = _mean_daily(s)
        weeks = s.on_hand / (daily * 7) if daily > 0 else math.inf
        if idle < cfg.slow_mover_days and weeks <= cfg.slow_mover_weeks:
            continue
        out.append({"sku": s.sku, "location": s.location, "on_hand": s.on_hand,
                    "days_without_consumption": idle,
                    "weeks_of_cover": None if math.isinf(weeks) else round(weeks, 1),
                    "value_tied_up": _value(s.on_hand, price(s.sku)), "suggestion": "clear",
                    "last_count": s.last_count.date().isoformat()})
    return sorted(out, key=lambda r: -float(r["value_tied_up"] or 0))


def expiry_risk(series: Sequence[DemandSeries], price: Price, today: date
                ) -> list[dict[str, Any]]:
    """Bins whose stock expires before it will run out: the units likely left at expiry."""
    out = []
    for s in series:
        if not s.expires or s.on_hand <= 0:
            continue
        try:
            expires = date.fromisoformat(s.expires)
        except ValueError:
            continue
        days = (expires - today).days
        left = s.on_hand - max(0, days) * _mean_daily(s)
        if left <= 0:
            continue
        out.append({"sku": s.sku, "location": s.location, "on_hand": s.on_hand,
                    "expires": s.expires, "days_to_expiry": days,
                    "likely_to_expire": math.ceil(left), "value_at_risk":
                    _value(math.ceil(left), price(s.sku))})
    return sorted(out, key=lambda r: r["days_to_expiry"])


def _usual(prior: Sequence[Interval], at: datetime) -> tuple[float, float, float] | None:
    """(daily rate over the last RATE_WINDOW_DAYS, dispersion over all earlier intervals, days
    the rate is measured on) of a bin; None when too little is known.

    The dispersion (variance / mean of interval usage) is what makes lumpy demand, where one
    order takes twenty units, earn a wide margin and steady demand a narrow one.
    """
    if len(prior) < MIN_INTERVALS or sum(iv.days for iv in prior) < MIN_HISTORY_DAYS:
        return None
    recent = [iv for iv in prior if (at - iv.after.at).days <= RATE_WINDOW_DAYS] or prior[-1:]
    while sum(iv.days for iv in recent) < MIN_HISTORY_DAYS and len(recent) < len(prior):
        recent = prior[-(len(recent) + 1):]
    days = sum(iv.days for iv in recent)
    rate = sum(max(0, iv.used) for iv in recent) / days
    whole = sum(max(0, iv.used) for iv in prior) / sum(iv.days for iv in prior)
    spread = [(max(0, iv.used) - whole * iv.days) ** 2 / max(whole * iv.days, 1.0)
              for iv in prior]
    return rate, max(1.0, sum(spread) / len(spread)) * _few_intervals(len(spread)), float(days)


def _few_intervals(n: int) -> float:
    """How much wider the spread may be than ``n`` intervals showed: the 95 % upper bound of a
    variance measured on n values (n / chi-square 5 % quantile, Wilson-Hilferty), so a bin
    seen a few times, whose big orders may simply not have come yet, is not judged narrowly."""
    q = n * (1 - 2 / (9 * n) - 1.645 * math.sqrt(2 / (9 * n))) ** 3
    return n / max(q, 1e-3)


def _settle(drop: Interval, later: Interval | None, excess: float,
            cfg: InsightSettings) -> str:
    """What the next count says about a drop: shrinkage, miscount, or a recount to do."""
    if later is None or later.days > cfg.recount_days:
        return "recount" if later is None else "unconfirmed"
    back = later.after.quantity - later.received - drop.after.quantity
    return "miscount" if back >= excess / 2 else "shrinkage"


def drops(s: DemandSeries, cfg: InsightSettings) -> list[tuple[int, Interval, float, float]]:
    """(index, interval, excess units, z) of each interval that used far more than usual."""
    found: list[tuple[int, Interval, float, float]] = []
    for k, iv in enumerate(s.intervals):
        if iv.shipped is not None:  # shipments known: what they do not explain is missing
            excess = iv.used - iv.shipped
            sd = 1 + math.sqrt(2) * COUNT_ERROR * iv.before.quantity
            if excess >= max(MIN_EXCESS_UNITS, cfg.shrinkage_z * sd):
                found.append((k, iv, float(excess), excess / sd))
            continue
        usual = _usual([p for p in s.intervals[:k] if not _is_drop(found, p)], iv.before.at)
        if usual is None:
            continue
        rate, dispersion, measured = usual
        expected = rate * iv.days
        excess = iv.used - expected
        # Demand's own spread, the rate's uncertainty, and both counts' counting error.
        var = dispersion * max(expected, 1.0) * (1 + iv.days / measured)
        sd = math.sqrt(var + 2 * (COUNT_ERROR * iv.before.quantity) ** 2)
        floor = max(MIN_EXCESS_UNITS, EXCESS_SHARE * iv.before.quantity)
        if excess >= floor and excess / sd >= cfg.shrinkage_z and \
                _beyond_lumps(s.intervals[:k], excess):
            found.append((k, iv, excess, excess / sd))
    return found


def _beyond_lumps(prior: Sequence[Interval], excess: float) -> bool:
    """For lumpy demand (most intervals use nothing, the rest a lot: squared coefficient of
    variation of interval rates over 0.49, the Syntetos-Boylan line), a drop must also be
    bigger than anything the bin ever used between two counts: one big order looks like a
    theft otherwise."""
    rates = [max(0, iv.used) / iv.days for iv in prior]
    mean = sum(rates) / len(rates)
    if mean <= 0:
        return True
    cv2 = sum((r - mean) ** 2 for r in rates) / len(rates) / mean ** 2
    return cv2 <= LUMPY_CV2 or excess > max(max(0, iv.used) for iv in prior)


def _is_drop(found: list[tuple[int, Interval, float, float]], iv: Interval) -> bool:
    return any(f[1] is iv for f in found)


def shrinkage_alerts(series: Sequence[DemandSeries], price: Price,
                     cfg: InsightSettings, since: datetime | None = None
                     ) -> list[dict[str, Any]]:
    """Every drop (counted after ``since``, when given), newest first, with how it settled."""
    out = []
    for s in series:
        for k, iv, excess, z in drops(s, cfg):
            if since is not None and iv.after.at < since:
                continue
            later = s.intervals[k + 1] if k + 1 < len(s.intervals) else None
            state = _settle(iv, later, excess, cfg)
            out.append({"sku": s.sku, "location": s.location,
                        "counted_at": iv.after.at.isoformat(), "before": iv.before.quantity,
                        "counted": iv.after.quantity, "received": iv.received,
                        "expected_use": round(iv.used - excess, 1), "missing": round(excess),
                        "z": round(z, 1), "state": state,
                        "value": _value(round(excess), price(s.sku))})
    return sorted(out, key=lambda r: r["counted_at"], reverse=True)


def rises(series: Sequence[DemandSeries], cfg: InsightSettings,
          since: datetime | None = None) -> list[dict[str, Any]]:
    """Counts far above what the stock before, the receipts and the shipments allow: a receipt
    nobody recorded, or a miscount (the one right after a drop is that drop's recount, not a
    new anomaly). The latest count of a bin is a recount task; older ones stand as found."""
    out = []
    for s in series:
        dropped = {k for k, *_ in drops(s, cfg)}
        for k, iv in enumerate(s.intervals):
            surplus = -(iv.used - (iv.shipped or 0))
            sd = 1 + math.sqrt(2) * COUNT_ERROR * iv.before.quantity
            if k - 1 in dropped or surplus < max(MIN_EXCESS_UNITS, cfg.shrinkage_z * sd):
                continue
            if since is not None and iv.after.at < since:
                continue
            out.append({"sku": s.sku, "location": s.location,
                        "counted_at": iv.after.at.isoformat(), "before": iv.before.quantity,
                        "counted": iv.after.quantity, "received": iv.received,
                        "unexplained": surplus,
                        "state": "recount" if k == len(s.intervals) - 1 else "unexplained"})
    return sorted(out, key=lambda r: r["counted_at"], reverse=True)


def abc_classes(series: Sequence[DemandSeries], price: Price, cfg: InsightSettings
                ) -> dict[tuple[str, str], str]:
    """(SKU, location) -> A, B or C by annual consumption value (unknown price: value 0)."""
    values = {(s.sku, s.location): _mean_daily(s) * 365 * float(price(s.sku) or 0)
              for s in series}
    total = sum(values.values())
    out, running = {}, 0.0
    for key, value in sorted(values.items(), key=lambda kv: (-kv[1], kv[0])):
        share = running / total if total > 0 else 1.0
        out[key] = "A" if share < cfg.abc_shares[0] else "B" if share < cfg.abc_shares[1] \
            else "C"
        running += value
    return out


def count_tasks(series: Sequence[DemandSeries], price: Price, today: date,
                cfg: InsightSettings) -> list[dict[str, Any]]:
    """Bins to count today: recounts for open shrinkage alerts, then cycle counts due by ABC
    class; in location order (a walker's route)."""
    classes = abc_classes(series, price, cfg)
    every = dict(zip("ABC", cfg.count_every_days, strict=True))
    recounts = {(a["sku"], a["location"]) for a in [*shrinkage_alerts(series, price, cfg),
                                                    *rises(series, cfg)]
                if a["state"] == "recount"}
    tasks = []
    for s in series:
        key = (s.sku, s.location)
        age = (today - s.last_count.date()).days
        cls = classes.get(key, "C")
        if key in recounts:
            reason = "recount: the last count is far from what stock moves explain"
        elif age >= every[cls]:
            reason = f"cycle count: class {cls}, every {every[cls]} days"
        else:
            continue
        expected = max(0, round(s.on_hand - _mean_daily(s) * age))
        tasks.append({"location": s.location, "sku": s.sku, "abc": cls, "reason": reason,
                      "last_count": s.last_count.date().isoformat(), "days_since": age,
                      "recount": key in recounts, "expected": expected})
    return sorted(tasks, key=lambda t: (t["location"], t["sku"]))
