"""The gateway's engine, shared by the WebSocket, REST and gRPC front ends.

``Services`` owns the store, the photo directory, the count jobs (``count_jobs``), the preview
runner (``previews``), the hub (``hub``) and the limits; it authenticates and validates. Every
protocol goes through ``submit_photo`` (store the photo on disk, record it in the database,
only then acknowledge and queue it) and hears about outcomes through the ``Hub``. Work
survives restarts because the database, not the in-memory queue, is the source of truth: on
start every unfinished count is queued again.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from gateway.schema import (
    CLIENT_ID_PATTERN,
    BoxCorrection,
    Correction,
    LocationAnswer,
    M,
    PhotoHeader,
)
from gateway.store import (
    CountRecord,
    Device,
    PhotoStore,
    Session,
    Store,
    StoreError,
    open_photos,
    open_store,
)
from gateway.store.bays import bay_fields, bay_location
from gateway.store.types import utcnow

from .count_jobs import CountWorker
from .errors import STORE_STATUS, ApiError
from .hub import Hub
from .limits import ConnectionLimiter, RateLimiter
from .metrics import GatewayMetrics
from .outcome_watch import OutcomeWatcher
from .pipelines import PipelineProvider
from .previews import PreviewRunner
from .views import outcome_message

log = logging.getLogger("shelfcount.gateway")

REVOCATION_POLL_S = 2.0  # a revoked device's open streams end within this (+ one tick)
LAST_SEEN_EVERY_S = 60.0  # devices' last_seen is written at most this often
_CLIENT_ID = re.compile(CLIENT_ID_PATTERN)


MAX_CROP_PIXELS = 8_000_000  # a photo's code crops together (the PWA's: 64 x 320 px at most)


class Services:
    """Everything the front ends share. ``start()`` / ``stop()`` run the background threads."""

    def __init__(
        self,
        settings: Any,
        *,
        triton_url: str,
        store: Store | None = None,
        photos: PhotoStore | None = None,
        pipelines: Any = None,
    ) -> None:
        self.settings = settings
        self.store = store or open_store(settings)
        self.photos = photos or open_photos(settings)
        self.pipelines = pipelines or PipelineProvider(settings, triton_url)
        self.hub = Hub()
        self.outcomes: OutcomeWatcher | None = None  # other replicas' outcomes (PostgreSQL)
        self.worker = CountWorker(self)
        self.previews = PreviewRunner(self, settings.preview_workers)
        self.photo_limit = RateLimiter(settings.photo_rate_per_min / 60.0, 10)
        self.preview_limit = RateLimiter(settings.preview_rate_per_s, 10)
        self.connections = ConnectionLimiter(settings.max_connections)
        self.sockets: set[Any] = set()  # open WebSocket connections, closed on stop()
        self.sink_names: list[str] = []  # the outbox's sinks, set when its worker starts
        self.metrics = GatewayMetrics(self.store, lambda: self.sink_names)
        self.on_confirmed: Callable[[], None] | None = None  # e.g. wake the outbox worker
        # The ERP's system quantities of a bay (Tryton), for the review's variance; None: no ERP.
        self.system_quantities: Callable[[Any], Any] | None = None
        # Wakes the purchase worker after an approval; None: no ERP to send purchases to.
        self.on_approved: Callable[[], None] | None = None
        # id -> the device as stored now, refreshed by the revocation thread (open connections
        # compare against it: revoked, paired again, token expired)
        self.devices_now: dict[str, Device] = {}
        self._seen: dict[str, float] = {}  # device id -> when last_seen was last written
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.started_at = time.time()

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> None:
        self.worker.start()
        self.previews.start()
        if self.store.is_postgres:  # replicas share PostgreSQL; SQLite is one process
            self.outcomes = OutcomeWatcher(self.store, self.hub.watched, self.publish)
            self.outcomes.start()
        for target, name in ((self._retention_loop, "retention"),
                             (self._revocation_loop, "revocation")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def close_sockets(self) -> None:
        """Say goodbye (1001) on every open WebSocket: the phones reconnect and resend."""
        for connection in list(self.sockets):
            connection.close(1001, "the gateway is shutting down")

    def stop(self) -> None:
        self._stop.set()
        self.close_sockets()
        self.worker.stop()
        self.previews.stop()
        if self.outcomes is not None:
            self.outcomes.stop()
        for thread in self._threads:
            thread.join(timeout=10)
        close = getattr(self.pipelines, "close", None)
        if close is not None:
            close()
        self.store.close()

    # -- authentication and access ------------------------------------------------------------
    def authenticate(self, token: str | None) -> Device:
        device = self.store.device_by_token(token or "")
        if device is None:
            raise ApiError("unauthorized", "a valid device token is required", 401)
        if self._expired(device):
            raise ApiError("token_expired", "this device's token expired: pair it again "
                           "(shelfcount device add NAME --replace)", 401)
        now = time.monotonic()
        if now - self._seen.get(device.id, -1e9) > LAST_SEEN_EVERY_S:
            self._seen[device.id] = now
            self.store.touch_device(device.id)
        return device

    def _expired(self, device: Device) -> bool:
        expires = device.token_expires(float(self.settings.token_ttl_days))
        return expires is not None and utcnow() >= expires

    def refusal(self, device: Device) -> tuple[str, str] | None:
        """(code, message) when a connection opened with ``device``'s token must end now:
        the device was revoked, paired again (a new token) or its token expired."""
        current = self.devices_now.get(device.id)
        if current is not None and current.revoked_at is not None:
            return "unauthorized", "this device was revoked"
        if current is not None and current.token_at != device.token_at:
            return "unauthorized", "this device was paired again: its old token no longer works"
        if self._expired(device):
            return "token_expired", "this device's token expired: pair it again"
        return None

    def _revocation_loop(self) -> None:
        """Revoking or re-pairing a device (CLI, REST, another gateway on the same store), or
        its token expiring, ends its open WebSocket connections and gRPC streams within
        REVOCATION_POLL_S."""
        while not self._stop.wait(REVOCATION_POLL_S):
            try:
                self.devices_now = {d.id: d for d in self.store.list_devices()}
            except Exception:  # noqa: BLE001 - try again next time
                log.exception("reading devices failed")
                continue
            for connection in list(self.sockets):
                device = connection.device
                refused = self.refusal(device) if device is not None else None
                if refused is not None:
                    connection.error(*refused)
                    connection.close(1008, refused[1][:120])

    def session_for(self, device: Device, session_id: str) -> Session:
        """The session, if this device may use it (walkers: their own; managers: all)."""
        session = self.store.get_session(str(session_id))
        if session is None or (session.device_id != device.id and not device.is_manager):
            # Same answer for "absent" and "not yours": ids of others' sessions do not leak.
            raise ApiError("unknown_session", "no such session", 404)
        return session

    def count_for(self, device: Device, count_id: str) -> CountRecord:
        record = self.store.get_count(str(count_id))
        if record is None or (record.device_id != device.id and not device.is_manager):
            raise ApiError("not_found", "no such count", 404)
        return record

    # -- photos -------------------------------------------------------------------------------
    def submit_photo(
        self, device: Device, *, session: Session, header: PhotoHeader, data: bytes,
        source: str, rate_limit: bool = True,
    ) -> tuple[CountRecord, bool]:
        """Store a photo durably and queue it; idempotent on the client's photo id.

        ``header.replaces``: the photo id of the bay photo this retake replaces;
        ``header.part_of``: a bay id or a photo id of the bay this photo is another part of
        (both of this session). Returns (count, created). When this returns, the photo is on
        disk (fsynced) and in the database: only then may the caller acknowledge it.
        """
        client_id = header.id or uuid.uuid4().hex
        location = header.location or None
        existing = self.store.count_by_client(device.id, client_id)
        if existing is not None:
            return existing, False
        links = self._bay_links(device, session, header)
        data, crops = self._split_crops(header, data)
        if not data:
            raise ApiError("empty", "the photo is empty")
        if len(data) > self.settings.max_image_bytes:
            raise ApiError(
                "too_large", f"photo exceeds {self.settings.max_image_bytes} bytes", 413
            )
        wait = self.photo_limit.take(device.id) if rate_limit else 0.0
        if wait:
            raise ApiError(
                "rate_limited", "too many photos from this device", 429,
                retry_after_s=round(wait, 2),
            )
        size = self._check_image(data)
        self._check_crops(header, size, crops)
        digest = self.photos.put(data)
        crop_files = {} if header.crops is None else {
            "crops_hash": self.photos.put(crops),
            "crops": {"full": list(header.crops.full),
                      "parts": [p.model_dump(mode="json") for p in header.crops.parts]}}
        record, created = self.store.add_count(
            session_id=session.id, device_id=device.id, client_id=client_id, source=source,
            location=location or None, photo_hash=digest, photo_bytes=len(data), **links,
            **crop_files,
        )
        if created:
            self.worker.submit(record.id)
        return record, created

    @staticmethod
    def _split_crops(header: PhotoHeader, data: bytes) -> tuple[bytes, bytes]:
        """(the photo's JPEG, its code crops' JPEGs): the crops follow the photo in the
        binary, their lengths in the header."""
        if header.crops is None:
            return data, b""
        crops = header.crops.total_bytes
        if crops >= len(data):
            raise ApiError("bad_request", f"crops: {crops} bytes of crops, but the binary "
                           f"message holds {len(data)} bytes in all")
        return data[:-crops], data[-crops:]

    def _check_crops(self, header: PhotoHeader, size: tuple[int, int], crops: bytes) -> None:
        """Each crop an image within the limits, and the photo a reduced view of the full one
        they were cut from (same shape), so their codes land where they belong."""
        from gateway.pipeline.decode import probe_image
        from gateway.pipeline.types import PipelineError

        if header.crops is None:
            return
        full_w, full_h = header.crops.full
        width, height = size
        if abs(width / height - full_w / full_h) > 0.02 * full_w / full_h or width > full_w:
            raise ApiError("bad_request", f"crops: a {width}x{height} photo is no reduced "
                           f"view of a {full_w}x{full_h} one")
        offset, pixels = 0, 0
        for i, part in enumerate(header.crops.parts):
            try:
                w, h = probe_image(crops[offset:offset + part.bytes]).upright_size
            except PipelineError as exc:
                raise ApiError(exc.code, f"crop {i}: {exc.message}", 422) from None
            x1, y1, x2, y2 = part.box
            if w > x2 - x1 or h > y2 - y1:  # a crop is the box's pixels or fewer, never more
                raise ApiError("bad_request", f"crop {i}: {w}x{h} is larger than its box", 422)
            pixels += w * h
            offset += part.bytes
        if pixels > MAX_CROP_PIXELS:  # bounds the decoding a photo's crops can cost
            raise ApiError("too_many_pixels", f"crops: {pixels} pixels in all, more than "
                           f"{MAX_CROP_PIXELS}", 422)

    def _check_image(self, data: bytes) -> tuple[int, int]:
        """Refuse, before anything touches the disk, bytes that are no image within the
        limits (headers only: format, end marker, pixel count; the pixels are decoded when
        counted). A device cannot fill the photo store with noise. Returns (width, height)."""
        from gateway.pipeline.decode import probe_image
        from gateway.pipeline.types import PipelineError

        try:
            width, height = probe_image(data).upright_size
        except PipelineError as exc:
            raise ApiError(exc.code, exc.message, 422) from None
        if width * height > self.settings.max_image_pixels:
            raise ApiError("too_many_pixels", f"{width}x{height} is more than "
                           f"{self.settings.max_image_pixels} pixels", 422)
        return width, height

    def _bay_links(self, device: Device, session: Session, header: PhotoHeader
                   ) -> dict[str, str | None]:
        """Turn ``replaces`` / ``part_of`` into count ids of this session."""
        ref = header.replaces or header.part_of
        if ref is None:
            return {}
        record = self.store.count_by_client(device.id, ref)
        if record is None and header.part_of is not None:  # a bay id is its first photo's count id
            record = self.store.get_count(ref)
        if record is None or record.session_id != session.id:
            raise ApiError("not_found", "replaces / part_of names no photo or bay of this "
                           "session", 404)
        if record.confirmed_at is not None:
            raise ApiError("already_confirmed", "that bay is confirmed; a manager can reopen "
                           "it", 409)
        key = "replaces" if header.replaces is not None else "part_of"
        return {key: record.id}

    def set_location(self, device: Device, record: CountRecord, answer: LocationAnswer
                     ) -> CountRecord:
        """The walker's answer to a location conflict (``new``: accept a location the
        catalog does not list)."""
        location = answer.location
        if self._knows_location(location) is False and not answer.new:
            raise ApiError("unknown_location", f"{location} is not a location in the catalog; "
                           'send "new": true to record it as a new location')
        try:
            return self.store.set_location(record.id, location)
        except StoreError as exc:
            raise store_error(exc) from None

    def _knows_location(self, location: str) -> bool | None:
        """The pipeline's catalog test (None: no catalog locations, every location goes)."""
        try:
            return self.pipelines.get().knows_location(location)
        except Exception:  # noqa: BLE001 - a broken catalog: every location is new
            return None

    def _has_catalog(self) -> bool:
        try:
            return bool(self.pipelines.get().catalog.entries)
        except Exception:  # noqa: BLE001 - a broken catalog: any SKU goes
            return False

    def submit_preview(
        self, device: Device, key: str, photo_id: str, data: bytes, location: str | None,
        done: Callable[[dict[str, Any]], None],
    ) -> None:
        if not data:
            raise ApiError("empty", "the frame is empty")
        if len(data) > self.settings.max_image_bytes:
            raise ApiError("too_large", "frame too large", 413)
        wait = self.preview_limit.take(device.id)
        if wait:
            raise ApiError("rate_limited", "too many preview frames", 429,
                           retry_after_s=round(wait, 2))
        self.previews.submit(key, photo_id, data, location, done)

    def bay(self, record: CountRecord) -> dict[str, Any]:
        """The photo's bay fields (current photo, parts, summed lines, location conflict)."""
        return bay_fields(record, self.store.bay_members(record.id))

    def outcome(self, record: CountRecord) -> dict[str, Any] | None:
        return outcome_message(record, self.bay(record) if record.status == "done" else None,
                               float(self.settings.review_below))

    def publish(self, record: CountRecord | None) -> None:
        if record is None:
            return
        message = self.outcome(record)
        if message is not None:
            self.hub.publish(record.id, message)

    def wait_outcome(self, record: CountRecord, timeout_s: float) -> dict[str, Any] | None:
        """Block until the count has an outcome (result, error, or queued for Triton)."""
        event = threading.Event()
        box: list[dict[str, Any]] = []

        def listener(message: dict[str, Any]) -> None:
            box.append(message)
            event.set()

        self.hub.subscribe(record.id, listener)
        try:
            current = self.store.get_count(record.id)
            message = self.outcome(current) if current else None
            if message is not None:
                return message
            if event.wait(timeout_s):
                return box[-1]
            return None
        finally:
            self.hub.unsubscribe(record.id, listener)

    def correct(self, device: Device, record: CountRecord, fix: Correction,
                idempotency_key: str | None = None) -> CountRecord:
        """Apply a ``correct`` message / PATCH body. ``idempotency_key`` (the header), else
        the body's ``correction_id``, makes a re-sent correction count once."""
        fix = _keyed(fix, idempotency_key)
        catalog = self._catalog_entry(fix.new_sku or fix.sku)
        if fix.new_sku is not None and catalog is None and self._has_catalog():
            raise ApiError("unknown_sku", f"{fix.new_sku} is not in the catalog")
        if fix.new_sku is not None and catalog is not None:
            fix = fix.model_copy(update={"new_sku": catalog["SKU"]})  # the catalog's spelling
        try:
            return self.store.correct(record.id, fix, by=device, catalog=catalog)
        except StoreError as exc:
            raise store_error(exc) from None

    def correct_boxes(self, device: Device, record: CountRecord, fix: BoxCorrection,
                      idempotency_key: str | None = None) -> CountRecord:
        """A person's complete set of item boxes for a photo (``PUT .../boxes`` or a
        ``boxes`` message); the lines follow them. Box SKUs must be catalog SKUs (or "" for
        an unnamed item) when there is a catalog."""
        fix = _keyed(fix, idempotency_key)
        spelled: dict[str, str] = {}  # as sent -> the catalog's spelling
        catalogs: dict[str, dict[str, Any] | None] = {}
        for sku in {box[4] for box in fix.boxes}:
            entry = self._catalog_entry(sku)
            if sku and entry is None and self._has_catalog():
                raise ApiError("unknown_sku", f"{sku} is not in the catalog")
            spelled[sku] = entry["SKU"] if entry else sku
            catalogs[spelled[sku]] = entry
        boxes = [(*box[:4], spelled[box[4]]) for box in fix.boxes]
        try:
            return self.store.correct_boxes(record.id, fix.model_copy(update={"boxes": boxes}),
                                            by=device, catalogs=catalogs,
                                            findings=self._audit(record, boxes))
        except StoreError as exc:
            raise store_error(exc) from None

    def _audit(self, record: CountRecord, boxes: list[tuple[Any, ...]]
               ) -> list[dict[str, Any]] | None:
        """The shelf audit on a person's boxes: each box's SKU is the person's word (an
        unnamed box is an item of unknown SKU). None when the plan cannot be had."""
        from gateway.pipeline.audit import AuditItem, audit_bay

        result = record.result or {}
        try:
            pipeline = self.pipelines.get()
        except Exception:  # noqa: BLE001 - a broken catalog must not block corrections
            return None
        location = bay_location(record)
        plan = pipeline.plan_for(location, pipeline.catalog.home_sku(location))
        items = [AuditItem(tuple(float(v) for v in b[:4]), str(b[4]), bool(b[4])) for b in boxes]
        return [f.to_json() for f in audit_bay(items, plan, int(result.get("width") or 0),
                                               int(result.get("height") or 0))]

    def _catalog_entry(self, sku: str) -> dict[str, Any] | None:
        if not sku:
            return None
        try:
            return self.pipelines.catalog_entry(sku)
        except Exception:  # noqa: BLE001 - a broken catalog must not block corrections
            return None

    def reorder_point(self, sku: str) -> int | None:
        """The catalog's reorder point of a SKU (None: unknown SKU or no catalog)."""
        try:
            entry = self.pipelines.get().catalog.by_sku(sku)
        except Exception:  # noqa: BLE001 - no catalog: the default applies
            return None
        return entry.reorder_point if entry else None

    def send_back(self, manager: Device, record: CountRecord, note: str) -> list[CountRecord]:
        """A manager's "recount, please": the walker sees the note on the bay's photos."""
        try:
            records = self.store.request_recount(record.id, note, manager)
        except StoreError as exc:
            raise store_error(exc) from None
        for r in records:
            self.hub.publish(r.id, {"type": "recount", "id": r.client_id, "count_id": r.id,
                                    "note": note, "by": manager.name})
        return records

    def reopen(self, manager: Device, record: CountRecord) -> list[CountRecord]:
        """A manager reopens a confirmed bay (open copies replace its confirmed photos)."""
        try:
            return self.store.reopen(record.id, manager)
        except StoreError as exc:
            raise store_error(exc) from None

    def products(self) -> list[dict[str, str]]:
        """The catalog's products, for the correction screen's SKU search."""
        try:
            return self.pipelines.products()
        except Exception:  # noqa: BLE001 - no catalog: nothing to search
            return []

    def confirm(self, device: Device, record: CountRecord) -> tuple[CountRecord, bool]:
        try:
            confirmed, newly = self.store.confirm_count(record.id, device)
        except StoreError as exc:
            raise store_error(exc) from None
        if newly:
            self.confirmed()
        return confirmed, newly

    def confirm_session(self, device: Device, session: Session) -> list[tuple[CountRecord, bool]]:
        try:
            results = self.store.confirm_session(session.id, device)
        except StoreError as exc:
            raise store_error(exc) from None
        if any(newly for _, newly in results):
            self.confirmed()
        return results

    def confirmed(self) -> None:
        hook = self.on_confirmed
        if hook is not None:
            try:
                hook()
            except Exception:  # noqa: BLE001 - the outbox worker polls anyway
                log.exception("on_confirmed hook failed")

    # -- health and retention -------------------------------------------------------------------
    def health(self, models_too: bool = True) -> tuple[bool, dict[str, Any]]:
        """Whether everything is ready, and what each part says; ``models_too``: ask Triton
        about each model the counts use (one call each)."""
        store_ok = self.store.ping()
        models: dict[str, bool] = {}
        try:
            triton_ok = bool(self.pipelines.triton_ready())
            if triton_ok and models_too:
                models = self.pipelines.models_ready()
        except Exception:  # noqa: BLE001 - health reports, never raises
            triton_ok = False
        ok = store_ok and triton_ok and all(models.values())
        body = {
            "status": "ok" if ok else "degraded",
            "gateway": "ok",
            "triton": "ok" if triton_ok else "unavailable",
            "store": "ok" if store_ok else "unavailable",
            "queue": self.worker.depth(),
            "connections": self.connections.open,
        }
        if models:  # what Triton serves of what the counts need
            body["models"] = {k: "ok" if v else "unavailable" for k, v in models.items()}
        return ok, body

    def purge_photos(self) -> int:
        """Delete photo files older than the retention period (records stay)."""
        days = int(self.settings.photo_retention_days)
        if days <= 0:
            return 0
        expired = self.store.expired_photos(utcnow() - timedelta(days=days))
        if not expired:
            return 0
        self.store.mark_purged([count_id for count_id, _ in expired])
        removed = 0
        for digest in {digest for _, digest in expired}:
            if not self.store.photo_in_use(digest):
                self.photos.delete(digest)
                removed += 1
        return removed

    def _retention_loop(self) -> None:
        while True:
            try:
                removed = self.purge_photos()
                if removed:
                    log.warning("retention: removed %d photo file(s)", removed)
            except Exception:  # noqa: BLE001 - try again next time
                log.exception("photo retention failed")
            if self._stop.wait(3600):
                return


def _keyed(fix: M, idempotency_key: str | None) -> M:
    """``fix`` with the Idempotency-Key header as its correction id (the header wins)."""
    if idempotency_key is None:
        return fix
    if not _CLIENT_ID.fullmatch(idempotency_key):
        raise ApiError("bad_request", "Idempotency-Key must be 1-100 letters, digits or ._:-")
    return fix.model_copy(update={"correction_id": idempotency_key})


def store_error(exc: StoreError) -> ApiError:
    return ApiError(exc.code, exc.message, STORE_STATUS.get(exc.code, 400))


