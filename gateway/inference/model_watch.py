"""Make Triton serve the detector version the model repository names as live.

``shelfcount model promote`` / ``rollback`` only rewrite files (config.pbtxt's version policy),
so they work whether or not a gateway is running and from any shell. The running gateway
notices the change here, by polling the live version every few seconds, and asks its Triton to
reload the model: Triton loads the new version beside the old one and moves requests over when
it is ready, so no request fails and nothing restarts. Polling rather than Triton's own
repository polling: that reloads a model whenever any file under it changes (a candidate being
written, say) and cannot tell the gateway which version it serves.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from gateway.inference.versions import DETECTOR, DetectorVersions

log = logging.getLogger(__name__)

Loader = Callable[[str], None]


def triton_loader(url: str, timeout_s: float = 120.0) -> Loader:
    """A loader for external Tritons (run with --model-control-mode=explicit): ``url`` may
    list several, comma-separated; each is told. One that is down is skipped (it loads the
    live version from the repository when it starts again); none answering is an error."""
    from gateway.inference.pool import triton_urls

    def load(name: str) -> None:
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException

        errors = []
        for address in triton_urls(url):
            try:
                with grpcclient.InferenceServerClient(address) as client:
                    client.load_model(name, client_timeout=timeout_s)
            except InferenceServerException as exc:
                errors.append(f"{address}: {exc}")
        if errors and len(errors) == len(triton_urls(url)):
            raise RuntimeError("no Triton loaded " + name + ": " + "; ".join(errors))

    return load


class LiveModelWatcher:
    """Polls the live version; on a change, reloads the detector through ``load``."""

    def __init__(self, versions: DetectorVersions, load: Loader, interval_s: float) -> None:
        self.versions = versions
        self.load = load
        self.interval_s = interval_s
        self.served = versions.live()  # what Triton loaded at its start
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> LiveModelWatcher:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="live-model", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def check(self) -> bool:
        """Reload when the live version changed; True when a reload was done."""
        live = self.versions.live()
        if live is None or live == self.served:
            return False
        try:
            self.load(DETECTOR)
        except Exception as exc:  # noqa: BLE001 - Triton keeps serving the old version
            log.error("could not load item detector version %s: %s", live, exc)
            self.served = live  # not retried in a loop; the next promotion tries again
            return False
        log.info("item detector version %s is live (was %s)", live, self.served)
        self.served = live
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.check()
