"""WebSocket ``/ws/count``: the live protocol phones speak (see issue 4 / README).

Client -> server: ``hello`` (token, session or null, device), then per photo a ``photo`` text
message followed by one binary message with the JPEG; ``correct``; ``location`` (answer a
location conflict); ``confirm``; ``ping``.
Server -> client: ``welcome``, ``ack`` (photo on disk and in the database), ``result``,
``error``, ``corrected``, ``located``, ``confirmed``, ``pong``. Protocol mistakes are answered
with an ``error`` message and the connection stays open, up to a limit.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from typing import Any

from gateway.store import CountRecord, Device, Session
from gateway.store.types import UNFINISHED

from .errors import ApiError
from .jsonsafe import JsonError, parse_json
from .services import Services

log = logging.getLogger("shelfcount.gateway.ws")

HELLO_TIMEOUT_S = 30.0
RECEIVE_POLL_S = 1.0  # how often a waiting reader checks that the socket is still open
MAX_PROTOCOL_ERRORS = 20
OUTBOX_LIMIT = 1000  # messages waiting for a slow phone before the connection is dropped
POLICY_VIOLATION = 1008
MAX_LABEL = 64  # the hello's device label (stored with the session)


class Connection:
    """One phone's socket: a reader loop (this handler's thread) and a writer thread."""

    def __init__(self, ws: Any, services: Services) -> None:
        self.ws = ws
        self.services = services
        self.device: Device | None = None
        self.session: Session | None = None
        self.key = uuid.uuid4().hex  # preview-slot key: per connection
        self._send_lock = threading.Lock()
        self._subscribed: set[str] = set()
        self._sent: set[tuple[str, str, str]] = set()  # (count, type, code) already told
        self._errors = 0
        self.closed = False
        # Worker threads hand messages to this connection's writer instead of writing to the
        # socket themselves: a phone that stops reading must not stall a counting thread.
        self._outbox: queue.Queue[tuple[str, Any, Any]] = queue.Queue(maxsize=OUTBOX_LIMIT)
        self._writer = threading.Thread(target=self._write_loop, name="ws-writer", daemon=True)
        self._writer.start()

    # -- sending ---------------------------------------------------------------------------
    def send(self, message: dict[str, Any]) -> None:
        if self.closed:
            return
        try:
            self._outbox.put_nowait(("text", json.dumps(message, default=str), None))
        except queue.Full:
            log.warning("websocket client stopped reading; dropping the connection")
            self.closed = True

    def _write_loop(self) -> None:
        while True:
            kind, first, second = self._outbox.get()
            try:
                if kind == "text":
                    self.ws.send(first)
                    continue
                if kind == "close":
                    self.ws.close(reason=first, message=second)
            except Exception:  # noqa: BLE001 - the reader loop notices the closed socket
                self.closed = True
            return

    def on_outcome(self, message: dict[str, Any]) -> None:
        """Hub listener: forward each distinct outcome of a count once."""
        key = (str(message.get("count_id")), str(message.get("type")), str(message.get("code")))
        with self._send_lock:
            if key in self._sent:
                return
            self._sent.add(key)
        self.send(message)

    def follow(self, record: CountRecord, *, resend: bool = False) -> None:
        """Subscribe to a count and send its outcome if it already has one.

        ``resend``: the client sent the photo again, so it lost the answer; tell it again even
        if this connection already did.
        """
        if record.id not in self._subscribed:
            self._subscribed.add(record.id)
            self.services.hub.subscribe(record.id, self.on_outcome)
        current = self.services.store.get_count(record.id)
        message = self.services.outcome(current) if current else None
        if message is None:
            return
        if resend:
            with self._send_lock:
                self._sent.add((record.id, str(message.get("type")), str(message.get("code"))))
            self.send(message)
        else:
            self.on_outcome(message)

    def error(self, code: str, message: str, photo_id: str | None = None, **extra: Any) -> None:
        self._errors += 1
        self.send(ApiError(code, message, **extra).to_json(photo_id))

    def close(self, reason: int | None = None, message: str | None = None) -> None:
        """Close after the messages already queued (e.g. the error that explains why)."""
        with self._send_lock:
            if self.closed:
                return
            self.closed = True
        try:
            self._outbox.put(("close", reason, message), timeout=1.0)
        except queue.Full:
            return
        self._writer.join(timeout=5.0)

    def cleanup(self) -> None:
        self.closed = True
        for count_id in self._subscribed:
            self.services.hub.unsubscribe(count_id, self.on_outcome)
        self._subscribed.clear()
        try:
            self._outbox.put_nowait(("stop", None, None))
        except queue.Full:
            pass

    # -- the conversation ------------------------------------------------------------------
    def run(self) -> None:
        try:
            if not self._hello():
                return
            pending_photo: dict[str, Any] | None = None
            idle_s = float(self.services.settings.ws_idle_timeout_s)
            while not self.closed and self._errors < MAX_PROTOCOL_ERRORS:
                data = self._receive(idle_s)
                if data is None:
                    if self.ws.connected:
                        self.close(POLICY_VIOLATION, "idle timeout")
                    return
                if isinstance(data, bytes | bytearray):
                    if pending_photo is None:
                        self.error("unexpected_binary", "send a photo message before its bytes")
                        continue
                    self._photo(pending_photo, bytes(data))
                    pending_photo = None
                    continue
                message = self._parse(data)
                if message is None:
                    continue
                if pending_photo is not None:
                    self.error("missing_photo_bytes", "the photo message was not followed by "
                               "its binary message", pending_photo.get("id"))
                    pending_photo = None
                kind = message.get("type")
                if kind == "photo":
                    pending_photo = self._photo_header(message)
                elif kind == "correct":
                    self._correct(message)
                elif kind == "confirm":
                    self._confirm(message)
                elif kind == "location":
                    self._location(message)
                elif kind == "ping":
                    self.send({"type": "pong"})
                elif kind == "hello":
                    self.error("bad_request", "already said hello")
                else:
                    self.error("unknown_type", f"unknown message type {kind!r}")
            if self._errors >= MAX_PROTOCOL_ERRORS:
                self.close(POLICY_VIOLATION, "too many protocol errors")
        finally:
            self.cleanup()

    def _receive(self, timeout_s: float) -> Any:
        """The next message, or None after ``timeout_s`` of silence or once the socket is
        closed (e.g. by the library after an oversize message: its slot is freed at once
        rather than at the idle timeout)."""
        deadline = time.monotonic() + timeout_s
        while self.ws.connected:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            data = self.ws.receive(timeout=min(left, RECEIVE_POLL_S))
            if data is not None:
                return data
        return None

    def _parse(self, text: str) -> dict[str, Any] | None:
        try:
            message = parse_json(text)
        except (JsonError, TypeError) as exc:
            self.error("bad_json", f"text messages must be JSON objects ({exc})"[:200])
            return None
        if not isinstance(message, dict):
            self.error("bad_json", "text messages must be JSON objects")
            return None
        return message

    def _hello(self) -> bool:
        data = self.ws.receive(timeout=HELLO_TIMEOUT_S)
        if data is None or isinstance(data, bytes | bytearray):
            self.error("hello_required", "the first message must be a hello")
            self.close(POLICY_VIOLATION, "hello required")
            return False
        message = self._parse(data)
        if message is None or message.get("type") != "hello":
            self.error("hello_required", "the first message must be a hello")
            self.close(POLICY_VIOLATION, "hello required")
            return False
        token = message.get("token")
        try:
            self.device = self.services.authenticate(token if isinstance(token, str) else None)
            requested = message.get("session")
            label = message.get("device")
            if label is not None and (not isinstance(label, str) or len(label) > MAX_LABEL):
                raise ApiError("bad_request", f"device must be text of at most {MAX_LABEL} "
                               "characters")
            if requested is None:
                self.session = self.services.store.create_session(
                    self.device, label if isinstance(label, str) else None
                )
            else:
                self.session = self.services.session_for(self.device, str(requested))
        except ApiError as exc:
            self.send(exc.to_json())
            self.close(POLICY_VIOLATION, exc.code)
            return False
        # Photos of this session still being counted: their results come on this connection.
        pending = [
            record for record in self.services.store.session_counts(self.session.id)
            if record.device_id == self.device.id and record.status in UNFINISHED
        ]
        self.send({
            "type": "welcome",
            "session": self.session.id,
            "device": self.device.name,
            "role": self.device.role,
            "pending": [record.client_id for record in pending],
            "max_message_bytes": self.services.settings.max_message_bytes,
            "currency": self.services.settings.currency,
        })
        for record in pending:
            self.follow(record)
        return True

    def _photo_header(self, message: dict[str, Any]) -> dict[str, Any] | None:
        photo_id = message.get("id")
        if not isinstance(photo_id, str) or not photo_id:
            self.error("bad_request", "photo needs an id (a UUID chosen by the client)")
            return None
        location = message.get("location")
        if location is not None and not isinstance(location, str):
            self.error("bad_request", "location must be text", photo_id)
            return None
        return {"id": photo_id, "location": location or None,
                "preview": bool(message.get("preview")),
                "replaces": message.get("replaces"), "part_of": message.get("part_of")}

    def _photo(self, header: dict[str, Any], data: bytes) -> None:
        assert self.device is not None and self.session is not None
        photo_id = header["id"]
        try:
            if header["preview"]:
                self.services.submit_preview(
                    self.device, self.key, photo_id, data, header["location"], self.send
                )
                return
            record, created = self.services.submit_photo(
                self.device, session=self.session, client_id=photo_id, data=data,
                location=header["location"], source="ws",
                replaces=header["replaces"], part_of=header["part_of"],
            )
        except ApiError as exc:
            if exc.code != "rate_limited":  # a busy walker is not a broken client
                self._errors += 1
            self.send(exc.to_json(photo_id))
            return
        self.send({"type": "ack", "id": photo_id, "count_id": record.id})
        self.follow(record, resend=not created)

    def _own_count(self, message: dict[str, Any]) -> CountRecord | None:
        assert self.device is not None
        photo_id = message.get("id")
        if not isinstance(photo_id, str) or not photo_id:
            self.error("bad_request", "the message needs the photo id")
            return None
        record = self.services.store.count_by_client(self.device.id, photo_id)
        if record is None:
            self.error("not_found", "no photo with this id from this device", photo_id)
        return record

    def _correct(self, message: dict[str, Any]) -> None:
        record = self._own_count(message)
        if record is None:
            return
        assert self.device is not None
        try:
            updated = self.services.correct(self.device, record, message)
        except ApiError as exc:
            self._errors += 1
            self.send(exc.to_json(record.client_id))
            return
        bay = self.services.bay(updated)
        self.send({"type": "corrected", "id": record.client_id, "count_id": record.id,
                   "correction_id": message.get("correction_id"),
                   "rows": updated.rows, "bay_rows": bay["bay_rows"],
                   "corrections": [c.to_json() for c in updated.corrections]})

    def _location(self, message: dict[str, Any]) -> None:
        record = self._own_count(message)
        if record is None:
            return
        assert self.device is not None
        try:
            updated = self.services.set_location(self.device, record, message)
        except ApiError as exc:
            self._errors += 1
            self.send(exc.to_json(record.client_id))
            return
        self.send({"type": "located", "id": record.client_id, "count_id": record.id,
                   "location": updated.location_choice, "rows": updated.rows,
                   **self.services.bay(updated)})

    def _confirm(self, message: dict[str, Any]) -> None:
        record = self._own_count(message)
        if record is None:
            return
        assert self.device is not None
        try:
            self.services.confirm(self.device, record)
        except ApiError as exc:
            self._errors += 1
            self.send(exc.to_json(record.client_id))
            return
        self.send({"type": "confirmed", "id": record.client_id, "count_id": record.id})


def handle(ws: Any, services: Services) -> None:
    connection = Connection(ws, services)
    services.sockets.add(connection)
    try:
        connection.run()
    except Exception as exc:  # noqa: BLE001 - a closed socket ends the conversation
        if type(exc).__name__ != "ConnectionClosed":
            log.exception("websocket handler failed")
        connection.cleanup()
    finally:
        services.sockets.discard(connection)
