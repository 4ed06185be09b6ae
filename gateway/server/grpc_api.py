"""gRPC ``shelfcount.v1.CountService`` (protos/shelfcount/v1/counting.proto) on its own port.

Same engine as the WebSocket: photos are stored before anything is answered, counted by the
worker threads, idempotent on Photo.id per device. Authentication: metadata
``authorization: Bearer <token>``.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from gateway.proto_gen.shelfcount.v1 import counting_pb2 as pb
from gateway.proto_gen.shelfcount.v1 import counting_pb2_grpc as pb_grpc
from gateway.schema import InvalidMessage, PhotoHeader, parse
from gateway.store import Device, Session

from .errors import ApiError
from .services import Services

log = logging.getLogger("shelfcount.gateway.grpc")

_STATUS = {
    401: grpc.StatusCode.UNAUTHENTICATED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}
_FINAL = ("result", "error")


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


def _row(row: dict[str, Any]) -> pb.Row:
    return pb.Row(
        location=_text(row.get("Location")), sku=_text(row.get("SKU")),
        product_description=_text(row.get("Product_Description")),
        quantity_counted=int(_float(row.get("Quantity_Counted"))),
        unit_price=_text(row.get("Unit_Price")), total_value=_text(row.get("Total_Value")),
        condition=_text(row.get("Condition")),
        expiration_date=_text(row.get("Expiration_Date")),
        last_updated=_text(row.get("Last_Updated")),
        count_confidence=_float(row.get("Count_Confidence")),
    )


def photo_header(photo: pb.Photo) -> PhotoHeader:
    """The Photo message's header fields as the one PhotoHeader model (proto3 sends "" for
    an unset text field)."""
    try:
        return parse(PhotoHeader, {"id": photo.id or None, "location": photo.location or None,
                                   "preview": photo.preview,
                                   "replaces": photo.replaces or None,
                                   "part_of": photo.part_of or None})
    except InvalidMessage as exc:
        raise ApiError("bad_request", str(exc)) from None


def to_proto(message: dict[str, Any]) -> pb.CountResult:
    """A WebSocket-style outcome message as a CountResult."""
    out = pb.CountResult(
        id=_text(message.get("id")),
        count_id=_text(message.get("count_id")),
        session=_text(message.get("session")),
        width=int(message.get("width") or 0),
        height=int(message.get("height") or 0),
        queued=bool(message.get("queued")),
        preview=bool(message.get("preview")),
        bay=_text(message.get("bay")),
        current=bool(message.get("current")),
        superseded_by=_text(message.get("superseded_by")),
        replaced=[_text(p) for p in message.get("replaced") or []],
        model_version=_text(message.get("model_version")),
    )
    out.rows.extend(_row(row) for row in message.get("rows") or [])
    out.bay_rows.extend(_row(row) for row in message.get("bay_rows") or [])
    conflict = message.get("location_conflict")
    if conflict:
        out.location_conflict.CopyFrom(pb.LocationConflict(
            reason=_text(conflict.get("reason")), chosen=_text(conflict.get("chosen")),
            read=_text(conflict.get("read")), message=_text(conflict.get("message"))))
    for box in message.get("boxes") or []:
        values = list(box) + [0.0] * (6 - len(box))
        out.boxes.append(pb.Box(x0=_float(values[0]), y0=_float(values[1]), x1=_float(values[2]),
                                y1=_float(values[3]), score=_float(values[4]),
                                sku=_text(values[5])))
    for f in message.get("findings") or []:
        box = list(f.get("box") or []) + [0.0] * 4
        out.findings.append(pb.Finding(
            type=_text(f.get("type")), x0=_float(box[0]), y0=_float(box[1]),
            x1=_float(box[2]), y1=_float(box[3]), sku=_text(f.get("sku")),
            expected_sku=_text(f.get("expected_sku")), confidence=_float(f.get("confidence"))))
    for code in message.get("codes") or []:
        out.codes.append(pb.Code(format=_text(code.get("Format")), text=_text(code.get("Text")),
                                 gtin=_text(code.get("GTIN"))))
    for name, value in (message.get("timings_ms") or {}).items():
        out.timings_ms[str(name)] = _float(value)
    if message.get("type") == "error":
        out.error.code = _text(message.get("code"))
        out.error.message = _text(message.get("message"))
    return out


_NOT_A_PHOTO = "bad_request: the request is not a shelfcount.v1.Photo message"


class CountServicer(pb_grpc.CountServiceServicer):
    def __init__(self, services: Services) -> None:
        self.services = services

    # -- plumbing ----------------------------------------------------------------------------
    def _device(self, context: grpc.ServicerContext) -> Device:
        token = None
        for key, value in context.invocation_metadata():
            if key == "authorization" and isinstance(value, str):
                scheme, _, rest = value.partition(" ")
                if scheme.lower() == "bearer":
                    token = rest.strip()
        try:
            return self.services.authenticate(token)
        except ApiError as exc:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, exc.message)
            raise  # abort raises; this keeps type checkers honest

    def _session(self, device: Device, photo: pb.Photo) -> Session:
        if photo.session:
            return self.services.session_for(device, photo.session)
        return self.services.store.current_session(device)

    def _enter(self, context: grpc.ServicerContext) -> None:
        if not self.services.connections.acquire():
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many connections")

    def _preview(self, device: Device, key: str, photo: pb.Photo,
                 timeout_s: float) -> dict[str, Any]:
        done = threading.Event()
        box: list[dict[str, Any]] = []

        def finish(message: dict[str, Any]) -> None:
            box.append(message)
            done.set()

        self.services.submit_preview(device, key, photo.id, bytes(photo.image),
                                     photo.location or None, finish)
        if not done.wait(timeout_s):
            return ApiError("timeout", "the preview frame was not counted in time").to_json(
                photo.id)
        return box[0]

    # -- RPCs ----------------------------------------------------------------------------------
    def Count(self, request: pb.Photo, context: grpc.ServicerContext) -> pb.CountResult:  # noqa: N802
        self._enter(context)
        try:
            device = self._device(context)
            wait_s = float(self.services.settings.request_wait_s)
            try:
                if request.preview:
                    return to_proto(self._preview(device, uuid.uuid4().hex, request, wait_s))
                record, _ = self.services.submit_photo(
                    device, session=self._session(device, request), header=photo_header(request),
                    data=bytes(request.image), source="grpc",
                )
            except ApiError as exc:
                if exc.status in _STATUS:
                    context.abort(_STATUS[exc.status], f"{exc.code}: {exc.message}")
                return to_proto(exc.to_json(request.id))
            message = self.services.wait_outcome(record, wait_s)
            if message is None:
                message = {"type": "error", "id": record.client_id, "count_id": record.id,
                           "session": record.session_id, "code": "pending", "queued": True,
                           "message": "still counting; call again with the same id"}
            return to_proto(message)
        finally:
            self.services.connections.release()

    def Stream(  # noqa: N802
        self, request_iterator: Iterator[bytes], context: grpc.ServicerContext
    ) -> Iterator[pb.CountResult]:
        self._enter(context)
        try:
            device = self._device(context)
            yield from _StreamState(self.services, self, device, context).run(request_iterator)
        finally:
            self.services.connections.release()


class _StreamState:
    """One Stream call: a reader thread takes photos in, this generator sends outcomes."""

    def __init__(self, services: Services, servicer: CountServicer, device: Device,
                 context: grpc.ServicerContext) -> None:
        self.services = services
        self.servicer = servicer
        self.device = device
        self.context = context
        self.key = uuid.uuid4().hex
        self.out: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.pending: set[str] = set()  # counts whose final outcome is still to come
        self.previews = 0
        self.sent: set[tuple[str, str, str]] = set()
        self.lock = threading.Lock()
        self.reading = True
        self.invalid = False  # the client sent bytes that are no Photo message

    def listener(self, message: dict[str, Any]) -> None:
        self.out.put(message)

    def run(self, requests: Iterator[bytes]) -> Iterator[pb.CountResult]:
        reader = threading.Thread(target=self._read, args=(requests,), daemon=True)
        reader.start()
        followed: set[str] = set()
        try:
            while self.context.is_active():
                if self.invalid:
                    self.context.abort(grpc.StatusCode.INVALID_ARGUMENT, _NOT_A_PHOTO)
                with self.lock:
                    finished = not self.reading and not self.pending and not self.previews
                if finished and self.out.empty():
                    return
                refused = self.services.refusal(self.device)
                if refused is not None:
                    self.context.abort(grpc.StatusCode.UNAUTHENTICATED, ": ".join(refused))
                try:
                    message = self.out.get(timeout=0.5)
                except queue.Empty:
                    continue
                if message is None:
                    continue
                if message.get("type") == "follow":
                    record = message["record"]
                    followed.add(record.id)
                    self.services.hub.subscribe(record.id, self.listener)
                    current = self.services.store.get_count(record.id)
                    outcome = self.services.outcome(current) if current else None
                    if outcome is not None:
                        self.out.put(outcome)
                    continue
                key = (str(message.get("count_id")), str(message.get("type")),
                       str(message.get("code")))
                with self.lock:
                    if message.get("preview"):
                        self.previews -= 1
                    elif message.get("count_id") and key in self.sent:
                        continue
                    self.sent.add(key)
                    if message.get("type") in _FINAL and not message.get("queued"):
                        self.pending.discard(str(message.get("count_id")))
                yield to_proto(message)
        finally:
            for count_id in followed:
                self.services.hub.unsubscribe(count_id, self.listener)

    def _read(self, requests: Iterator[bytes]) -> None:
        try:
            for raw in requests:
                try:
                    photo = pb.Photo.FromString(raw)
                except DecodeError:
                    self.invalid = True
                    return
                self._take(photo)
        except grpc.RpcError:
            pass  # the client went away; the generator ends with the context
        except Exception:  # noqa: BLE001 - never kill the stream silently
            log.exception("gRPC stream reader failed")
        finally:
            with self.lock:
                self.reading = False
            self.out.put(None)

    def _take(self, photo: pb.Photo) -> None:
        try:
            if photo.preview:
                with self.lock:
                    self.previews += 1
                try:
                    self.services.submit_preview(self.device, self.key, photo.id,
                                                 bytes(photo.image), photo.location or None,
                                                 self.listener)
                except ApiError:
                    with self.lock:
                        self.previews -= 1
                    raise
                return
            session = self.servicer._session(self.device, photo)
            record, _ = self.services.submit_photo(
                self.device, session=session, header=photo_header(photo),
                data=bytes(photo.image), source="grpc",
            )
        except ApiError as exc:
            self.out.put({**exc.to_json(photo.id), "preview": False})
            return
        with self.lock:
            self.pending.add(record.id)
        self.out.put({"type": "follow", "record": record})


def _add_servicer(servicer: CountServicer, server: grpc.Server) -> None:
    """The generated registration, except that Count and Stream parse their requests
    themselves: bytes that are no Photo message get INVALID_ARGUMENT (grpc answers a
    deserializer's failure with INTERNAL, which reads as the gateway's fault)."""

    def count(raw: bytes, context: grpc.ServicerContext) -> pb.CountResult:
        try:
            request = pb.Photo.FromString(raw)
        except DecodeError:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, _NOT_A_PHOTO)
        return servicer.Count(request, context)

    handlers = {
        "Count": grpc.unary_unary_rpc_method_handler(
            count, request_deserializer=None,
            response_serializer=pb.CountResult.SerializeToString),
        "Stream": grpc.stream_stream_rpc_method_handler(
            servicer.Stream, request_deserializer=None,
            response_serializer=pb.CountResult.SerializeToString),
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("shelfcount.v1.CountService", handlers),))


def start_grpc(services: Services, host: str, port: int,
               tls: tuple[Path, Path] | None = None) -> tuple[grpc.Server, int]:
    """Start the gRPC server; returns it and the bound port (``port`` 0 picks a free one)."""
    settings = services.settings
    limit = int(settings.max_connections)
    server = grpc.server(
        ThreadPoolExecutor(max_workers=limit, thread_name_prefix="grpc"),
        maximum_concurrent_rpcs=limit,
        options=[
            ("grpc.max_receive_message_length", int(settings.max_message_bytes)),
            ("grpc.max_send_message_length", 16 * 1024 * 1024),
        ],
    )
    _add_servicer(CountServicer(services), server)
    address = f"{host}:{port}"
    if tls is not None:
        cert, key = tls
        credentials = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
        bound = server.add_secure_port(address, credentials)
    else:
        bound = server.add_insecure_port(address)
    if not bound:
        raise OSError(f"cannot listen for gRPC on {address}")
    server.start()
    return server, bound
