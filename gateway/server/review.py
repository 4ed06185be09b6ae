"""The manager's day: sessions by walker with progress, and the bays that need a look.

A bay is queued for review when its location is in doubt, a line is uncertain (low
Count_Confidence, unidentified items), a stock flag applies (low or out of stock by the
catalog's reorder points), its count differs from the ERP's system quantity beyond the
variance thresholds (with Tryton configured: the on-hand quantity before the count, read when
the manager opens the day), or it was sent back for a recount. When the ERP cannot be reached
the day is still shown, without variance, and says so.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.sinks.variance import Thresholds, assess
from gateway.store import CountRecord, OutboxEntry, Store
from gateway.store.bays import bay_summary
from gateway.store.types import to_ts, utcnow

from .views import needs_check, shown_boxes


def start_of_day(now: datetime | None = None) -> datetime:
    now = now or utcnow()
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def bay_reasons(bay: dict[str, Any], records: list[CountRecord], reorder_point: Any,
                thresholds: Thresholds, review_below: float,
                system: dict[tuple[str, str], Any] | None = None
                ) -> tuple[list[str], list[dict]]:
    """Why a bay needs a manager (empty: it does not), and each line's stock flags with its
    variance columns (``system``: (Location, SKU) -> the ERP's quantity, None: no ERP)."""
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
        key = (str(row.get("Location") or bay["location"] or ""), str(row.get("SKU") or ""))
        line = assess(row, (system or {}).get(key), reorder_point(key[1]), thresholds)
        flags = line.flags
        lines.append({**row, **line.columns(), "Flags": list(flags)})
        if flags and row.get("SKU"):
            reasons.append(f"{row['SKU']}: {', '.join(flags).lower()}")
    recount = next((r for r in records if r.recount_note), None)
    if recount is not None:
        reasons.append(f"sent back: {recount.recount_note}")
    return reasons, lines


def _bay_entry(bay: dict[str, Any], latest: CountRecord, ids: dict[str, str],
               entries: list[OutboxEntry]) -> OutboxEntry:
    """What the ERP was (or would be) sent for the bay: a confirmed bay's last outbox entry,
    which carries the count id the ERP booked it under (whichever of its photos the walker
    confirmed from), else the bay as it stands, under its latest photo."""
    if bay["confirmed"]:
        members = {ids[p] for p in bay["photos"] + bay["history"] if p in ids}
        sent = [e for e in entries if e.count_id in members]
        if sent:
            return max(sent, key=lambda e: e.created_at)
    return OutboxEntry("", latest.id, latest.session_id, "", bay["location"], bay["rows"],
                       latest.created_at, None)


def _erp_quantities(system_quantities: Any, entry: OutboxEntry,
                    erp: dict[str, Any]) -> dict[tuple[str, str], Any] | None:
    """The ERP's quantities for a bay's lines, or None. A bay the ERP cannot take (no
    location yet, a refused look-up) goes without and the others still get theirs; when the
    ERP itself failed (unreachable, 5xx) ``erp`` records why and later bays do not try again."""
    if system_quantities is None or erp["state"] != "ok":
        return None
    from gateway.sinks.base import SinkError

    try:
        return system_quantities(entry)
    except SinkError as exc:
        if exc.transient:
            erp.update(state="unavailable", error=str(exc)[:300])
        else:
            erp.setdefault("skipped", []).append({"count_id": entry.count_id,
                                                  "error": str(exc)[:300]})
        return None
    except Exception as exc:  # noqa: BLE001 - the day is shown without variance
        erp.update(state="unavailable", error=str(exc)[:300])
        return None


def day_overview(store: Store, reorder_point: Any, thresholds: Thresholds,
                 since: datetime | None = None, *, review_below: float = 0.6,
                 system_quantities: Any = None) -> dict[str, Any]:
    """Sessions since ``since`` (default: today, UTC) and the review queue: open bays with
    reasons first, then open ones without, then confirmed ones, oldest first within each.
    ``system_quantities``: the ERP sink's look-up (Tryton), None without an ERP."""
    since = since or start_of_day()
    sessions, queue = [], []
    erp: dict[str, Any] = {"state": "ok" if system_quantities else "not_configured"}
    for session in store.sessions_since(since):
        records = store.session_counts(session.id)
        bays = bay_summary(records)
        by_id = {r.client_id: r for r in records}
        ids = {r.client_id: r.id for r in records}
        entries = store.outbox_entries(session.id) if system_quantities is not None else []
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
            system = _erp_quantities(
                system_quantities, _bay_entry(bay, current[-1], ids, entries), erp)
            reasons, lines = bay_reasons(bay, current, reorder_point, thresholds,
                                         review_below, system)
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
    return {"since": to_ts(since), "sessions": sessions, "queue": queue, "erp": erp}
