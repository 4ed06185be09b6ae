"""Several Tritons behind one client: ``SHELFCOUNT_TRITON_URL=host1:8001,host2:8001``.

Why: one CPU Triton counts about two photos a second; a site with many walkers runs several
(or GPU ones) and the gateway spreads its calls over them. Each call goes to the next Triton in
turn; one that does not answer is set aside and its call goes to the next, so a Triton dying
mid-session costs no photo, and it gets calls again once it answers ready (checked at most
every ``recheck_s``). Only when no Triton answers does the caller see InferenceUnavailable
(the photo waits, as with one Triton).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

from gateway.inference.client import InferenceClient, InferenceUnavailable
from gateway.pipeline.types import Detection, TextLine

log = logging.getLogger("shelfcount.inference")
T = TypeVar("T")


def triton_urls(setting: str) -> list[str]:
    """The Triton gRPC addresses in a comma-separated setting (blanks dropped, order kept)."""
    return list(dict.fromkeys(u.strip() for u in setting.split(",") if u.strip()))


class TritonPool:
    """The InferenceClient interface over several Tritons (see the module docstring)."""

    def __init__(self, urls: Sequence[str], timeout_s: float = 30.0, *,
                 recheck_s: float = 2.0) -> None:
        if len(urls) < 2:
            raise ValueError("a Triton pool needs two or more URLs")
        self.url = ",".join(urls)
        # each member fails fast: the pool's answer to an outage is the next Triton
        self.members = [InferenceClient(u, timeout_s, retry_wait_s=0.0) for u in urls]
        self.recheck_s = recheck_s
        # one turn per kind of call: a count makes a fixed pattern of calls (OCR, then the
        # detector, ...), and one shared turn could send every detector call to one Triton
        self._turns: dict[str, itertools.count[int]] = {}
        self._down: dict[int, float] = {}  # member -> when it was last found down
        self._lock = threading.Lock()

    # -- which Triton -------------------------------------------------------------------------

    def _order(self, kind: str) -> list[int]:
        """Members to try, starting with the next in ``kind``'s turn; ones set aside come
        last, except that one whose recheck time is due is probed and back in turn when
        ready."""
        n = len(self.members)
        with self._lock:
            turn = self._turns.setdefault(kind, itertools.count())
        start = next(turn) % n
        order = [(start + k) % n for k in range(n)]
        now = time.monotonic()
        with self._lock:
            due = [i for i, at in self._down.items() if now - at >= self.recheck_s]
            for i in due:
                self._down[i] = now  # one probe per recheck period
        for i in due:
            if self.members[i].is_ready():
                with self._lock:
                    self._down.pop(i, None)
                log.warning("Triton %s answers again: back in turn", self.members[i].url)
        with self._lock:
            down = set(self._down)
        return [i for i in order if i not in down] + [i for i in order if i in down]

    def _set_aside(self, i: int, exc: Exception) -> None:
        with self._lock:
            fresh = i not in self._down
            self._down[i] = time.monotonic()
        if fresh:
            log.warning("Triton %s set aside: %s", self.members[i].url, exc)

    def _run(self, kind: str, work: Callable[[InferenceClient], T]) -> T:
        errors = []
        for i in self._order(kind):
            try:
                result = work(self.members[i])
            except InferenceUnavailable as exc:
                self._set_aside(i, exc)
                errors.append(f"{self.members[i].url}: {exc}")
                continue
            with self._lock:
                self._down.pop(i, None)
            return result
        raise InferenceUnavailable("no Triton answered (" + "; ".join(errors) + ")")

    def serving(self) -> list[str]:
        """The Tritons now in turn (the others are set aside)."""
        with self._lock:
            return [m.url for i, m in enumerate(self.members) if i not in self._down]

    # -- the InferenceClient interface ----------------------------------------------------------

    def is_ready(self) -> bool:
        return any(m.is_ready() for m in self.members)

    def model_ready(self, name: str) -> bool:
        return any(m.model_ready(name) for m in self.members)

    def ocr(self, images: Sequence[np.ndarray]) -> list[list[TextLine]]:
        return self._run("ocr", lambda c: c.ocr(images))

    def detect(self, tiles: np.ndarray) -> list[list[Detection]]:
        return self._run("detect", lambda c: c.detect(tiles))

    def detect_versioned(self, tiles: np.ndarray) -> tuple[list[list[Detection]], str | None]:
        return self._run("detect", lambda c: c.detect_versioned(tiles))

    def faces(self, image: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
        return self._run("faces", lambda c: c.faces(image))

    def people(self, image: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
        return self._run("people", lambda c: c.people(image))

    def close(self) -> None:
        for member in self.members:
            member.close()


def connect(setting: str, timeout_s: float = 30.0, *,
            retry_wait_s: float = 20.0) -> InferenceClient | TritonPool:
    """The client for ``SHELFCOUNT_TRITON_URL``: one Triton, or a pool of several."""
    urls = triton_urls(setting)
    if len(urls) > 1:
        return TritonPool(urls, timeout_s)
    return InferenceClient(urls[0] if urls else setting, timeout_s, retry_wait_s=retry_wait_s)
