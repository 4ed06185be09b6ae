"""``make bench-forecast``: demand forecasts from counts on a generated year of history.

2,000 SKUs with known daily demand (smooth, intermittent, lumpy, trending, weekly seasonal),
stock replenished by recorded receipts, counted every 1-30 days with counting noise. The
forecast sees only the counts and receipts (as `shelfcount forecast` does) and is scored on the
next 28 days of true demand: MASE (scaled by the true series' in-sample one-step naive error)
against two baselines computed from the same counts, the last interval's rate ("naive") and
the mean of the last 28 days ("moving average"); stock-out prediction (SKUs whose stock truly
runs out within their 7-day lead time, against Days_Until_Stockout <= 7) precision and recall;
and the time to forecast every SKU. Shrinkage alerts are not built yet, so not measured.
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
from gateway.store.stock_repo import StockEvent

CLASSES = ("smooth", "intermittent", "lumpy", "trending", "seasonal")
DAYS, HORIZON, LEAD = 365, 28, 7
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


def simulate(sku: str, demand: np.ndarray, rng: np.random.Generator
             ) -> tuple[list[StockEvent], list[StockEvent], np.ndarray]:
    """Counts (every 1-30 days, noisy) and receipts of one SKU; the true stock per day."""
    mean = max(demand[:DAYS].mean(), 0.2)
    stock = np.zeros(len(demand) + 1)
    stock[0] = round(mean * 45) + 5
    receipts = []
    for d in range(len(demand)):
        arriving = 0
        if d < DAYS and stock[d] < mean * 20 and d % 5 == 0:  # a weekly-ish replenishment
            arriving = round(mean * 40) + 5  # in the evening: after that day's count
            receipts.append(StockEvent(sku, "A-01-1", int(arriving),
                                       START + timedelta(days=d, hours=23), "sim"))
        stock[d + 1] = max(0.0, stock[d] + arriving - demand[d])
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


def run(n_skus: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    history, receipts, truth = [], [], {}
    for i in range(n_skus):
        kind, sku = CLASSES[i % len(CLASSES)], f"SKU-{i:05d}"
        demand = true_demand(kind, rng, DAYS + HORIZON)
        counts, recs, stock = simulate(sku, demand, rng)
        history += counts
        receipts += recs
        last = counts[-1]
        day = (last.at - START).days
        truth[sku] = (kind, demand, day, stock)
    t0 = time.perf_counter()
    series = demand_series(history, receipts)
    rows = forecast_rows(series, lambda _sku: Supply(lead_time_days=LEAD), HORIZON)
    forecast_s = time.perf_counter() - t0
    scores: dict[str, dict[str, list[float]]] = {k: {"model": [], "naive": [], "ma": []}
                                                 for k in CLASSES}
    runs_out, predicted = [], []
    for s, row in zip(series, rows, strict=True):
        kind, demand, day, stock = truth[s.sku]
        future, past = demand[day:day + HORIZON], demand[:day]
        observed = s.demand
        naive = float(observed[-1]) if len(observed) else 0.0
        ma = float(observed[-28:].mean()) if len(observed) else 0.0
        model = float(row["Daily_Demand"] or 0.0)
        for name, pred in (("model", model), ("naive", naive), ("ma", ma)):
            scores[kind][name].append(_mase(pred, future, past))
        runs_out.append(bool(stock[day] <= demand[day:day + LEAD].sum()))
        days_left = row["Days_Until_Stockout"]
        predicted.append(days_left != "" and float(days_left) <= LEAD)
    return _summary(scores, np.array(runs_out), np.array(predicted), forecast_s, n_skus)


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
    print("| class | MASE forecast | naive | moving average | vs best baseline |")
    print("|---|---|---|---|---|")
    for kind, m in result["mase"].items():
        print(f"| {kind} | {m['model']:.3f} | {m['naive']:.3f} | {m['ma']:.3f} "
              f"| {m['vs_best_baseline']:+.1%} |")
    so = result["stockout"]
    print(f"stock-outs within {LEAD} days: {so['true']} true, {so['predicted']} predicted, "
          f"precision {so['precision']:.2f}, recall {so['recall']:.2f}")
    print(f"forecast of {result['skus']} SKUs: {result['forecast_s']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
