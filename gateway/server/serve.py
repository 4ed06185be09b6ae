"""Entry points the CLI calls: ``serve_main(settings)`` and ``device_add(settings, name, role)``.

``GatewayServer`` puts the pieces together (services, HTTP(S)+WebSocket server, gRPC server,
camera schedule) so ``serve`` and the tests start exactly the same thing.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.inference.model_watch import LiveModelWatcher, Loader, triton_loader
from gateway.inference.versions import DetectorVersions
from gateway.logs import setup_logging
from gateway.store import open_store

from .app import create_app
from .cameras import CameraScheduler, load_cameras
from .grpc_api import start_grpc
from .http_server import HttpLimits, HttpServer
from .services import Services
from .tls import local_addresses, server_context, tls_files

log = logging.getLogger("shelfcount.gateway")

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_UNAVAILABLE = 3

class GatewayServer:
    """The whole gateway around one Triton URL; ``start()`` returns once it listens.

    Also runs the sinks' outbox worker (gateway.sinks) when a sink is configured, so confirmed
    bays reach the Sheet / ERP / drop folder while the gateway runs.
    """

    def __init__(self, settings: Any, *, triton_url: str, pipelines: Any = None,
                 model_loader: Loader | None = None) -> None:
        """``model_loader`` reloads a Triton model by name (the embedded server's own, which
        knows its stubs will be replaced); default: Triton's load API at ``triton_url``."""
        self.settings = settings
        self.model_watcher = LiveModelWatcher(
            DetectorVersions(settings.model_repository),
            model_loader or triton_loader(triton_url, settings.triton_start_timeout_s),
            settings.model_poll_s,
        )
        self.services = Services(settings, triton_url=triton_url, pipelines=pipelines)
        self.app = create_app(settings, self.services)
        self.tls: tuple[Path, Path] | None = tls_files(settings) if settings.tls else None
        cameras = load_cameras(settings.cameras_config) if settings.cameras_config else []
        self.cameras = CameraScheduler(self.services, cameras) if cameras else None
        self._http: HttpServer | None = None
        self._grpc: Any = None
        self.outbox: Any = None  # gateway.sinks OutboxWorker when a sink is configured
        self.purchasing: Any = None  # gateway.stock PurchaseWorker when Tryton is configured
        self.report: Any = None  # gateway.stock ReportWorker when Sheets is configured
        self.moves: Any = None  # gateway.stock MovesWorker when Tryton is configured
        self.http_port = 0
        self.grpc_port = 0

    @property
    def base_url(self) -> str:
        scheme = "https" if self.tls else "http"
        host = "127.0.0.1" if self.settings.host in ("0.0.0.0", "") else self.settings.host
        return f"{scheme}://{host}:{self.http_port}"

    def start(self) -> GatewayServer:
        self.services.start()
        try:
            from gateway.sinks.commands import start_worker, system_quantity_lookup
            from gateway.stock.moves_sync import start_moves
            from gateway.stock.purchasing import start_purchasing
            from gateway.stock.sheets_report import start_report

            self.outbox = start_worker(self.settings, self.services.store)
            if self.outbox is not None:
                self.services.sink_names = [sink.name for sink in self.outbox.sinks]
            self.services.system_quantities = system_quantity_lookup(self.settings,
                                                                     self.services.store)
            self.purchasing = start_purchasing(self.settings, self.services.store)
            self.report = start_report(self.settings, self.services.store,
                                       lambda: self.services.pipelines.get().catalog)
            self.moves = start_moves(self.settings, self.services.store,
                                     lambda: self.services.pipelines.get().catalog)
            self._chain_callbacks()
            ssl_context = server_context(*self.tls) if self.tls else None
            self._http = HttpServer(
                self.app, self.settings.host, int(self.settings.port), tls=ssl_context,
                limits=HttpLimits.from_settings(self.settings),
            ).start()
            self.http_port = self._http.port
            self._grpc, self.grpc_port = start_grpc(
                self.services, self.settings.host, int(self.settings.grpc_port), self.tls
            )
            if self.cameras is not None:
                self.cameras.start()
            if self.settings.model_poll_s > 0:
                self.model_watcher.start()
        except BaseException:
            self.stop()
            raise
        return self

    def _chain_callbacks(self) -> None:
        """A confirmed bay is delivered now rather than at the outbox's next poll, an approval
        goes to the ERP now; both make the Sheets report due."""
        report = [self.report.changed] if self.report is not None else []
        if self.outbox is not None or report:
            self.services.on_confirmed = _calling(
                ([self.outbox.wake] if self.outbox is not None else []) + report)
        if self.purchasing is not None:  # None: approvals are kept, shown as not sent
            self.services.on_approved = _calling([self.purchasing.wake] + report)

    def stop(self) -> None:
        """Stop taking work, then stop the workers (unfinished work resumes on restart)."""
        self.model_watcher.stop()
        if self.cameras is not None:
            self.cameras.stop()
        if self._grpc is not None:
            self._grpc.stop(grace=2).wait(5)
            self._grpc = None
        if self._http is not None:
            self.services.close_sockets()
            self._http.stop()
            self._http = None
        for worker in (self.outbox, self.purchasing, self.report, self.moves):
            if worker is not None:
                worker.stop()
        self.outbox = self.purchasing = self.report = self.moves = None
        self.services.stop()

    def __enter__(self) -> GatewayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _calling(calls: list[Callable[[], None]]) -> Callable[[], None]:
    """One callback that makes each of ``calls``."""
    def call_all() -> None:
        for call in calls:
            call()
    return call_all


def serve_main(settings: Any) -> int:
    """``shelfcount serve``: Triton (embedded unless SHELFCOUNT_TRITON_URL), HTTP(S)+WS, gRPC.

    Runs until SIGTERM or SIGINT, then stops cleanly (work in progress is resumed next start).
    """
    setup_logging(settings.log_level)
    from gateway.inference.embedded import start_triton

    try:
        triton_url, triton = start_triton(settings)
    except (RuntimeError, OSError, TimeoutError) as exc:
        print(f"shelfcount serve: cannot start Triton: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGTERM, signal.SIGINT)}
    gateway: GatewayServer | None = None
    try:
        try:
            loader = triton.load_model if triton is not None else None
            gateway = GatewayServer(settings, triton_url=triton_url, model_loader=loader).start()
        except (OSError, ValueError) as exc:
            print(f"shelfcount serve: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        print(
            f"ShelfCount gateway: {gateway.base_url}/ (PWA), {gateway.base_url}/api/v1, "
            f"WebSocket /ws/count, gRPC port {gateway.grpc_port}, Triton {triton_url}",
            file=sys.stderr, flush=True,
        )
        if settings.host in ("0.0.0.0", ""):
            scheme = "https" if gateway.tls else "http"
            lan = sorted(a for a in local_addresses() if ":" not in a and a != "127.0.0.1")
            if lan:
                print("phones on this network: " + ", ".join(
                    f"{scheme}://{a}:{gateway.http_port}/" for a in lan), file=sys.stderr)
        stop.wait()
        print("shelfcount serve: stopping", file=sys.stderr, flush=True)
        return EXIT_OK
    finally:
        if gateway is not None:
            gateway.stop()
        if triton is not None:
            triton.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def device_add(settings: Any, name: str, role: str = "walker", *, replace: bool = True) -> str:
    """``shelfcount device add``: create (or, with ``replace``, re-pair) a device and return
    its new token. Without ``replace`` a taken name is refused: pairing a second phone under
    the same name must not silently cut off the first."""
    from gateway.store.types import StoreError

    store = open_store(settings)
    try:
        if not replace and store.device_by_name(name.strip()) is not None:
            raise StoreError("conflict", f"a device named {name.strip()!r} exists: use --replace "
                             "to give it a new token (the old one stops working)")
        _, token = store.add_device(name, role)
    finally:
        store.close()
    return token
