"""Live preview frames: counted at once, never stored, the newest frame per client wins."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .count_jobs import is_unavailable
from .errors import ApiError

if TYPE_CHECKING:
    from .services import Services

log = logging.getLogger("shelfcount.gateway")

PREVIEW_MAX_WAIT_S = 1.0  # a live frame older than this is not worth counting any more


class PreviewRunner:
    """Counts live preview frames, never stored; a newer frame replaces a waiting older one.

    A phone sends frames faster than two cores count them for twenty walkers; counting stale
    frames would only add latency, so per client only the newest waiting frame is kept, and a
    frame that waited longer than PREVIEW_MAX_WAIT_S is answered "preview_dropped" unseen.
    """

    def __init__(self, services: Services, workers: int) -> None:
        self.services = services
        self._pending: dict[
            str, tuple[bytes, str | None, Callable[[dict[str, Any]], None], float]
        ] = {}
        self._order: deque[str] = deque()
        self._cv = threading.Condition()
        self._stop = False
        self._threads = [
            threading.Thread(target=self._loop, name=f"preview-{i}", daemon=True)
            for i in range(max(1, workers))
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        for thread in self._threads:
            thread.join(timeout=30)

    def submit(
        self, key: str, photo_id: str, data: bytes, location: str | None,
        done: Callable[[dict[str, Any]], None],
    ) -> None:
        def finish(message: dict[str, Any]) -> None:
            done({**message, "id": photo_id, "preview": True})

        with self._cv:
            old = self._pending.get(key)
            self._pending[key] = (data, location, finish, time.monotonic())
            if old is None:
                self._order.append(key)
            self._cv.notify()
        if old is not None:
            old[2](ApiError("preview_dropped", "a newer preview frame replaced this one").to_json())

    def _loop(self) -> None:
        from gateway.pipeline.types import PipelineError

        while True:
            with self._cv:
                while not self._order and not self._stop:
                    self._cv.wait()
                if self._stop:
                    return
                key = self._order.popleft()
                data, location, finish, queued_at = self._pending.pop(key)
            if time.monotonic() - queued_at > PREVIEW_MAX_WAIT_S:
                finish(ApiError("preview_dropped", "the gateway is busy; frame too old").to_json())
                continue
            try:
                if self.services.worker.triton_down.is_set():
                    raise ApiError("triton_unavailable", "Triton is unavailable", queued=False)
                result = self.services.pipelines.get().count(data, location=location, preview=True)
                finish({"type": "result", **result.to_json()})
            except ApiError as exc:
                finish(exc.to_json())
            except PipelineError as exc:
                finish(ApiError(exc.code, exc.message).to_json())
            except Exception as exc:  # noqa: BLE001 - reported to the client, logged here
                if is_unavailable(exc):
                    finish(ApiError("triton_unavailable", str(exc), queued=False).to_json())
                else:
                    log.exception("preview frame failed")
                    finish(ApiError("internal_error", "counting the frame failed").to_json())
