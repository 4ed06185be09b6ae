"""REST API under ``/api/v1`` (token: ``Authorization: Bearer <token>``)."""

from __future__ import annotations

import csv
import io
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request

from gateway.schema import COLUMNS
from gateway.sinks.csv_safety import safe_cell
from gateway.store import Device, Session
from gateway.store.rows import effective_rows
from gateway.store.types import to_ts

from .core import Services, count_json
from .errors import ApiError
from .openapi import openapi_spec

api = Blueprint("api", __name__, url_prefix="/api/v1")


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
        out["counts"] = [count_json(r) for r in services().store.session_counts(session.id)]
    return out


def _json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError("bad_json", "the body must be a JSON object")
    return body


@api.post("/counts")
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
    location = request.form.get("location") or None
    record, _ = svc.submit_photo(
        me, session=session, client_id=request.headers.get("Idempotency-Key") or None,
        data=data, location=location, source="rest",
    )
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
def get_count(count_id: str) -> Response:
    return jsonify(count_json(services().count_for(device(), count_id)))


@api.patch("/counts/<count_id>")
def patch_count(count_id: str) -> Response:
    svc = services()
    record = svc.count_for(device(), count_id)
    # Idempotency-Key (like POST /counts) or a correction_id field: a retried PATCH counts once.
    key = request.headers.get("Idempotency-Key") or None
    return jsonify(count_json(svc.correct(device(), record, _json_body(), key)))


@api.post("/counts/<count_id>/confirm")
def confirm_count(count_id: str) -> Response:
    svc = services()
    record, newly = svc.confirm(device(), svc.count_for(device(), count_id))
    return jsonify({"type": "confirmed", "id": record.client_id, "count_id": record.id,
                    "newly_confirmed": newly, "confirmed_at": to_ts(record.confirmed_at)})


@api.get("/sessions")
def list_sessions() -> Response:
    me = device()
    sessions = services().store.list_sessions(None if me.is_manager else me.id)
    return jsonify({"sessions": [session_json(s, with_counts=False) for s in sessions]})


@api.get("/sessions/<session_id>")
def get_session(session_id: str) -> Response:
    return jsonify(session_json(services().session_for(device(), session_id)))


@api.post("/sessions/<session_id>/confirm")
def confirm_session(session_id: str) -> Response:
    svc = services()
    results = svc.confirm_session(device(), svc.session_for(device(), session_id))
    return jsonify({
        "session": session_id,
        "confirmed": [r.id for r, newly in results if newly],
        "already_confirmed": [r.id for r, newly in results if not newly and r.confirmed_at],
        "not_counted": [{"id": r.id, "status": r.status} for r, _ in results
                        if r.confirmed_at is None],
    })


@api.get("/sessions/<session_id>/counts.csv")
def session_csv(session_id: str) -> Response:
    """Every counted line of the session in the CSV schema (corrections applied)."""
    svc = services()
    session = svc.session_for(device(), session_id)
    confirmed_only = request.args.get("confirmed") in ("1", "true", "yes")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for record in svc.store.session_counts(session.id):
        if record.status != "done" or (confirmed_only and record.confirmed_at is None):
            continue
        for row in effective_rows(record.model_rows, record.corrections):
            writer.writerow([safe_cell(row.get(column, "")) for column in COLUMNS])
    return Response(
        buffer.getvalue(), mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="session-{session.id}.csv"'},
    )


@api.get("/locations")
def locations() -> Response:
    """The catalog's locations (reloaded when ``shelfcount catalog import`` replaces it)."""
    return jsonify({"locations": services().pipelines.locations()})


@api.get("/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_spec())


@api.get("/devices/me")
def whoami() -> Response:
    me = device()
    return jsonify({"name": me.name, "role": me.role})
