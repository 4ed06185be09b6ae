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
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from gateway.schema import (
    CLIENT_MESSAGE,
    UNKNOWN_TYPE,
    BoxesMessage,
    ClientMessage,
    ConfirmMessage,
    CorrectMessage,
    Hello,
    InvalidMessage,
    LocationMessage,
    PhotoMessage,
    PingMessage,
    describe,
    parse,
)
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
_REFUSED = object()  # a photo header that was refused: its bytes are dropped unanswered


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
        self._pending: PhotoMessage | object | None = None  # header waiting for its bytes
        self._handlers: dict[str, Callable[[Any], None]] = {
            "photo": self._on_photo, "correct": self._on_correct,
            "location": self._on_location, "confirm": self._on_confirm,
            "boxes": self._on_boxes,
            "ping": self._on_ping, "hello": self._on_hello,
        }
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
            if self._hello():
                self._converse()
        finally:
            self.cleanup()

    def _converse(self) -> None:
        idle_s = float(self.services.settings.ws_idle_timeout_s)
        while not self.closed and self._errors < MAX_PROTOCOL_ERRORS:
            data = self._receive(idle_s)
            if data is None:
                if self.ws.connected:
                    self.close(POLICY_VIOLATION, "idle timeout")
                return
            if isinstance(data, bytes | bytearray):
                self._on_bytes(bytes(data))
            else:
                self._on_text(data)
        if self._errors >= MAX_PROTOCOL_ERRORS:
            self.close(POLICY_VIOLATION, "too many protocol errors")

    def _on_bytes(self, data: bytes) -> None:
        header, self._pending = self._pending, None
        if header is _REFUSED:  # its header was answered with an error already
            return
        if header is None:
            self.error("unexpected_binary", "send a photo message before its bytes")
            return
        self._photo(header, data)

    def _on_text(self, text: str) -> None:
        header, self._pending = self._pending, None
        message = self._parse(text)
        if message is None:
            return
        if isinstance(header, PhotoMessage):
            self.error("missing_photo_bytes", "the photo message was not followed by its "
                       "binary message", header.id)
        typed = self._typed(message)
        if typed is not None:
            self._handlers[typed.type](typed)

    def _typed(self, message: dict[str, Any]) -> ClientMessage | None:
        """The message as its model, or None once the client is told what is wrong."""
        try:
            return CLIENT_MESSAGE.validate_python(message)
        except ValidationError as exc:
            photo_id = message.get("id") if isinstance(message.get("id"), str) else None
            if exc.errors()[0]["type"] in UNKNOWN_TYPE:
                self.error("unknown_type", f"unknown message type {message.get('type')!r}"[:200])
            else:
                self.error("bad_request", describe(exc), photo_id)
            if message.get("type") == "photo":
                self._pending = _REFUSED
            return None

    def _on_photo(self, message: PhotoMessage) -> None:
        self._pending = message

    def _on_ping(self, _message: PingMessage) -> None:
        self.send({"type": "pong"})

    def _on_hello(self, _message: Hello) -> None:
        self.error("bad_request", "already said hello")

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
        message = None if data is None or isinstance(data, bytes | bytearray) else \
            self._parse(data)
        if message is None or message.get("type") != "hello":
            self.error("hello_required", "the first message must be a hello")
            self.close(POLICY_VIOLATION, "hello required")
            return False
        try:
            hello = parse(Hello, message)
        except InvalidMessage as exc:
            self.error("bad_request", str(exc))
            self.close(POLICY_VIOLATION, "bad_request")
            return False
        try:
            self.device = self.services.authenticate(hello.token)
            if hello.session is None:
                self.session = self.services.store.create_session(self.device, hello.device)
            else:
                self.session = self.services.session_for(self.device, hello.session)
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
            "review_below": self.services.settings.review_below,
        })
        for record in pending:
            self.follow(record)
        return True

    def _photo(self, header: PhotoMessage, data: bytes) -> None:
        assert self.device is not None and self.session is not None
        try:
            if header.preview:
                self.services.submit_preview(
                    self.device, self.key, header.id, data, header.location or None, self.send
                )
                return
            record, created = self.services.submit_photo(
                self.device, session=self.session, header=header, data=data, source="ws",
            )
        except ApiError as exc:
            if exc.code != "rate_limited":  # a busy walker is not a broken client
                self._errors += 1
            self.send(exc.to_json(header.id))
            return
        self.send({"type": "ack", "id": header.id, "count_id": record.id})
        self.follow(record, resend=not created)

    def _own_count(self, photo_id: str) -> CountRecord | None:
        assert self.device is not None
        record = self.services.store.count_by_client(self.device.id, photo_id)
        if record is None:
            self.error("not_found", "no photo with this id from this device", photo_id)
        return record

    def _apply(self, photo_id: str, change: Callable[[Device, CountRecord], Any]
               ) -> tuple[CountRecord, Any] | None:
        """Run ``change`` on this device's photo; None once the client is told why not."""
        record = self._own_count(photo_id)
        if record is None:
            return None
        assert self.device is not None
        try:
            return record, change(self.device, record)
        except ApiError as exc:
            self._errors += 1
            self.send(exc.to_json(record.client_id))
            return None

    def _on_correct(self, message: CorrectMessage) -> None:
        done = self._apply(message.id, lambda d, r: self.services.correct(d, r, message))
        if done is None:
            return
        record, updated = done
        bay = self.services.bay(updated)
        self.send({"type": "corrected", "id": record.client_id, "count_id": record.id,
                   "correction_id": message.correction_id,
                   "rows": updated.rows, "bay_rows": bay["bay_rows"],
                   "corrections": [c.to_json() for c in updated.corrections]})

    def _on_location(self, message: LocationMessage) -> None:
        done = self._apply(message.id, lambda d, r: self.services.set_location(d, r, message))
        if done is None:
            return
        record, updated = done
        self.send({"type": "located", "id": record.client_id, "count_id": record.id,
                   "location": updated.location_choice, "rows": updated.rows,
                   **self.services.bay(updated)})

    def _on_boxes(self, message: BoxesMessage) -> None:
        done = self._apply(message.id, lambda d, r: self.services.correct_boxes(d, r, message))
        if done is None:
            return
        record, updated = done
        self.send({"type": "boxes_saved", "id": record.client_id, "count_id": record.id,
                   "correction_id": message.correction_id})
        self.follow(updated, resend=True)

    def _on_confirm(self, message: ConfirmMessage) -> None:
        done = self._apply(message.id, self.services.confirm)
        if done is not None:
            record = done[0]
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
