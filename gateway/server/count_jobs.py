"""Count jobs: the threads that count stored photos in arrival order, park them while Triton
is down and queue them again when it is back (the database, not this queue, is the truth).

Several gateway replicas may share one database: each photo is counted by the replica that
holds its lease (gateway.store.leases_repo), renewed while it is queued, counted or parked
here; a replica that dies leaves its photos to the others once their leases run out (a dead
process on this same machine: at once)."""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from gateway.pipeline.crops import Crop
from gateway.store.leases_repo import dead_local_owner, replica_owner

if TYPE_CHECKING:
    from gateway.store import CountRecord

    from .services import Services

log = logging.getLogger("shelfcount.gateway")

# Stored photos are acknowledged at once and their results may take a moment; live preview
# frames are someone watching the screen. On a small machine the photo workers run at a lower
# CPU priority (Linux: per thread) so previews stay quick when a backlog of photos builds up.
PHOTO_NICENESS = 5
MAX_ATTEMPTS = 3  # a photo that crashes the pipeline this often is failed, not retried forever


def is_unavailable(exc: BaseException) -> bool:
    from gateway.inference.client import InferenceUnavailable

    return isinstance(exc, InferenceUnavailable)



def stored_crops(record: CountRecord, read: Callable[[str], bytes]) -> list[Crop]:
    """The code crops that came with a reduced photo, as the pipeline reads them."""
    if not record.crops_hash or not record.crops:
        return []
    blob, full = read(record.crops_hash), record.crops["full"]
    out, offset = [], 0
    for part in record.crops["parts"]:
        out.append(Crop(tuple(part["box"]), (int(full[0]), int(full[1])),  # type: ignore[arg-type]
                        blob[offset:offset + int(part["bytes"])]))
        offset += int(part["bytes"])
    return out

class CountWorker:
    """Threads that count stored photos, in arrival order, and park them during outages."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._waiting: set[str] = set()
        self._waiting_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.triton_down = threading.Event()
        self._busy = 0
        self._busy_lock = threading.Lock()
        # this replica in the leases: machine, process, and which worker of the process
        self.owner = replica_owner()
        self.lease_s = float(services.settings.lease_s)
        self._held: set[str] = set()  # counts whose lease this replica holds
        self._held_lock = threading.Lock()

    def start(self) -> None:
        store = self.services.store
        for record in store.unfinished_counts():
            if record.attempts >= MAX_ATTEMPTS:
                store.fail_count(record.id, "internal_error",
                                 "counting this photo failed repeatedly")
        resumed = self._take_orphans()
        if resumed:
            log.warning("resuming %d unfinished count(s)", resumed)
        n = max(1, int(self.services.settings.workers))
        for i in range(n):
            self._spawn(self._loop, f"count-worker-{i}")
        self._spawn(self._retry_loop, "count-retry")
        self._spawn(self._lease_loop, "count-leases")

    def _take_orphans(self) -> int:
        """Queue the unfinished counts nobody holds: leases run out, never taken, or held by
        a process of this machine that is gone. Returns how many."""
        store = self.services.store
        ids: list[str] = []
        for owner in store.lease_owners():
            if dead_local_owner(owner):
                ids += store.take_over(owner, self.owner, self.lease_s)
        ids += store.claim_expired(self.owner, self.lease_s, limit=10_000)
        for count_id in dict.fromkeys(ids):
            self._hold(count_id)
            self._queue.put(count_id)
        return len(ids)

    def _hold(self, count_id: str) -> None:
        with self._held_lock:
            self._held.add(count_id)

    def _drop(self, count_id: str) -> None:
        with self._held_lock:
            self._held.discard(count_id)

    def _lease_loop(self) -> None:
        """Renew the leases held here; take over the photos whose holder stopped renewing."""
        store = self.services.store
        while not self._stop.wait(max(0.5, self.lease_s / 3)):
            try:
                with self._held_lock:
                    held = list(self._held)
                kept = store.renew_leases(held, self.owner, self.lease_s)
                for lost in set(held) - kept:
                    self._drop(lost)  # taken over while this replica was too slow
                taken = self._take_orphans()
                if taken:
                    log.warning("took over %d count(s) another replica left", taken)
            except Exception:  # noqa: BLE001 - the database may be away for a moment
                log.exception("renewing count leases failed")

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def submit(self, count_id: str) -> None:
        if self.services.store.claim_count(count_id, self.owner, self.lease_s):
            self._hold(count_id)
            self._queue.put(count_id)

    def depth(self) -> dict[str, int]:
        with self._waiting_lock:
            waiting = len(self._waiting)
        with self._busy_lock:
            busy = self._busy
        return {"queued": self._queue.qsize(), "waiting_for_triton": waiting, "busy": busy}

    def stop(self) -> None:
        self._stop.set()
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads.clear()
        try:  # a clean stop hands its photos on at once (a crash: when the leases run out)
            self.services.store.release_leases(self.owner)
        except Exception:  # noqa: BLE001 - the leases run out anyway
            log.exception("releasing count leases failed")

    def _loop(self) -> None:
        _lower_thread_priority(PHOTO_NICENESS)
        while not self._stop.is_set():
            count_id = self._queue.get()
            if count_id is None:
                return
            with self._busy_lock:
                self._busy += 1
            try:
                self._process(count_id)
            except Exception:  # noqa: BLE001 - a worker thread must survive anything
                log.exception("count %s: unexpected error", count_id)
            finally:
                with self._busy_lock:
                    self._busy -= 1

    def _park(self, count_id: str, reason: str, *, tried: bool = False) -> None:
        store = self.services.store
        store.set_status(count_id, "waiting", undo_attempt=tried)
        with self._waiting_lock:
            self._waiting.add(count_id)
        record = store.get_count(count_id)
        if record is not None:
            self.services.publish(record)
        log.warning("count %s waits for Triton: %s", count_id, reason)

    def _process(self, count_id: str) -> None:
        services = self.services
        store = services.store
        record = store.get_count(count_id)
        if record is None or record.status in ("done", "failed"):
            self._drop(count_id)
            return
        if not store.claim_count(count_id, self.owner, self.lease_s):
            self._drop(count_id)  # another replica holds it
            return
        if self.triton_down.is_set():
            self._park(count_id, "Triton is down")
            return
        try:
            data = services.photos.get(record.photo_hash)
        except FileNotFoundError:
            store.fail_count(count_id, "photo_missing", "the stored photo file is missing")
            self._drop(count_id)
            services.publish(store.get_count(count_id))
            return
        try:
            crops = stored_crops(record, services.photos.get)
        except FileNotFoundError:  # they only add codes: count the photo without them
            log.warning("count %s: its code crops file is missing", count_id)
            crops = []
        store.set_status(count_id, "processing", attempt=True)
        from gateway.pipeline.types import PipelineError

        try:
            result = services.pipelines.get().count(data, location=record.location,
                                                     crops=crops)
        except PipelineError as exc:
            store.fail_count(count_id, exc.code, exc.message)
        except Exception as exc:  # noqa: BLE001 - sorted below
            if is_unavailable(exc):
                services.metrics.triton_errors.inc()
                self.triton_down.set()
                self._park(count_id, str(exc), tried=True)
                return
            log.exception("count %s failed", count_id)
            if record.attempts + 1 >= MAX_ATTEMPTS:
                store.fail_count(count_id, "internal_error", "counting this photo failed")
            else:
                store.set_status(count_id, "queued")
                self._queue.put(count_id)
                return
        else:
            if result.people:
                self._redact(record.photo_hash, data, result.people)
            if store.finish_count(count_id, result.to_json(), once=True):
                services.metrics.observe_count(result.timings_ms)
        self._drop(count_id)
        services.publish(store.get_count(count_id))

    def _redact(self, digest: str, data: bytes, people: list[list[float | str]]) -> None:
        """Blur the people in the stored photo (before the result is recorded: a crash in
        between counts it again, from the blurred copy, rather than keep the faces)."""
        from gateway.pipeline.privacy import redacted_jpeg

        services = self.services
        try:
            image = services.pipelines.get().decode(data)
            services.photos.redact(digest, redacted_jpeg(image, people))
        except Exception:  # noqa: BLE001 - logged; the count itself stands
            log.exception("photo %s: blurring its people failed", digest[:12])

    def _retry_loop(self) -> None:
        """During an outage: poll Triton, and queue the parked photos again when it answers."""
        interval = max(0.2, float(self.services.settings.triton_retry_s))
        while not self._stop.wait(interval):
            with self._waiting_lock:
                parked = bool(self._waiting)
            if not parked and not self.triton_down.is_set():
                continue
            try:
                ready = self.services.pipelines.ready_to_count()
            except Exception:  # noqa: BLE001 - keep polling
                ready = False
            if not ready:
                continue
            self.triton_down.clear()
            with self._waiting_lock:
                waiting, self._waiting = sorted(self._waiting), set()
            log.warning("Triton is back: counting %d queued photo(s)", len(waiting))
            for count_id in waiting:
                self.services.store.set_status(count_id, "queued")
                self._queue.put(count_id)


def _lower_thread_priority(niceness: int) -> None:
    """Raise this thread's nice value (Linux sets it per thread; elsewhere: no-op)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
    except (AttributeError, OSError):
        pass
