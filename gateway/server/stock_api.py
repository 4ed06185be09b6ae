"""Stock REST under ``/api/v1``: the forecast, reorder suggestions and stock alerts for
managers; the bins to count today for everyone.

Approving a suggestion records the decision in the store and wakes the purchase worker, which
makes the ERP's purchase request (exactly once, retried while the ERP is away); the answer
does not wait for the ERP, and the suggestion's ``erp`` member says how far it got.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, Response, jsonify, request

from gateway.schema import MAX_LOCATION, ApiErrorBody, ReorderDecision
from gateway.store import StoreError
from gateway.store.types import utcnow

from .errors import ApiError
from .openapi import API_PREFIX, operation
from .rest import MANAGERS, OBJECT, _body, _manager, authenticate, services

stock_api = Blueprint("stock", __name__, url_prefix=API_PREFIX)
stock_api.before_request(authenticate)
STATE_FILTERS = {"open": ("open",), "approved": ("approved",), "dismissed": ("dismissed",),
                 "all": ("open", "approved", "dismissed")}
NO_SUGGESTION = "no such suggestion"


@stock_api.get("/forecast")
@operation(
    "Managers: demand forecast and reorder suggestion per SKU and location",
    description="Query horizon: days ahead, 1-365 (default 28). rows: the columns of "
                "`shelfcount forecast` (SKU, Location, On_Hand, Daily_Demand, Demand_Low, "
                "Demand_High, Days_Until_Stockout, Reorder_Point, Suggested_Order_Qty, Method, "
                "Last_Count), from the count history, confirmed bays and receipts.",
    responses={200: (OBJECT, "the forecast"), 400: (ApiErrorBody, "bad horizon"),
               403: (ApiErrorBody, MANAGERS)})
def forecast() -> Response:
    """Forecast rows for managers (the same table as the CLI)."""
    from gateway.stock.forecast import forecast_table

    _manager()
    horizon = _days("horizon", 28, 365)
    svc = services()
    rows = forecast_table(svc.store, svc.pipelines.get().catalog, horizon)
    return jsonify({"horizon": horizon, "rows": rows})


def _count(name: str, default: int, most: int, what: str = "") -> int:
    """A whole number from the query, 1..most (400 otherwise)."""
    raw = request.args.get(name, str(default))
    # isdigit() alone takes "²" and other digits int() refuses; the length keeps int() cheap
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9) or not 1 <= int(raw) <= most:
        raise ApiError("bad_request", f"{name}: a whole number{what}, 1-{most}", 400)
    return int(raw)


def _days(name: str, default: int, most: int) -> int:
    return _count(name, default, most, " of days")


def _json(suggestion: object) -> dict:
    from gateway.stock.reorder import suggestion_json

    svc = services()
    return suggestion_json(suggestion, svc.pipelines.get().catalog,  # type: ignore[arg-type]
                           erp_on=svc.on_approved is not None)


@stock_api.get("/reorder-suggestions")
@operation(
    "Managers: what to order now (the forecast's suggestions) and past decisions",
    description="Query state: open (default; refreshed from today's forecast), approved, "
                "dismissed or all. Each: id, sku, location, quantity, description, supplier, "
                "unit_price, order_value, facts (On_Hand, Daily_Demand, Days_Until_Stockout, "
                "Reorder_Point, Method, Last_Count, Lead_Time_Days), state, decided_by/at, "
                "note, erp (state sent|pending|failed|not_configured, reference, error).",
    query={"state": {"type": "string", "enum": list(STATE_FILTERS)},
           "limit": {"type": "integer", "minimum": 1, "maximum": 1000,
                     "description": "decided suggestions: the latest this many (200)"}},
    responses={200: (OBJECT, "suggestions"), 400: (ApiErrorBody, "bad state"),
               403: (ApiErrorBody, MANAGERS)})
def reorder_suggestions() -> Response:
    from gateway.stock.reorder import refresh

    _manager()
    wanted = request.args.get("state", "open")
    if wanted not in STATE_FILTERS:
        raise ApiError("bad_request", f"state: one of {', '.join(STATE_FILTERS)}", 400)
    limit = _count("limit", 200, 1000)
    svc = services()
    if wanted in ("open", "all"):
        refresh(svc.store, svc.pipelines.get().catalog)
    found = svc.store.suggestions(STATE_FILTERS[wanted], decided_limit=limit)
    found.sort(key=_listing_order)
    return jsonify({"suggestions": [_json(s) for s in found]})


def _listing_order(s: Any) -> tuple:
    """Open ones most urgent first (fewest days of stock left); decided ones latest decision
    first, so a client showing the first few shows the latest."""
    if s.state == "open":
        days = s.facts.get("Days_Until_Stockout")
        return (0, float(days) if isinstance(days, int | float) else float("inf"), s.sku,
                s.location)
    return (1, -(s.decided_at.timestamp() if s.decided_at else 0.0), s.sku, s.location)


def _decide(suggestion_id: str, action: str) -> Response:
    me = _manager()
    decision = _body(ReorderDecision) if request.get_data(cache=True).strip() else \
        ReorderDecision()
    if action == "dismiss" and decision.quantity is not None:
        raise ApiError("bad_request", "quantity: only an approval takes a quantity", 400)
    svc = services()
    try:
        s = svc.store.decide_suggestion(suggestion_id, action, me.name, utcnow(),
                                        quantity=decision.quantity, note=decision.note)
    except StoreError as exc:
        status = 404 if exc.code == "not_found" else 409
        raise ApiError(exc.code, exc.message, status) from None
    if action == "approve" and svc.on_approved is not None:
        svc.on_approved()
    return jsonify(_json(s))


DECISION_DOC = {"body": ReorderDecision,
                "responses": {200: (OBJECT, "the suggestion"), 400: (ApiErrorBody, "bad body"),
                              403: (ApiErrorBody, MANAGERS),
                              404: (ApiErrorBody, NO_SUGGESTION),
                              409: (ApiErrorBody, "decided the other way, or expired")}}


@stock_api.post("/reorder-suggestions/<suggestion_id>/approve")
@operation("Managers: approve a suggestion (body optional: quantity, note); the ERP gets "
           "one purchase request", **DECISION_DOC)
def approve_suggestion(suggestion_id: str) -> Response:
    return _decide(suggestion_id, "approve")


@stock_api.post("/reorder-suggestions/<suggestion_id>/dismiss")
@operation("Managers: dismiss a suggestion (body optional: note); it comes back only after "
           "the next count", **DECISION_DOC)
def dismiss_suggestion(suggestion_id: str) -> Response:
    return _decide(suggestion_id, "dismiss")


def _insights() -> tuple[Any, Any, Any]:
    """(demand series, price lookup, thresholds) from the store and the catalog."""
    from gateway.stock.demand import demand_series
    from gateway.stock.insights import InsightSettings

    svc = services()
    catalog = svc.pipelines.get().catalog

    def price(sku: str) -> Any:
        entry = catalog.by_sku(sku)
        return entry.unit_price if entry is not None else None

    series = demand_series(svc.store.history(), svc.store.receipts(), svc.store.shipments())
    return series, price, InsightSettings.from_settings(svc.settings)


@stock_api.get("/stock-alerts")
@operation(
    "Managers: slow movers, expiry at risk and shrinkage alerts",
    description="Query days (1-3650, default 30): shrinkage alerts of counts in that many "
                "days. slow_movers: stock without consumption for SHELFCOUNT_SLOW_MOVER_DAYS or "
                "over SHELFCOUNT_SLOW_MOVER_WEEKS of cover (value tied up, suggestion clear); "
                "expiry_risk: stock expiring before it runs out (likely_to_expire, "
                "value_at_risk); shrinkage: drops far above usual demand, state recount | "
                "shrinkage | miscount | unconfirmed, missing units and their value; "
                "anomalies: counts far above what receipts and shipments allow (a receipt "
                "not recorded or a miscount), state recount (the bin's latest count) | "
                "unexplained.",
    query={"days": {"type": "integer", "minimum": 1, "maximum": 3650}},
    responses={200: (OBJECT, "alerts"), 400: (ApiErrorBody, "bad days"),
               403: (ApiErrorBody, MANAGERS)})
def stock_alerts() -> Response:
    from gateway.stock.insights import expiry_risk, rises, shrinkage_alerts, slow_movers

    _manager()
    days = _days("days", 30, 3650)
    series, price, cfg = _insights()
    now = utcnow()
    return jsonify({
        "slow_movers": slow_movers(series, price, now.date(), cfg),
        "expiry_risk": expiry_risk(series, price, now.date()),
        "shrinkage": shrinkage_alerts(series, price, cfg, now - timedelta(days=days)),
        "anomalies": rises(series, cfg, now - timedelta(days=days))})


@stock_api.get("/tasks")
@operation(
    "Bins to count today, in location order (a walker's route)",
    description="Recounts for open shrinkage alerts, then cycle counts due by ABC class "
                "(annual consumption value; SHELFCOUNT_ABC_SHARES, SHELFCOUNT_COUNT_EVERY_DAYS). "
                "Each: location, sku, abc, reason, last_count, days_since, recount, expected "
                "(the quantity the bin should hold now; left out for walkers with "
                "SHELFCOUNT_BLIND_COUNTS=1).",
    responses={200: (OBJECT, "tasks")})
def tasks() -> Response:
    from gateway.stock.insights import count_tasks

    from .rest import device

    series, price, cfg = _insights()
    found = count_tasks(series, price, utcnow().date(), cfg)
    if services().settings.blind_counts and not device().is_manager:
        for task in found:
            task.pop("expected")
    return jsonify({"tasks": found})


@stock_api.get("/stock-history")
@operation(
    "Managers: one bin's counts, receipts and forecast (the dashboard's chart)",
    description="Query sku and location (both required). counts: [date, quantity] (the last "
                "count of each day), receipts: [date, quantity], forecast: the bin's "
                "`shelfcount forecast` row.",
    query={"sku": {"type": "string"}, "location": {"type": "string"}},
    responses={200: (OBJECT, "history"), 400: (ApiErrorBody, "sku or location missing"),
               403: (ApiErrorBody, MANAGERS), 404: (ApiErrorBody, "never counted")})
def stock_history() -> Response:
    from gateway.stock.demand import demand_series
    from gateway.stock.forecast import forecast_rows, supply_from

    _manager()
    sku, location = (request.args.get(k, "").strip() for k in ("sku", "location"))
    if not sku or not location or len(sku) > MAX_LOCATION or len(location) > MAX_LOCATION:
        raise ApiError("bad_request", f"sku and location: 1-{MAX_LOCATION} characters each",
                       400)
    svc = services()

    def mine(events: list) -> list:
        return [e for e in events if e.sku == sku and e.location == location]

    counts = mine(svc.store.history())
    if not counts:
        raise ApiError("not_found", f"{sku} at {location} was never counted", 404)
    receipts = mine(svc.store.receipts())
    (series,) = demand_series(counts, receipts, mine(svc.store.shipments()))
    catalog = svc.pipelines.get().catalog
    (row,) = forecast_rows([series], lambda s: supply_from(catalog.by_sku(s)))
    by_day = {e.at.date().isoformat(): e.quantity for e in sorted(counts, key=lambda e: e.at)}
    return jsonify({"sku": sku, "location": location, "counts": sorted(by_day.items()),
                    "receipts": [[e.at.date().isoformat(), e.quantity] for e in receipts],
                    "forecast": row})
