"""REST API under ``/api/v1`` (token: ``Authorization: Bearer <token>``)."""

from __future__ import annotations

import csv
import io
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request

from gateway.schema import (
    COLUMNS,
    MAX_LOCATION,
    ApiErrorBody,
    BoxCorrection,
    Correction,
    CountResult,
    InvalidMessage,
    LocationAnswer,
    LocationList,
    M,
    PhotoHeader,
    RecountRequest,
    SessionView,
    StoredCount,
    parse,
)
from gateway.sinks.csv_safety import safe_cell
from gateway.sinks.variance import Thresholds
from gateway.store import CountRecord, Device, Session, StoreError
from gateway.store.bays import bay_fields, bay_summary, location_conflict
from gateway.store.types import to_ts

from .errors import ApiError
from .jsonsafe import JsonError, parse_json
from .openapi import API_PREFIX, openapi_spec, operation
from .review import day_overview
from .services import Services
from .views import count_json

api = Blueprint("api", __name__, url_prefix=API_PREFIX)
NOT_FOUND = "no such count/session (or not yours)"
MANAGERS = "not a manager token"
OBJECT = {"type": "object"}
PHOTO_FORM = {"type": "object", "required": ["photo"], "properties": {
    "photo": {"type": "string", "format": "binary"},
    "location": {"type": "string", "maxLength": MAX_LOCATION},
    "session": {"type": "string"},
    "replaces": {"type": "string", "description": "photo id (Idempotency-Key) of the bay photo "
                                                  "this retake replaces"},
    "part_of": {"type": "string", "description": "bay id, or a photo id of the bay, this photo "
                                                 "is another part of"}}}


def services() -> Services:
    return current_app.extensions["shelfcount"]


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


@api.before_request
def authenticate() -> None:
    g.device = services().authenticate(bearer_token())


def device() -> Device:
    return g.device


def session_json(session: Session, *, with_counts: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": session.id,
        "walker": session.walker,
        "label": session.label,
        "created_at": to_ts(session.created_at),
        "confirmed_at": session.confirmed_at and to_ts(session.confirmed_at),
    }
    if with_counts:
        records = services().store.session_counts(session.id)
        by_bay: dict[str | None, list[CountRecord]] = {}
        for r in records:
            by_bay.setdefault(r.bay_id, []).append(r)
        out["counts"] = [
            count_json(r, bay_fields(r, by_bay[r.bay_id]) if r.status == "done" else None)
            for r in records
        ]
        out["bays"] = bay_summary(records)
    return out


def _body(model: type[M]) -> M:
    """The JSON body as ``model``: validated here, once."""
    try:
        body = parse_json(request.get_data(cache=True))
    except JsonError:
        body = None
    if not isinstance(body, dict):
        raise ApiError("bad_json", "the body must be a JSON object")
    try:
        return parse(model, body)
    except InvalidMessage as exc:
        raise ApiError("bad_request", str(exc)) from None


def _photo_header() -> PhotoHeader:
    fields = {"id": request.headers.get("Idempotency-Key") or None,
              **{name: request.form.get(name) or None
                 for name in ("location", "replaces", "part_of")}}
    try:
        return parse(PhotoHeader, fields)
    except InvalidMessage as exc:
        raise ApiError("bad_request", str(exc)) from None


@api.post("/counts")
@operation(
    "Count a photo", form=PHOTO_FORM,
    headers={"Idempotency-Key": "the client's photo id: the same key never creates a second "
                                "count"},
    responses={200: (CountResult, "counted"),
               202: (ApiErrorBody, "stored and queued (e.g. Triton unavailable)"),
               400: (ApiErrorBody, "a bad field"), 404: (ApiErrorBody, NOT_FOUND),
               413: (ApiErrorBody, "photo too large"), 422: (ApiErrorBody, "not a usable photo"),
               429: (ApiErrorBody, "photo rate limit")})
def post_count() -> tuple[Response, int]:
    svc = services()
    me = device()
    upload = request.files.get("photo")
    if upload is None:
        raise ApiError("bad_request", "multipart field 'photo' is required")
    data = upload.read(svc.settings.max_image_bytes + 1)
    session_id = request.form.get("session") or None
    session = (svc.session_for(me, session_id) if session_id
               else svc.store.current_session(me))
    record, _ = svc.submit_photo(me, session=session, header=_photo_header(), data=data,
                                 source="rest")
    message = svc.wait_outcome(record, svc.settings.request_wait_s)
    headers = {"Location": f"/api/v1/counts/{record.id}"}
    if message is None:
        body = {"type": "queued", "id": record.client_id, "count_id": record.id,
                "session": record.session_id}
        return _with_headers(jsonify(body), headers), 202
    if message["type"] == "result":
        return _with_headers(jsonify(message), headers), 200
    status = 202 if message.get("queued") else 422
    return _with_headers(jsonify(message), headers), status


def _with_headers(response: Response, headers: dict[str, str]) -> Response:
    response.headers.update(headers)
    return response


@api.get("/counts/<count_id>")
@operation("A count", responses={200: (StoredCount, "the count"),
                                 404: (ApiErrorBody, NOT_FOUND)})
def get_count(count_id: str) -> Response:
    svc = services()
    record = svc.count_for(device(), count_id)
    return jsonify(count_json(record, svc.bay(record) if record.status == "done" else None))


@api.patch("/counts/<count_id>")
@operation(
    "Correct a line's quantity and/or Condition (model figure kept); a re-sent correction is "
    "recorded once",
    description="Idempotent by correction_id / Idempotency-Key; without one, a correction "
                "identical to the line's latest one by the same device is not recorded again.",
    body=Correction,
    headers={"Idempotency-Key": "the correction's client id (as correction_id)"},
    responses={200: (StoredCount, "corrected"),
               400: (ApiErrorBody, "bad sku, quantity, condition or id"),
               404: (ApiErrorBody, NOT_FOUND),
               409: (ApiErrorBody, "not counted yet or already confirmed")})
def patch_count(count_id: str) -> Response:
    svc = services()
    record = svc.count_for(device(), count_id)
    # Idempotency-Key (like POST /counts) or a correction_id field: a retried PATCH counts once.
    key = request.headers.get("Idempotency-Key") or None
    updated = svc.correct(device(), record, _body(Correction), key)
    return jsonify(count_json(updated, svc.bay(updated)))


@api.put("/counts/<count_id>/boxes")
@operation(
    "Replace a photo's item boxes with a person's corrected set; each line's quantity becomes "
    "its number of boxes",
    description="Boxes are [x0, y0, x1, y1, sku] in pixels of the stored photo (sku \"\": an "
                "unnamed item). The model's boxes and figures are kept beside; idempotent by "
                "correction_id / Idempotency-Key.",
    body=BoxCorrection,
    headers={"Idempotency-Key": "the correction's client id (as correction_id)"},
    responses={200: (StoredCount, "the count with its new boxes and rows"),
               400: (ApiErrorBody, "bad boxes (outside the photo, not finite, too many) or "
                                   "unknown_sku"),
               404: (ApiErrorBody, NOT_FOUND),
               409: (ApiErrorBody, "not counted yet or already confirmed")})
def put_boxes(count_id: str) -> Response:
    svc = services()
    record = svc.count_for(device(), count_id)
    key = request.headers.get("Idempotency-Key") or None
    updated = svc.correct_boxes(device(), record, _body(BoxCorrection), key)
    return jsonify(count_json(updated, svc.bay(updated)))


@api.post("/counts/<count_id>/location")
@operation(
    "Answer a location conflict: every line of the photo moves there", body=LocationAnswer,
    responses={200: (StoredCount, "located"),
               400: (ApiErrorBody, "no location, or unknown_location without new"),
               404: (ApiErrorBody, NOT_FOUND),
               409: (ApiErrorBody, "not counted yet or already confirmed")})
def set_location(count_id: str) -> Response:
    svc = services()
    record = svc.set_location(device(), svc.count_for(device(), count_id),
                              _body(LocationAnswer))
    return jsonify(count_json(record, svc.bay(record)))


@api.post("/counts/<count_id>/confirm")
@operation(
    "Confirm the bay (all its current photos, lines summed, go to the sinks); repeating is "
    "harmless",
    responses={200: (OBJECT, "confirmed: id, count_id, newly_confirmed, confirmed_at"),
               404: (ApiErrorBody, NOT_FOUND),
               409: (ApiErrorBody, "not counted yet, superseded (replaced by a retake) or "
                                   "location_conflict")})
def confirm_count(count_id: str) -> Response:
    svc = services()
    record, newly = svc.confirm(device(), svc.count_for(device(), count_id))
    return jsonify({"type": "confirmed", "id": record.client_id, "count_id": record.id,
                    "newly_confirmed": newly, "confirmed_at": to_ts(record.confirmed_at)})


@api.get("/sessions")
@operation("Sessions visible to this token (managers: all)",
           responses={200: (OBJECT, "sessions")})
def list_sessions() -> Response:
    me = device()
    sessions = services().store.list_sessions(None if me.is_manager else me.id)
    return jsonify({"sessions": [session_json(s, with_counts=False) for s in sessions]})


@api.get("/sessions/<session_id>")
@operation("A session with its counts",
           responses={200: (SessionView, "the session"), 404: (ApiErrorBody, NOT_FOUND)})
def get_session(session_id: str) -> Response:
    return jsonify(session_json(services().session_for(device(), session_id)))


@api.post("/sessions/<session_id>/confirm")
@operation("Confirm every counted bay of the session",
           responses={200: (OBJECT, "confirmed, already_confirmed, not_counted, replaced, "
                                    "location_conflicts"),
                      404: (ApiErrorBody, NOT_FOUND)})
def confirm_session(session_id: str) -> Response:
    svc = services()
    results = svc.confirm_session(device(), svc.session_for(device(), session_id))
    waiting = [r for r, _ in results if r.confirmed_at is None]
    return jsonify({
        "session": session_id,
        "confirmed": [r.id for r, newly in results if newly],
        "already_confirmed": [r.id for r, newly in results if not newly and r.confirmed_at],
        "not_counted": [{"id": r.id, "status": r.status} for r in waiting
                        if r.status != "done"],
        # Kept in history, not counted: replaced by a retake of their bay.
        "replaced": [r.id for r in waiting if r.status == "done" and not r.is_current],
        # The walker must choose the location first (see POST /counts/{id}/location).
        "location_conflicts": [
            {"id": r.id, **conflict} for r in waiting
            if r.is_current and (conflict := location_conflict(r)) is not None
        ],
    })


@api.get("/sessions/<session_id>/counts.csv")
@operation("The session's lines in the count CSV schema",
           query={"confirmed": {"type": "boolean"}},
           responses={200: ("text/csv", "CSV"), 404: (ApiErrorBody, NOT_FOUND)})
def session_csv(session_id: str) -> Response:
    """Every bay's lines in the CSV schema: current photos only (a retake replaces the
    bay's earlier photo), parts of one bay summed, corrections applied."""
    svc = services()
    session = svc.session_for(device(), session_id)
    confirmed_only = request.args.get("confirmed") in ("1", "true", "yes")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for bay in bay_summary(svc.store.session_counts(session.id)):
        if confirmed_only and not bay["confirmed"]:
            continue
        for row in bay["rows"]:
            writer.writerow([safe_cell(row.get(column, "")) for column in COLUMNS])
    return Response(
        buffer.getvalue(), mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="session-{session.id}.csv"'},
    )


@api.get("/locations")
@operation(
    "The catalog's bin locations for the location picker",
    description="One entry per location of the gateway's loaded catalog, sorted, with the "
                "SKU that lives there (its home SKU) and its description; empty when no "
                "catalog is imported.",
    responses={200: (LocationList, "locations")})
def locations() -> Response:
    """The catalog's locations (reloaded when ``shelfcount catalog import`` replaces it)."""
    return jsonify({"locations": services().pipelines.locations()})


def _manager() -> Device:
    me = device()
    if not me.is_manager:
        raise ApiError("forbidden", "a manager token is required", 403)
    return me


@api.get("/review")
@operation(
    "Managers: today's sessions by walker and the review queue",
    description="sessions: walker, bays, confirmed, photos; queue: per bay the reasons to look "
                "(location conflict, low confidence, unidentified items, stock flags, variance "
                "against the ERP beyond SHELFCOUNT_VARIANCE_PCT / _VALUE, sent back), rows with "
                "System_Quantity, Variance, Variance_Pct and Flags, boxes of the current "
                "photo; erp: state ok | not_configured | unavailable (with error), skipped: bays "
                "the ERP could not look up (count_id, error: no location yet, unknown to it); "
                "sheet_url when Sheets is set up.",
    responses={200: (OBJECT, "the day"), 403: (ApiErrorBody, MANAGERS)})
def review() -> Response:
    """The manager's day: sessions by walker with progress, the review queue, the sheet."""
    _manager()
    svc = services()
    body = day_overview(svc.store, svc.reorder_point, Thresholds.from_settings(svc.settings),
                        review_below=float(svc.settings.review_below),
                        system_quantities=svc.system_quantities)
    key = svc.settings.extra.get("sheets_spreadsheet")
    body["sheet_url"] = f"https://docs.google.com/spreadsheets/d/{key}" if key else None
    return jsonify(body)


@api.post("/counts/<count_id>/recount")
@operation("Managers: send the bay back for a recount with a note",
           body=RecountRequest,
           responses={200: (OBJECT, "sent back; the walker's phone gets a recount message"),
                      403: (ApiErrorBody, MANAGERS), 404: (ApiErrorBody, NOT_FOUND),
                      409: (ApiErrorBody, "confirmed or replaced")})
def recount(count_id: str) -> Response:
    """Send a bay back for a recount with a note the walker sees."""
    me = _manager()
    svc = services()
    note = _body(RecountRequest).note
    records = svc.send_back(me, svc.count_for(me, count_id), note)
    return jsonify({"type": "recount", "counts": [r.id for r in records], "note": note})


@api.post("/counts/<count_id>/reopen")
@operation("Managers: reopen a confirmed bay (confirming it again sends the new "
           "version to the sinks, flagged as revising the old one)",
           responses={200: (OBJECT, "the open copies"), 403: (ApiErrorBody, MANAGERS),
                      404: (ApiErrorBody, NOT_FOUND),
                      409: (ApiErrorBody, "not confirmed, or replaced")})
def reopen(count_id: str) -> Response:
    """Managers: reopen a confirmed bay; confirming it again sends the sinks the new version,
    flagged as revising the old one."""
    me = _manager()
    svc = services()
    copies = svc.reopen(me, svc.count_for(me, count_id))
    return jsonify({"type": "reopened", "counts": [count_json(c, svc.bay(c)) for c in copies]})


@api.get("/counts/<count_id>/photo")
@operation("The stored photo (JPEG) of a count",
           responses={200: ("image/jpeg", "the photo"), 404: (ApiErrorBody, NOT_FOUND)})
def count_photo(count_id: str) -> Response:
    """The stored photo (the manager's review shows it with its boxes)."""
    svc = services()
    record = svc.count_for(device(), count_id)
    try:
        data = svc.photos.get(record.photo_hash)
    except FileNotFoundError:
        raise ApiError("not_found", "the photo is no longer stored (retention)", 404) from None
    return Response(data, mimetype="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


@api.get("/products")
@operation("The catalog's products (sku, description, barcode, location)",
           responses={200: (OBJECT, "products")})
def products() -> Response:
    """The catalog's products (SKU, description, barcode, home location): the PWA searches
    them when a line's SKU is changed or a missed SKU is added."""
    return jsonify({"products": services().products()})


@api.get("/openapi.json")
@operation("This document", responses={200: (OBJECT, "OpenAPI 3.1")})
def openapi() -> Response:
    return jsonify(openapi_spec(current_app))


@api.get("/devices")
@operation("Managers: every device (name, role, created_at, last_seen, revoked_at, "
           "token_expires_at)",
           responses={200: (OBJECT, "devices"), 403: (ApiErrorBody, MANAGERS)})
def list_devices() -> Response:
    """Managers: every device with its role, last seen, revocation and token expiry."""
    _manager()
    ttl = float(services().settings.token_ttl_days)
    return jsonify({"devices": [{
        "name": d.name, "role": d.role, "created_at": to_ts(d.created_at),
        "last_seen": d.last_seen and to_ts(d.last_seen),
        "revoked_at": d.revoked_at and to_ts(d.revoked_at),
        "token_expires_at": (expires := d.token_expires(ttl)) and to_ts(expires),
    } for d in services().store.list_devices()]})


@api.delete("/devices/<name>")
@operation("Managers: revoke a device (later requests 401; its open WebSocket and "
           "gRPC streams end within seconds)",
           responses={200: (OBJECT, "name and revoked_at"), 403: (ApiErrorBody, MANAGERS),
                      404: (ApiErrorBody, "no such device")})
def revoke_device(name: str) -> Response:
    """Managers: revoke a device (later requests 401, open streams end within seconds)."""
    _manager()
    try:
        device = services().store.revoke_device(name)
    except StoreError as exc:
        raise ApiError(exc.code, exc.message, 404 if exc.code == "not_found" else 400) from None
    return jsonify({"name": device.name, "revoked_at": to_ts(device.revoked_at)})


@api.get("/devices/me")
@operation("The token's device name, role and currency",
           responses={200: (OBJECT, "device")})
def whoami() -> Response:
    me = device()
    return jsonify({"name": me.name, "role": me.role,
                    "currency": services().settings.currency})
