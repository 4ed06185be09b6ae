"""``make bench-forecast``: demand forecasts from counts on a generated year of history.

2,000 SKUs with known daily demand (smooth, intermittent, lumpy, trending, weekly seasonal),
stock replenished by recorded receipts, counted every 1-30 days with counting noise. The
forecast sees only the counts and receipts (as `shelfcount forecast` does) and is scored on the
next 28 days of true demand: MASE (scaled by the true series' in-sample one-step naive error)
against two baselines computed from the same counts, the last interval's rate ("naive") and
the mean of the last 28 days ("moving average"); stock-out prediction (SKUs whose stock truly
runs out within their 7-day lead time, against Days_Until_Stockout <= 7) precision and recall;
the time to forecast every SKU; and shrinkage alerts (one in ten SKUs loses a quarter to a
half of its stock on one day) precision and recall, from counts and receipts only and with
the day's shipments known as well (an ERP's outgoing moves).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta

import numpy as np

from gateway.config import REPO_ROOT
from gateway.stock.demand import demand_series
from gateway.stock.forecast import Supply, forecast_rows
from gateway.stock.insights import MIN_HISTORY_DAYS, InsightSettings, drops
from gateway.store.stock_repo import StockEvent

CLASSES = ("smooth", "intermittent", "lumpy", "trending", "seasonal")
DAYS, HORIZON, LEAD = 365, 28, 7
THEFT_SHARE = 0.1  # SKUs with one injected shrinkage event
START = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
OUT = REPO_ROOT / "data" / "bench" / "forecast.json"


def true_demand(kind: str, rng: np.random.Generator, n: int) -> np.ndarray:
    """Daily demand of one SKU of a class, ``n`` days."""
    t = np.arange(n)
    if kind == "smooth":
        return rng.poisson(rng.uniform(2, 12), n).astype(float)
    if kind == "intermittent":
        hit = rng.random(n) < rng.uniform(0.08, 0.3)
        return hit * rng.poisson(rng.uniform(1, 4), n) + hit
    if kind == "lumpy":
        hit = rng.random(n) < rng.uniform(0.03, 0.12)
        return hit * rng.geometric(rng.uniform(0.05, 0.2), n).astype(float)
    if kind == "trending":
        lam = rng.uniform(2, 6) * (1 + rng.uniform(0.5, 1.5) * t / n)
        return rng.poisson(lam).astype(float)
    week = np.array([1.0, 1.1, 1.0, 1.2, 1.6, 0.6, 0.5])
    return rng.poisson(rng.uniform(3, 10) * week[t % 7]).astype(float)


def simulate(sku: str, demand: np.ndarray, rng: np.random.Generator,
             theft_day: int | None = None, shipments: list[StockEvent] | None = None
             ) -> tuple[list[StockEvent], list[StockEvent], np.ndarray]:
    """Counts (every 1-30 days, noisy) and receipts of one SKU; the true stock per day. On
    ``theft_day`` a quarter to a half of the stock (at least 5 units) goes missing; what was
    sold each day is appended to ``shipments`` when given."""
    mean = max(demand[:DAYS].mean(), 0.2)
    stock = np.zeros(len(demand) + 1)
    stock[0] = round(mean * 45) + 5
    receipts = []
    for d in range(len(demand)):
        if d == theft_day:
            stock[d] = max(0.0, stock[d] - max(5, round(stock[d] * rng.uniform(0.25, 0.5))))
        arriving = 0
        if d < DAYS and stock[d] < mean * 20 and d % 5 == 0:  # a weekly-ish replenishment
            arriving = round(mean * 40) + 5  # in the evening: after that day's count
            receipts.append(StockEvent(sku, "A-01-1", int(arriving),
                                       START + timedelta(days=d, hours=23), "sim"))
        stock[d + 1] = max(0.0, stock[d] + arriving - demand[d])
        if shipments is not None and stock[d] + arriving > stock[d + 1]:  # after the noon count
            shipments.append(StockEvent(sku, "A-01-1", int(stock[d] + arriving - stock[d + 1]),
                                        START + timedelta(days=d, hours=18), "sim"))
    counts, d = [], 0
    while d <= DAYS:
        noise = int(round(rng.normal(0, 0.01 * stock[d]))) if stock[d] > 20 else 0
        counts.append(StockEvent(sku, "A-01-1", int(max(0, stock[d] + noise)),
                                 START + timedelta(days=d, hours=12), "sim"))
        d += int(rng.integers(1, 31))
    return counts, receipts, stock


def _mase(pred: float, future: np.ndarray, past: np.ndarray) -> float:
    scale = max(float(np.mean(np.abs(np.diff(past)))), 1e-6)
    return float(np.mean(np.abs(future - pred)) / scale)


def _shrinkage_scores(series: list, thefts: dict[str, datetime]) -> dict:
    """Alerts against injected thefts: an alert is right when a theft happened within its
    interval; a theft is found when the interval holding it raised an alert. Thefts in a
    bin's first MIN_HISTORY_DAYS (nothing usual to compare with) or after its last count
    (not seen yet) are left out of recall."""
    alerts, hits = 0, 0
    found: set[str] = set()
    seen = 0
    for s in series:
        theft = thefts.get(s.sku)
        if theft is not None and s.intervals and \
                s.intervals[0].before.at + timedelta(days=MIN_HISTORY_DAYS) < theft <= \
                s.intervals[-1].after.at:
            seen += 1
        for _, iv, _, _ in drops(s, InsightSettings()):
            alerts += 1
            if theft is not None and iv.before.at < theft <= iv.after.at:
                hits += 1
                found.add(s.sku)
    return {"thefts_seen": seen, "alerts": alerts, "precision": hits / max(1, alerts),
            "recall": len(found) / max(1, seen)}


def run(n_skus: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    history, receipts, shipments, truth, thefts = [], [], [], {}, {}
    for i in range(n_skus):
        kind, sku = CLASSES[i % len(CLASSES)], f"SKU-{i:05d}"
        demand = true_demand(kind, rng, DAYS + HORIZON)
        theft_day = int(rng.integers(30, DAYS - 20)) if rng.random() < THEFT_SHARE else None
        if theft_day is not None:  # during the day, before that day's count at noon
            thefts[sku] = START + timedelta(days=theft_day, hours=6)
        counts, recs, stock = simulate(sku, demand, rng, theft_day, shipments)
        history += counts
        receipts += recs
        last = counts[-1]
        day = (last.at - START).days
        truth[sku] = (kind, demand, day, stock)
    t0 = time.perf_counter()
    series = demand_series(history, receipts)
    rows = forecast_rows(series, lambda _sku: Supply(lead_time_days=LEAD), HORIZON)
    forecast_s = time.perf_counter() - t0
    scores, runs_out, predicted, kinds = _score(series, rows, truth)
    out = _summary(scores, np.array(runs_out), np.array(predicted), forecast_s, n_skus)
    out["stockout"]["true_by_class"] = {k: sum(1 for r, c in zip(runs_out, kinds, strict=True)
                                               if r and c == k) for k in CLASSES}
    known = demand_series(history, receipts, shipments)
    known_rows = forecast_rows(known, lambda _sku: Supply(lead_time_days=LEAD), HORIZON)
    k_scores, k_out, k_pred, _ = _score(known, known_rows, truth)
    out["shipments_known"] = _summary(k_scores, np.array(k_out), np.array(k_pred), 0.0, n_skus)
    out["shrinkage"] = {
        "counts_only": _shrinkage_scores(series, thefts),
        "shipments_known": _shrinkage_scores(known, thefts)}
    return out


def _score(series: list, rows: list, truth: dict) -> tuple[dict, list, list, list]:
    """MASE of the forecast, the baselines (from the same observed series) and the oracle, per
    class; whether each SKU truly runs out within the lead time and whether it was predicted."""
    scores: dict[str, dict[str, list[float]]] = {
        k: {"model": [], "naive": [], "ma": [], "oracle": []} for k in CLASSES}
    runs_out, predicted, kinds = [], [], []
    for s, row in zip(series, rows, strict=True):
        kind, demand, day, stock = truth[s.sku]
        future, past = demand[day:day + HORIZON], demand[:day]
        observed = s.demand
        naive = float(observed[-1]) if len(observed) else 0.0
        ma = float(observed[-28:].mean()) if len(observed) else 0.0
        model = float(row["Daily_Demand"] or 0.0)
        # "oracle": the true mean of the next 28 days, the best any flat forecast can do.
        for name, pred in (("model", model), ("naive", naive), ("ma", ma),
                           ("oracle", float(future.mean()))):
            scores[kind][name].append(_mase(pred, future, past))
        runs_out.append(bool(stock[day] <= demand[day:day + LEAD].sum()))
        kinds.append(kind)
        days_left = row["Days_Until_Stockout"]
        predicted.append(days_left != "" and float(days_left) <= LEAD)
    return scores, runs_out, predicted, kinds


def _summary(scores: dict, runs_out: np.ndarray, predicted: np.ndarray, forecast_s: float,
             n: int) -> dict:
    by_class = {}
    for kind, s in scores.items():
        m = {k: float(np.mean(v)) for k, v in s.items()}
        best = min(m["naive"], m["ma"])
        by_class[kind] = {**m, "vs_best_baseline": 1 - m["model"] / best}
    tp = int((runs_out & predicted).sum())
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{os.cpu_count()} CPUs", "skus": n, "mase": by_class,
            "stockout": {"true": int(runs_out.sum()), "predicted": int(predicted.sum()),
                         "precision": tp / max(1, int(predicted.sum())),
                         "recall": tp / max(1, int(runs_out.sum()))},
            "forecast_s": round(forecast_s, 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skus", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    result = run(args.skus, args.seed)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print("| class | MASE forecast | naive | moving average | vs best baseline | oracle flat "
          "| oracle vs best baseline |")
    print("|---|---|---|---|---|---|---|")
    for kind, m in result["mase"].items():
        print(f"| {kind} | {m['model']:.3f} | {m['naive']:.3f} | {m['ma']:.3f} "
              f"| {m['vs_best_baseline']:+.1%} | {m['oracle']:.3f} "
              f"| {1 - m['oracle'] / min(m['naive'], m['ma']):+.1%} |")
    so = result["stockout"]
    print(f"stock-outs within {LEAD} days: {so['true']} true, {so['predicted']} predicted, "
          f"precision {so['precision']:.2f}, recall {so['recall']:.2f} (true by class: "
          f"{', '.join(f'{k} {v}' for k, v in so['true_by_class'].items())})")
    print("with the day's shipments known (the forecast and baselines see them):")
    for kind, m in result["shipments_known"]["mase"].items():
        print(f"| {kind} | {m['model']:.3f} | {m['naive']:.3f} | {m['ma']:.3f} "
              f"| {m['vs_best_baseline']:+.1%} | {m['oracle']:.3f} "
              f"| {1 - m['oracle'] / min(m['naive'], m['ma']):+.1%} |")
    so = result["shipments_known"]["stockout"]
    print(f"stock-outs with shipments known: precision {so['precision']:.2f}, "
          f"recall {so['recall']:.2f}")
    for mode, sh in result["shrinkage"].items():
        print(f"shrinkage ({mode.replace('_', ' ')}): {sh['thefts_seen']} thefts between "
              f"counts, {sh['alerts']} alerts, precision {sh['precision']:.2f}, "
              f"recall {sh['recall']:.2f}")
    print(f"forecast of {result['skus']} SKUs: {result['forecast_s']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
