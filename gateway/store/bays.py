"""Bays: what one location of a session counts, from its current photo(s).

A walker may photograph a bay several times. A retake replaces the bay's photo (the old one is
kept in history, not counted); a wide bay may be photographed in parts, whose lines are summed.
Which bay a photo belongs to and whether its location is in doubt are worked out here from
stored records only, so every front end and the sinks see the same answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .rows import line_key, set_quantity
from .types import CountRecord

# Where the pipeline's location came from (gateway.pipeline.fuse.pick_location).
READ_SOURCES = ("code", "ocr")


def bay_location(record: CountRecord) -> str:
    """The location this photo counts: the walker's answer, the rows', or the one chosen."""
    if record.location_choice:
        return record.location_choice
    for row in record.model_rows:
        if row.get("Location"):
            return str(row["Location"])
    return record.location or ""


def location_conflict(record: CountRecord) -> dict[str, Any] | None:
    """Why the photo's location needs the walker's decision, or None.

    ``mismatch``: the bin label read in the photo is not the location the walker chose.
    ``unknown``: the location (read or chosen) is not one of the catalog's bins.
    Answered once the walker chose a location (``location_choice``).
    """
    if record.status != "done" or record.location_choice:
        return None
    result = record.result or {}
    read = bay_location(record)
    source = result.get("location_source")
    chosen = record.location
    if chosen and source in READ_SOURCES and read and read.upper() != chosen.upper():
        return {"reason": "mismatch", "chosen": chosen, "read": read,
                "message": f"the photo shows bin {read}, but {chosen} was chosen"}
    if read and result.get("location_known") is False:
        return {"reason": "unknown", "chosen": chosen, "read": read,
                "message": f"{read} is not a location in the catalog"}
    return None


def sum_rows(parts: Sequence[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Lines of several photos of one bay, one line per (Location, SKU), quantities summed."""
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for rows in parts:
        for row in rows:
            key = line_key(row)
            if key not in out:
                out[key] = dict(row)
                continue
            _merge(out[key], row)
    return list(out.values())


def _merge(into: dict[str, Any], row: dict[str, Any]) -> None:
    qty = int(into.get("Quantity_Counted") or 0) + int(row.get("Quantity_Counted") or 0)
    set_quantity(into, qty)
    expiries = [e for e in (into.get("Expiration_Date"), row.get("Expiration_Date")) if e]
    into["Expiration_Date"] = min(expiries) if expiries else ""
    into["Count_Confidence"] = min(float(into.get("Count_Confidence") or 0.0),
                                   float(row.get("Count_Confidence") or 0.0))
    into["Last_Updated"] = max(str(into.get("Last_Updated") or ""),
                               str(row.get("Last_Updated") or ""))
    if qty and into.get("Condition") in ("Out of Stock", "", None):
        into["Condition"] = row.get("Condition") or "Good"


# GS1 application identifiers that name one unit, not a product: serial number, SSCC.
UNIQUE_AIS = ("(21)", "(00)")


def shared_codes(parts: Iterable[CountRecord]) -> list[str]:
    """Codes naming one unit (GS1 serial or SSCC) seen in more than one part of a bay: the
    same item photographed twice, so the walker is told the sum counts it twice. Product
    codes (an EAN on every carton of a SKU) say nothing about overlap."""
    seen: dict[str, int] = {}
    for record in parts:
        texts = {str(c.get("Text")) for c in (record.result or {}).get("codes", [])}
        for text in texts:
            if any(ai in text for ai in UNIQUE_AIS):
                seen[text] = seen.get(text, 0) + 1
    return sorted(t for t, n in seen.items() if n > 1)


def bay_summary(records: Sequence[CountRecord]) -> list[dict[str, Any]]:
    """A session's bays in photo order: current photos, history, summed rows, state."""
    bays: dict[str, list[CountRecord]] = {}
    for record in records:
        if record.status == "done" and record.bay_id:
            bays.setdefault(record.bay_id, []).append(record)
    out = []
    for bay_id, members in bays.items():
        current = [r for r in members if r.is_current]
        out.append({
            "bay": bay_id,
            "location": bay_location(current[-1] if current else members[-1]),
            "photos": [r.client_id for r in current],
            "history": [r.client_id for r in members if not r.is_current],
            "rows": sum_rows([r.rows for r in current]),
            "confirmed": bool(current) and all(r.confirmed_at is not None for r in current),
            "location_conflict": next((c for r in current if (c := location_conflict(r))),
                                      None),
            "overlap_codes": shared_codes(current) if len(current) > 1 else [],
        })
    return out


def settle(record: CountRecord, done: Sequence[CountRecord]
           ) -> tuple[str, list[str], str | None]:
    """(bay id, ids of photos it replaces, id of the photo it stands behind or None) for a
    photo just counted; ``done`` = the session's counted photos.

    An explicit ``part_of`` joins that photo's bay; ``replaces`` replaces that photo. Without
    either, a photo of a location the session already holds is a retake of that bay. A bay
    that is confirmed is closed: a new photo of it is kept and stands behind it. Photos may
    be counted out of order (a queue during an outage): an older photo never replaces a
    newer one.
    """
    others = {r.id: r for r in done if r.id != record.id}
    ref_id = record.part_of or record.replaces
    if ref_id:
        ref = others.get(ref_id)
        if ref is None:  # not counted (yet): its id names the bay, it follows when counted
            return (ref_id if record.part_of else record.id), [], None
        bay = ref.bay_id or ref.id
        if ref.confirmed_at is not None:
            return bay, [], ref.id
        return bay, ([] if record.part_of else [ref.id]), None
    location = bay_location(record).upper()
    same = [r for r in others.values()
            if r.bay_id and r.is_current and location and bay_location(r).upper() == location]
    if not same:
        return record.id, [], None
    bay = same[-1].bay_id
    assert bay is not None
    confirmed = [r for r in same if r.confirmed_at is not None]
    newer = [r for r in same if r.created_at > record.created_at]
    if confirmed or newer:
        return bay, [], (confirmed or newer)[-1].id
    return bay, [r.id for r in same], None


def bay_fields(record: CountRecord, members: Sequence[CountRecord]) -> dict[str, Any]:
    """What a client is told about the photo's bay (protocol fields of ``result``)."""
    by_id = {m.id: m for m in members}
    current = [m for m in members if m.is_current and m.status == "done"]
    standing = by_id.get(record.superseded_by or "")
    return {
        "bay": record.bay_id,
        "current": record.is_current,
        "superseded_by": standing.client_id if standing else record.superseded_by,
        "replaced": [m.client_id for m in members if m.superseded_by == record.id],
        "parts": [m.client_id for m in current],
        "bay_rows": sum_rows([m.rows for m in current]),
        "bay_confirmed": any(m.confirmed_at is not None for m in current),
        "location_conflict": location_conflict(record),
        "overlap_codes": shared_codes(current) if len(current) > 1 else [],
    }
