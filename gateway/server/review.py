"""The manager's day: sessions by walker with progress, and the bays that need a look.

A bay is queued for review when its location is in doubt, a line is uncertain (low
Count_Confidence, unidentified items), a stock flag applies (low or out of stock by the
catalog's reorder points), or it was sent back for a recount. Variance against the ERP's
system quantity is computed by the sinks when a bay is delivered (the sheet's Flag column);
this view does not call the ERP.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.sinks.variance import Thresholds, assess
from gateway.store import CountRecord, Store
from gateway.store.bays import bay_summary
from gateway.store.types import to_ts, utcnow

from .views import needs_check, shown_boxes


def start_of_day(now: datetime | None = None) -> datetime:
    now = now or utcnow()
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def bay_reasons(bay: dict[str, Any], records: list[CountRecord], reorder_point: Any,
                thresholds: Thresholds, review_below: float) -> tuple[list[str], list[dict]]:
    """Why a bay needs a manager (empty: it does not), and each line's stock flags."""
    reasons: list[str] = []
    if bay["location_conflict"]:
        reasons.append(f"location: {bay['location_conflict']['message']}")
    low = [r["SKU"] or "unidentified" for r in bay["rows"]
           if float(r.get("Count_Confidence") or 0) < review_below]
    if low:
        reasons.append(f"low confidence: {', '.join(low)}")
    if any(not r.get("SKU") and int(r.get("Quantity_Counted") or 0) for r in bay["rows"]):
        reasons.append("unidentified items")
    lines = []
    for row in bay["rows"]:
        flags = assess(row, None, reorder_point(str(row.get("SKU") or "")), thresholds).flags
        lines.append({**row, "Flags": list(flags)})
        if flags and row.get("SKU"):
            reasons.append(f"{row['SKU']}: {', '.join(flags).lower()}")
    recount = next((r for r in records if r.recount_note), None)
    if recount is not None:
        reasons.append(f"sent back: {recount.recount_note}")
    return reasons, lines


def day_overview(store: Store, reorder_point: Any, thresholds: Thresholds,
                 since: datetime | None = None, *, review_below: float = 0.6
                 ) -> dict[str, Any]:
    """Sessions since ``since`` (default: today, UTC) and the review queue: open bays with
    reasons first, then open ones without, then confirmed ones, oldest first within each."""
    since = since or start_of_day()
    sessions, queue = [], []
    for session in store.sessions_since(since):
        records = store.session_counts(session.id)
        bays = bay_summary(records)
        by_id = {r.client_id: r for r in records}
        confirmed_ids = {r.id for r in records if r.confirmed_at is not None}
        sessions.append({
            "id": session.id, "walker": session.walker, "started": to_ts(session.created_at),
            "photos": len(records), "bays": len(bays),
            "confirmed": sum(1 for b in bays if b["confirmed"]),
        })
        for bay in bays:
            current = [by_id[p] for p in bay["photos"] if p in by_id]
            if not current:
                continue
            reasons, lines = bay_reasons(bay, current, reorder_point, thresholds,
                                         review_below)
            if not bay["confirmed"] and any(r.replaces in confirmed_ids for r in current):
                reasons.insert(0, "reopened: confirm again to send the new version")
            latest = current[-1]
            queue.append({
                "session": session.id, "walker": session.walker, "bay": bay["bay"],
                "location": bay["location"], "count_id": latest.id,
                "photo_id": latest.client_id, "confirmed": bay["confirmed"],
                "reasons": reasons, "rows": lines,
                "boxes": shown_boxes(latest),
                "photo_url": f"/api/v1/counts/{latest.id}/photo",
                "please_check": any(needs_check(r, review_below) for r in current),
                "width": (latest.result or {}).get("width", 0),
                "height": (latest.result or {}).get("height", 0),
                "recount": latest.recount_note,
                "at": to_ts(latest.created_at),
            })
    queue.sort(key=lambda q: (q["confirmed"], not q["reasons"], q["at"]))
    return {"since": to_ts(since), "sessions": sessions, "queue": queue}
