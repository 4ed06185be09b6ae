"""``make bench-forecast``: demand forecasts from counts on a generated year of history.

2,000 SKUs with known daily demand (smooth, intermittent, lumpy, trending, weekly seasonal),
stock replenished by recorded receipts, counted every 1-30 days with counting noise. The
forecast sees only the counts and receipts (as `shelfcount forecast` does) and is scored on the
next 28 days of true demand: MASE (scaled by the true series' in-sample one-step naive error)
of the daily demand and of the 28 days' total (scaled by the in-sample error of "the next 28
days sell what the last 28 did"), against two baselines computed from the same counts, the
last interval's rate ("naive") and the mean of the last 28 days ("moving average"); stock-out
prediction (SKUs whose stock truly runs out within their 7-day lead time, against
Days_Until_Stockout <= 7) precision and recall; the time to forecast every SKU; and shrinkage
alerts (one in ten SKUs loses a quarter to a half of its stock on one day) precision and
recall, from counts and receipts only and with the day's shipments known as well (an ERP's
outgoing moves). An oracle that knows each SKU's true demand process (its expected demand, its
probability of running out) shows how far any forecaster could go on the same data.
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
WEEK = np.array([1.0, 1.1, 1.0, 1.2, 1.6, 0.6, 0.5])
ORACLE_DRAWS = 400


def true_demand(kind: str, rng: np.random.Generator, n: int,
                params: dict | None = None) -> np.ndarray:
    """Daily demand of one SKU of a class, ``n`` days; its process's parameters go into
    ``params`` (for the stock-out oracle), the random draws in the same order either way."""
    p = params if params is not None else {}
    t = np.arange(n)
    if kind == "smooth":
        p["lam"] = rng.uniform(2, 12)
        return rng.poisson(p["lam"], n).astype(float)
    if kind == "intermittent":
        draws = rng.random(n)
        p["hit"] = rng.uniform(0.08, 0.3)
        p["lam"] = rng.uniform(1, 4)
        return (draws < p["hit"]) * rng.poisson(p["lam"], n) + (draws < p["hit"])
    if kind == "lumpy":
        draws = rng.random(n)
        p["hit"] = rng.uniform(0.03, 0.12)
        p["geo"] = rng.uniform(0.05, 0.2)
        return (draws < p["hit"]) * rng.geometric(p["geo"], n).astype(float)
    if kind == "trending":
        p["base"], p["growth"], p["n"] = rng.uniform(2, 6), rng.uniform(0.5, 1.5), n
        return rng.poisson(p["base"] * (1 + p["growth"] * t / n)).astype(float)
    p["lam"] = rng.uniform(3, 10)
    return rng.poisson(p["lam"] * WEEK[t % 7]).astype(float)


def future_demand(kind: str, p: dict, first_day: int, days: int, rng: np.random.Generator,
                  size: int) -> np.ndarray:
    """``size`` draws of the next ``days`` days of the same process from ``first_day``."""
    t = np.arange(first_day, first_day + days)
    shape = (size, days)
    if kind == "smooth":
        return rng.poisson(p["lam"], shape).astype(float)
    if kind == "intermittent":
        hit = rng.random(shape) < p["hit"]
        return hit * (rng.poisson(p["lam"], shape) + 1.0)
    if kind == "lumpy":
        return (rng.random(shape) < p["hit"]) * rng.geometric(p["geo"], shape).astype(float)
    if kind == "trending":
        return rng.poisson(p["base"] * (1 + p["growth"] * t / p["n"]), shape).astype(float)
    return rng.poisson(p["lam"] * WEEK[t % 7], shape).astype(float)


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


def _mase_total(pred: float, future: np.ndarray, past: np.ndarray) -> float:
    """MASE of the horizon's total (what a reorder point is made of): |true total - forecast
    total|, scaled by the in-sample error of "the next 28 days = the last 28 days"."""
    h = len(future)
    sums = np.convolve(past, np.ones(h), "valid")
    scale = max(float(np.mean(np.abs(sums[h:] - sums[:-h]))), 1e-6) if len(sums) > h else 1.0
    return float(abs(future.sum() - pred * h) / scale)


def _shrinkage_scores(series: list, thefts: dict[str, datetime], kinds: dict[str, str]
                      ) -> dict:
    """Alerts against injected thefts, overall and per demand class: an alert is right when
    a theft happened within its interval; a theft is found when the interval holding it raised
    an alert. Thefts in a bin's first MIN_HISTORY_DAYS (nothing usual to compare with) or after
    its last count (not seen yet) are left out of recall."""
    tally = {k: [0, 0, 0, 0] for k in CLASSES}  # alerts, right alerts, thefts seen, found
    for s in series:
        t = tally[kinds[s.sku]]
        theft = thefts.get(s.sku)
        if theft is not None and s.intervals and \
                s.intervals[0].before.at + timedelta(days=MIN_HISTORY_DAYS) < theft <= \
                s.intervals[-1].after.at:
            t[2] += 1
        hit = [theft is not None and iv.before.at < theft <= iv.after.at
               for _, iv, _, _ in drops(s, InsightSettings())]
        t[0], t[1], t[3] = t[0] + len(hit), t[1] + sum(hit), t[3] + any(hit)

    def scores(a: int, h: int, seen: int, found: int) -> dict:
        return {"thefts_seen": seen, "alerts": a, "precision": h / max(1, a),
                "recall": found / max(1, seen)}

    total = [sum(t[i] for t in tally.values()) for i in range(4)]
    return {**scores(*total), "by_class": {k: scores(*t) for k, t in tally.items()}}


def run(n_skus: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    history, receipts, shipments, truth, thefts = [], [], [], {}, {}
    kind_of: dict[str, str] = {}
    for i in range(n_skus):
        kind, sku = CLASSES[i % len(CLASSES)], f"SKU-{i:05d}"
        params: dict = {}
        demand = true_demand(kind, rng, DAYS + HORIZON, params)
        theft_day = int(rng.integers(30, DAYS - 20)) if rng.random() < THEFT_SHARE else None
        if theft_day is not None:  # during the day, before that day's count at noon
            thefts[sku] = START + timedelta(days=theft_day, hours=6)
        counts, recs, stock = simulate(sku, demand, rng, theft_day, shipments)
        history += counts
        receipts += recs
        last = counts[-1]
        day = (last.at - START).days
        truth[sku] = (kind, demand, day, stock, params)
        kind_of[sku] = kind
    t0 = time.perf_counter()
    series = demand_series(history, receipts)
    rows = forecast_rows(series, lambda _sku: Supply(lead_time_days=LEAD), HORIZON)
    forecast_s = time.perf_counter() - t0
    oracle = _oracle(series, truth, seed)
    scores, runs_out, predicted, kinds = _score(series, rows, truth, oracle)
    out = _summary(scores, np.array(runs_out), np.array(predicted), forecast_s, n_skus)
    out["stockout"]["true_by_class"] = {k: sum(1 for r, c in zip(runs_out, kinds, strict=True)
                                               if r and c == k) for k in CLASSES}
    out["stockout"]["oracle"] = _oracle_stockouts(series, oracle, np.array(runs_out))
    known = demand_series(history, receipts, shipments)
    known_rows = forecast_rows(known, lambda _sku: Supply(lead_time_days=LEAD), HORIZON)
    k_scores, k_out, k_pred, _ = _score(known, known_rows, truth, oracle)
    out["shipments_known"] = _summary(k_scores, np.array(k_out), np.array(k_pred), 0.0, n_skus)
    out["shrinkage"] = {
        "counts_only": _shrinkage_scores(series, thefts, kind_of),
        "shipments_known": _shrinkage_scores(known, thefts, kind_of)}
    return out


def _oracle(series: list, truth: dict, seed: int) -> dict[str, tuple[float, float]]:
    """Per SKU, what knowing its true demand process would give: (expected daily demand over
    the horizon, probability that the stock at its last count runs out within the lead
    time), from ORACLE_DRAWS draws of its future."""
    rng = np.random.default_rng(seed + 1)
    out = {}
    for s in series:
        kind, _, day, stock, params = truth[s.sku]
        draws = future_demand(kind, params, day, HORIZON, rng, ORACLE_DRAWS)
        out[s.sku] = (float(draws.mean()),
                      float(np.mean(draws[:, :LEAD].sum(axis=1) >= stock[day])))
    return out


def _oracle_stockouts(series: list, oracle: dict, runs_out: np.ndarray) -> dict:
    """The ceiling of any stock-out predictor: the oracle's probability >= 0.5."""
    predicted = np.array([oracle[s.sku][1] >= 0.5 for s in series])
    tp = int((predicted & runs_out).sum())
    return {"predicted": int(predicted.sum()), "precision": tp / max(1, int(predicted.sum())),
            "recall": tp / max(1, int(runs_out.sum())),
            "expected_true": round(float(sum(oracle[s.sku][1] for s in series)), 1)}


def _score(series: list, rows: list, truth: dict,
           oracle: dict) -> tuple[dict, list, list, list]:
    """MASE of the forecast, the baselines (from the same observed series) and the oracle, per
    class; whether each SKU truly runs out within the lead time and whether it was predicted."""
    scores: dict[str, dict[str, list[float]]] = {
        k: {f"{n}{t}": [] for n in ("model", "naive", "ma", "oracle") for t in ("", "_total")}
        for k in CLASSES}
    runs_out, predicted, kinds = [], [], []
    for s, row in zip(series, rows, strict=True):
        kind, demand, day, stock, _ = truth[s.sku]
        future, past = demand[day:day + HORIZON], demand[:day]
        observed = s.demand
        naive = float(observed[-1]) if len(observed) else 0.0
        ma = float(observed[-28:].mean()) if len(observed) else 0.0
        model = float(row["Daily_Demand"] or 0.0)
        # "oracle": the process's expected demand over the next 28 days (what a forecaster
        # knowing the process would say; the days' own randomness stays unknowable).
        for name, pred in (("model", model), ("naive", naive), ("ma", ma),
                           ("oracle", oracle[s.sku][0])):
            scores[kind][name].append(_mase(pred, future, past))
            scores[kind][f"{name}_total"].append(_mase_total(pred, future, past))
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
        best_total = min(m["naive_total"], m["ma_total"])
        by_class[kind] = {**m, "vs_best_baseline": 1 - m["model"] / best,
                          "total_vs_best_baseline": 1 - m["model_total"] / best_total}
    tp = int((runs_out & predicted).sum())
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{os.cpu_count()} CPUs", "skus": n, "mase": by_class,
            "stockout": {"true": int(runs_out.sum()), "predicted": int(predicted.sum()),
                         "precision": tp / max(1, int(predicted.sum())),
                         "recall": tp / max(1, int(runs_out.sum()))},
            "forecast_s": round(forecast_s, 2)}


def _table(mase: dict) -> None:
    """Per class: daily MASE (model, baselines, the oracle flat forecast) and the same for the
    28-day total; "vs best" = how much lower the model's MASE is than the better baseline's."""
    print("| class | daily MASE: forecast | naive | moving avg | vs best | oracle vs best "
          "| 28-day total MASE: forecast | naive | moving avg | vs best | oracle vs best |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for kind, m in mase.items():
        cells = []
        for t in ("", "_total"):
            best = min(m[f"naive{t}"], m[f"ma{t}"])
            cells += [f"{m[f'model{t}']:.3f}", f"{m[f'naive{t}']:.3f}", f"{m[f'ma{t}']:.3f}",
                      f"{1 - m[f'model{t}'] / best:+.1%}", f"{1 - m[f'oracle{t}'] / best:+.1%}"]
        print(f"| {kind} | " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skus", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    result = run(args.skus, args.seed)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    _table(result["mase"])
    so = result["stockout"]
    print(f"stock-outs within {LEAD} days: {so['true']} true, {so['predicted']} predicted, "
          f"precision {so['precision']:.2f}, recall {so['recall']:.2f} (true by class: "
          f"{', '.join(f'{k} {v}' for k, v in so['true_by_class'].items())})")
    orc = so["oracle"]
    print(f"  oracle (the true process's stock-out probability >= 0.5): {orc['predicted']} "
          f"predicted, precision {orc['precision']:.2f}, recall {orc['recall']:.2f}; "
          f"stock-outs expected from the processes: {orc['expected_true']}")
    print("with the day's shipments known (the forecast and baselines see them):")
    _table(result["shipments_known"]["mase"])
    so = result["shipments_known"]["stockout"]
    print(f"stock-outs with shipments known: precision {so['precision']:.2f}, "
          f"recall {so['recall']:.2f}")
    for mode, sh in result["shrinkage"].items():
        print(f"shrinkage ({mode.replace('_', ' ')}): {sh['thefts_seen']} thefts between "
              f"counts, {sh['alerts']} alerts, precision {sh['precision']:.2f}, "
              f"recall {sh['recall']:.2f}; by class: " + ", ".join(
                  f"{k} {c['precision']:.2f}/{c['recall']:.2f}"
                  for k, c in sh["by_class"].items()))
    print(f"forecast of {result['skus']} SKUs: {result['forecast_s']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
