"""One error type for every protocol (REST status, WebSocket error message, gRPC status)."""

from __future__ import annotations


class ApiError(Exception):
    """A refused request: stable ``code`` for clients, one human ``message``, HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400, **extra: object) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.extra = extra

    def to_json(self, photo_id: str | None = None) -> dict[str, object]:
        out: dict[str, object] = {"type": "error"}
        if photo_id is not None:
            out["id"] = photo_id
        out.update(code=self.code, message=self.message, **self.extra)
        return out


# Store error codes -> HTTP status.
STORE_STATUS = {"not_found": 404, "not_ready": 409, "already_confirmed": 409, "bad_request": 400,
                "superseded": 409, "location_conflict": 409, "not_confirmed": 409}
