"""The JSON views of a count: what a client is told about it (WebSocket, gRPC, waiting REST
calls) and the full REST record."""

from __future__ import annotations

from typing import Any

from gateway.store import CountRecord
from gateway.store.types import to_ts


def shown_boxes(record: CountRecord) -> list[list[Any]]:
    """The boxes a client draws, ``[x0, y0, x1, y1, score, sku]``: a person's corrected set
    (score 1.0) once there is one, else the model's."""
    edit = record.box_edit
    if edit is None:
        return list((record.result or {}).get("boxes", []))
    return [[*box[:4], 1.0, box[4]] for box in edit.boxes]


def _picture(record: CountRecord) -> dict[str, Any]:
    """What both views say about the photo itself: boxes (a person's, once corrected; the
    model's stay as ``model_boxes``), codes, size, timings."""
    result = dict(record.result or {})
    edit = record.box_edit
    return {"boxes": shown_boxes(record),
            "model_boxes": result.get("boxes", []),
            "boxes_corrected": None if edit is None else {
                "by": edit.by_name, "at": to_ts(edit.corrected_at)},
            "codes": result.get("codes", []),
            "timings_ms": result.get("timings_ms", {}),
            "width": result.get("width", 0), "height": result.get("height", 0),
            "model_version": result.get("model_version"),
            "findings": record.findings,
            "people": result.get("people", [])}  # faces blurred in the kept photo


def _box_sources(record: CountRecord) -> list[str]:
    """Per box what named its SKU; ``person`` for every box of a corrected set."""
    if record.box_edit is not None:
        return ["person"] * len(record.box_edit.boxes)
    return list((record.result or {}).get("box_sources", []))


def needs_check(record: CountRecord, review_below: float) -> bool:
    """A counted photo nobody corrected yet whose least sure line is below ``review_below``."""
    if record.status != "done" or record.box_edit is not None or record.corrections:
        return False
    return any(float(row.get("Count_Confidence") or 0) < review_below for row in record.rows)


def outcome_message(record: CountRecord, bay: dict[str, Any] | None = None,
                    review_below: float = 0.0) -> dict[str, Any] | None:
    """What a client is told about a count now; None while it is still being counted.

    ``bay``: the photo's bay fields (``Services.bay``), merged into a result.
    """
    base = {"id": record.client_id, "count_id": record.id, "session": record.session_id}
    if record.status == "done":
        return {
            "type": "result", **base,
            "rows": record.rows,
            **_picture(record),
            "box_sources": _box_sources(record),
            "please_check": needs_check(record, review_below),
            "confirmed": record.confirmed_at is not None,
            "recount": None if not record.recount_note else {
                "note": record.recount_note, "by": record.recount_by,
                "at": record.recount_at and to_ts(record.recount_at)},
            **(bay or {}),
        }
    if record.status == "failed":
        return {"type": "error", **base, "code": record.error_code or "failed",
                "message": record.error_message or "counting failed"}
    if record.status == "waiting":
        return {"type": "error", **base, "code": "triton_unavailable", "queued": True,
                "message": "the inference server is unavailable; the photo is stored and "
                           "will be counted when it is back (the result follows)"}
    return None


def count_json(record: CountRecord, bay: dict[str, Any] | None = None) -> dict[str, Any]:
    """The full REST view of a count: effective rows, the model's rows and the corrections;
    ``bay``: its bay fields (``Services.bay``)."""
    result = dict(record.result or {})
    return {
        "id": record.id,
        "photo_id": record.client_id,
        "session": record.session_id,
        "source": record.source,
        "status": record.status,
        "location": record.location,
        "photo_sha256": record.photo_hash,
        "created_at": to_ts(record.created_at),
        "finished_at": record.finished_at and to_ts(record.finished_at),
        "rows": record.rows,
        "model_rows": record.model_rows,
        "corrections": [c.to_json() for c in record.corrections],
        **_picture(record),
        "error": None if record.status != "failed"
        else {"code": record.error_code, "message": record.error_message},
        "confirmed_at": record.confirmed_at and to_ts(record.confirmed_at),
        "confirmed_by": record.confirmed_by,
        "location_source": result.get("location_source"),
        "location_choice": record.location_choice,
        **(bay or {}),
    }
