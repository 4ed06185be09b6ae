"""OpenAPI 3.1 description of the REST API, served at /api/v1/openapi.json."""

from __future__ import annotations

from typing import Any

from gateway import __version__
from gateway.schema import COLUMNS, CONDITIONS


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def openapi_spec() -> dict[str, Any]:
    bay_properties = {
        "bay": {"type": ["string", "null"], "description": "the photo's bay id"},
        "current": {"type": "boolean", "description": "false: replaced by a retake (or its "
                                                      "bay was confirmed before): not counted"},
        "superseded_by": {"type": ["string", "null"]},
        "replaced": {"type": "array", "items": {"type": "string"}},
        "parts": {"type": "array", "items": {"type": "string"}},
        "bay_rows": {"type": "array", "items": _ref("Row"),
                     "description": "the bay's lines, parts summed (what confirm sends)"},
        "bay_confirmed": {"type": "boolean"},
        "overlap_codes": {"type": "array", "items": {"type": "string"}},
        "location_conflict": {"type": ["object", "null"], "properties": {
            "reason": {"enum": ["mismatch", "unknown"]}, "chosen": {"type": ["string", "null"]},
            "read": {"type": "string"}, "message": {"type": "string"}}},
    }
    row = {
        "type": "object",
        "description": "One count line in the CSV schema.",
        "properties": {column: {} for column in COLUMNS},
        "required": list(COLUMNS),
    }
    count_id = {"name": "count_id", "in": "path", "required": True, "schema": {"type": "string"}}
    session_id = {"name": "session_id", "in": "path", "required": True,
                  "schema": {"type": "string"}}
    common_errors = {"401": _error("missing or invalid token"),
                     "404": _error("no such count/session (or not yours)")}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ShelfCount gateway",
            "version": __version__,
            "description": "Shelf photos in, stock-count rows out. Live counting also over "
                           "WebSocket /ws/count and gRPC shelfcount.v1.CountService.",
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "device token from `shelfcount "
                                                          "device add`"}},
            "schemas": {
                "Row": row,
                "Result": {
                    "type": "object",
                    "properties": {
                        "type": {"const": "result"},
                        "id": {"type": "string", "description": "the client's photo id"},
                        "count_id": {"type": "string"},
                        "session": {"type": "string"},
                        "rows": {"type": "array", "items": _ref("Row")},
                        "boxes": {"type": "array", "description": "[x0, y0, x1, y1, score, sku]",
                                  "items": {"type": "array"}},
                        "codes": {"type": "array", "items": {"type": "object"}},
                        "timings_ms": {"type": "object",
                                       "additionalProperties": {"type": "number"}},
                        "width": {"type": "integer"},
                        "height": {"type": "integer"},
                        "confirmed": {"type": "boolean"},
                        **bay_properties,
                    },
                },
                "Error": {
                    "type": "object",
                    "properties": {
                        "type": {"const": "error"},
                        "id": {"type": "string"},
                        "code": {"type": "string", "examples": [
                            "unauthorized", "token_expired", "request_timeout",
                            "not_an_image", "too_large", "rate_limited",
                            "triton_unavailable", "not_ready", "already_confirmed",
                            "superseded", "location_conflict", "unknown_location"]},
                        "message": {"type": "string"},
                        "queued": {"type": "boolean",
                                   "description": "true: the photo is stored and will be "
                                                  "counted when Triton is back"},
                    },
                    "required": ["code", "message"],
                },
                "Correction": {
                    "type": "object",
                    "properties": {
                        "sku": {"type": "string"},
                        "quantity": {"type": "integer", "minimum": 0},
                        "location": {"type": "string"},
                        "condition": {"enum": list(CONDITIONS),
                                      "description": "the line's Condition as the person saw "
                                                     "it (e.g. Damaged); left out: kept"},
                        "correction_id": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,100}$",
                                          "description": "client's id for this correction: "
                                                         "re-sending it never records it twice "
                                                         "(same as the Idempotency-Key header)"},
                    },
                    "required": ["sku", "quantity"],
                },
                "Count": {
                    "type": "object",
                    "description": "A stored count: effective rows (corrections applied), the "
                                   "model's rows, and each correction with who and when.",
                    "properties": {
                        "id": {"type": "string"}, "photo_id": {"type": "string"},
                        "session": {"type": "string"},
                        "status": {"enum": ["queued", "processing", "waiting", "done", "failed"]},
                        "rows": {"type": "array", "items": _ref("Row")},
                        "model_rows": {"type": "array", "items": _ref("Row")},
                        "corrections": {"type": "array", "items": {"type": "object"}},
                        "confirmed_at": {"type": ["string", "null"]},
                        "confirmed_by": {"type": ["string", "null"]},
                        "location_choice": {"type": ["string", "null"],
                                            "description": "the walker's answer to a "
                                                           "location conflict"},
                        **bay_properties,
                    },
                },
                "Session": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"}, "walker": {"type": "string"},
                        "created_at": {"type": "string"},
                        "confirmed_at": {"type": ["string", "null"]},
                        "counts": {"type": "array", "items": _ref("Count")},
                        "bays": {"type": "array", "items": {"type": "object"},
                                 "description": "one per bay: bay, location, photos (current), "
                                                "history (replaced), rows (parts summed), "
                                                "confirmed, location_conflict, overlap_codes"},
                    },
                },
            },
        },
        "paths": {
            "/counts": {"post": {
                "summary": "Count a photo",
                "parameters": [{"name": "Idempotency-Key", "in": "header",
                                "schema": {"type": "string"},
                                "description": "the same key never creates a second count"}],
                "requestBody": {"required": True, "content": {"multipart/form-data": {
                    "schema": {"type": "object", "required": ["photo"], "properties": {
                        "photo": {"type": "string", "format": "binary"},
                        "location": {"type": "string"},
                        "session": {"type": "string"},
                        "replaces": {"type": "string",
                                     "description": "photo id (Idempotency-Key) of the bay "
                                                    "photo this retake replaces"},
                        "part_of": {"type": "string",
                                    "description": "bay id, or a photo id of the bay, this "
                                                   "photo is another part of"}}}}}},
                "responses": {
                    "200": _json(_ref("Result"), "counted"),
                    "202": _json(_ref("Error"), "stored and queued (e.g. Triton unavailable)"),
                    "413": _error("photo too large"),
                    "422": _error("not a usable photo"),
                    "429": _error("photo rate limit"),
                    **common_errors,
                },
            }},
            "/counts/{count_id}": {
                "get": {"summary": "A count", "parameters": [count_id],
                        "responses": {"200": _json(_ref("Count"), "the count"),
                                      **common_errors}},
                "patch": {"summary": "Correct a line's quantity and/or Condition (model figure "
                                     "kept); a re-sent correction is recorded once",
                          "description": "Idempotent by correction_id / Idempotency-Key; "
                                         "without one, a correction identical to the line's "
                                         "latest one by the same device is not recorded again.",
                          "parameters": [count_id, {
                              "name": "Idempotency-Key", "in": "header",
                              "schema": {"type": "string"},
                              "description": "the correction's client id (as correction_id)"}],
                          "requestBody": {"required": True, "content": {
                              "application/json": {"schema": _ref("Correction")}}},
                          "responses": {"200": _json(_ref("Count"), "corrected"),
                                        "400": _error("bad sku, quantity, condition or id"),
                                        "409": _error("not counted yet or already confirmed"),
                                        **common_errors}},
            },
            "/counts/{count_id}/location": {"post": {
                "summary": "Answer a location conflict: every line of the photo moves there",
                "parameters": [count_id],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["location"],
                    "properties": {"location": {"type": "string", "maxLength": 64},
                                   "new": {"type": "boolean",
                                           "description": "true: record a location the "
                                                          "catalog does not list"}}}}}},
                "responses": {"200": _json(_ref("Count"), "located"),
                              "400": _error("no location, or unknown_location without new"),
                              "409": _error("not counted yet or already confirmed"),
                              **common_errors}}},
            "/counts/{count_id}/confirm": {"post": {
                "summary": "Confirm the bay (all its current photos, lines summed, go to the "
                           "sinks); repeating is harmless",
                "parameters": [count_id],
                "responses": {"200": _json({"type": "object"}, "confirmed"),
                              "409": _error("not counted yet, superseded (replaced by a "
                                            "retake) or location_conflict"),
                              **common_errors}}},
            "/sessions": {"get": {
                "summary": "Sessions visible to this token (managers: all)",
                "responses": {"200": _json({"type": "object"}, "sessions")}}},
            "/sessions/{session_id}": {"get": {
                "summary": "A session with its counts", "parameters": [session_id],
                "responses": {"200": _json(_ref("Session"), "the session"), **common_errors}}},
            "/sessions/{session_id}/confirm": {"post": {
                "summary": "Confirm every counted bay of the session", "parameters": [session_id],
                "responses": {"200": _json({"type": "object"}, "confirmed"), **common_errors}}},
            "/sessions/{session_id}/counts.csv": {"get": {
                "summary": "The session's lines in the count CSV schema",
                "parameters": [session_id, {"name": "confirmed", "in": "query",
                                            "schema": {"type": "boolean"}}],
                "responses": {"200": {"description": "CSV",
                                      "content": {"text/csv": {"schema": {"type": "string"}}}},
                              **common_errors}}},
            "/locations": {"get": {
                "summary": "The catalog's bin locations for the location picker",
                "description": "One entry per location of the gateway's loaded catalog, sorted, "
                               "with the SKU that lives there (its home SKU) and its "
                               "description; empty when no catalog is imported.",
                "responses": {"200": _json({
                    "type": "object", "required": ["locations"],
                    "properties": {"locations": {"type": "array", "items": {
                        "type": "object", "required": ["location", "sku", "description"],
                        "properties": {"location": {"type": "string"},
                                       "sku": {"type": "string"},
                                       "description": {"type": "string"}}}}}},
                    "locations"), "401": _error("missing or invalid token")}}},
            "/counts/{count_id}/photo": {"get": {
                "summary": "The stored photo (JPEG) of a count",
                "parameters": [count_id],
                "responses": {"200": {"description": "the photo",
                                      "content": {"image/jpeg": {"schema": {
                                          "type": "string", "format": "binary"}}}},
                              **common_errors}}},
            "/counts/{count_id}/recount": {"post": {
                "summary": "Managers: send the bay back for a recount with a note",
                "parameters": [count_id],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["note"],
                    "properties": {"note": {"type": "string", "maxLength": 500}}}}}},
                "responses": {"200": _json({"type": "object"}, "sent back; the walker's "
                                                              "phone gets a recount message"),
                              "403": _error("not a manager token"),
                              "409": _error("confirmed or replaced"), **common_errors}}},
            "/counts/{count_id}/reopen": {"post": {
                "summary": "Managers: reopen a confirmed bay (confirming it again sends the "
                           "new version to the sinks, flagged as revising the old one)",
                "parameters": [count_id],
                "responses": {"200": _json({"type": "object"}, "the open copies"),
                              "403": _error("not a manager token"),
                              "409": _error("not confirmed, or replaced"), **common_errors}}},
            "/review": {"get": {
                "summary": "Managers: today's sessions by walker and the review queue",
                "description": "sessions: walker, bays, confirmed, photos; queue: per bay the "
                               "reasons to look (location conflict, low confidence, "
                               "unidentified items, stock flags, sent back), rows with Flags, "
                               "boxes of the current photo; sheet_url when Sheets is set up.",
                "responses": {"200": _json({"type": "object"}, "the day"),
                              "403": _error("not a manager token")}}},
            "/products": {"get": {
                "summary": "The catalog's products (sku, description, barcode, location)",
                "responses": {"200": _json({"type": "object"}, "products")}}},
            "/devices": {"get": {
                "summary": "Managers: every device (name, role, created_at, last_seen, "
                           "revoked_at, token_expires_at)",
                "responses": {"200": _json({"type": "object"}, "devices"),
                              "403": _error("not a manager token")}}},
            "/devices/{name}": {"delete": {
                "summary": "Managers: revoke a device (later requests 401; its open WebSocket "
                           "and gRPC streams end within seconds)",
                "parameters": [{"name": "name", "in": "path", "required": True,
                                "schema": {"type": "string"}}],
                "responses": {"200": _json({"type": "object"}, "name and revoked_at"),
                              "403": _error("not a manager token"),
                              "404": _error("no such device")}}},
            "/devices/me": {"get": {"summary": "The token's device name and role",
                                    "responses": {"200": _json({"type": "object"}, "device")}}},
            "/healthz": {"get": {
                "summary": "Readiness of gateway, Triton and store (no token; served at "
                           "/healthz)",
                "security": [],
                "responses": {"200": _json({"type": "object"}, "all ready"),
                              "503": _json({"type": "object"}, "something is not ready")}}},
        },
    }
