"""The HTTP(S) + WebSocket server: gunicorn's threaded (gthread) worker, run in this process.

Why gunicorn's gthread worker (issue 13) rather than Werkzeug's development server:
- the TLS handshake runs in the thread pool, not in the accept loop, so one silent client no
  longer stops every new HTTPS / WSS connection;
- a connection that has sent nothing waits in a poller without holding a thread, and the
  worker stops accepting beyond ``max_sockets`` open sockets (idle keep-alive ones included);
- the thread pool is bounded (``max_connections`` + a few for the PWA's files);
- keep-alive connections close after ``KEEPALIVE_S`` of silence.

Why in-process, without gunicorn's arbiter: the count workers, the gRPC server, the sinks'
outbox and the camera schedule share one process with the HTTP server (one SQLite writer, one
Triton client pool), and ``serve`` and the tests start exactly the same object. A crash ends
the process; the container's restart policy (or systemd) restarts it and unfinished work
resumes from the store.

Added on top, because gunicorn 27 bounds the wait for a request's first byte but not a request
that trickles in: a watchdog ends a connection whose TLS handshake, request line and headers
are not complete within ``header_timeout_s``, and once the application runs, each read of the
body times out after ``read_timeout_s`` (a WebSocket keeps no read timeout: its own idle
timeout applies).
"""

from __future__ import annotations

import logging
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from gunicorn import glogging
from gunicorn.config import Config
from gunicorn.workers import gthread
from gunicorn.workers.gthread import ThreadWorker

log = logging.getLogger("shelfcount.gateway.http")

KEEPALIVE_S = 5  # an idle keep-alive connection is closed after this
EXTRA_THREADS = 16  # threads beyond max_connections: the PWA's files, health checks
FIRST_BYTE_WAIT_S = 0.2  # a new connection's thread waits this long for data, then the poller
STOP_GRACE_S = 3  # requests in flight get this long to finish on stop
WATCH_POLL_S = 0.25


@dataclass(frozen=True)
class HttpLimits:
    """The transport limits; their defaults live in gateway.config (README "Settings")."""

    max_connections: int
    max_sockets: int
    header_timeout_s: float
    read_timeout_s: float

    @classmethod
    def from_settings(cls, settings: Any) -> HttpLimits:
        return cls(
            max_connections=int(settings.max_connections),
            max_sockets=int(settings.max_sockets),
            header_timeout_s=float(settings.header_timeout_s),
            read_timeout_s=float(settings.read_timeout_s),
        )


class _QuietLogger(glogging.Logger):
    """gunicorn's logger on the gateway's own logging (no handlers of its own, no access log):
    the gateway's logs stay structured and quiet by default."""

    def setup(self, cfg: Config) -> None:
        self.cfg = cfg
        self.error_log = logging.getLogger("shelfcount.gateway.http.server")
        self.access_log = logging.getLogger("shelfcount.gateway.http.access")
        self._access_log_enabled = False

    def access(self, *_args: Any, **_kwargs: Any) -> None:
        return None

    def reopen_files(self) -> None:
        return None

    def close_on_exec(self) -> None:
        return None


class _Deadlines:
    """Connections whose request head must be complete by a deadline; a watchdog thread shuts
    the socket of each one that is late, which wakes its blocked reader (its thread is freed).

    A connection is armed when it is queued for a thread (accepted, or readable again after
    keep-alive), so one waiting behind slow clients is judged from then, not from when a
    thread picks it up; it is released when its thread is done with it.
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._fds: dict[int, int] = {}  # id(connection) -> its socket's fd when armed
        self._due: dict[int, tuple[float, Any]] = {}  # fd -> (deadline, connection)
        self._active: dict[int, Any] = {}  # fd -> every connection queued or being served
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="http-deadlines", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def arm(self, conn: Any) -> None:
        fd = conn.sock.fileno()
        with self._lock:
            self._fds[id(conn)] = fd
            self._due[fd] = (time.monotonic() + self.timeout_s, conn)
            self._active[fd] = conn

    def head_done(self, sock: Any) -> None:
        """The request line and headers arrived: the application has the request."""
        with self._lock:
            self._due.pop(sock.fileno(), None)

    def release(self, conn: Any) -> None:
        with self._lock:
            fd = self._fds.pop(id(conn), None)
            if fd is not None:
                self._due.pop(fd, None)
                self._active.pop(fd, None)

    def shut_all(self) -> None:
        """Stop: wake every thread still reading or writing (WebSockets included)."""
        with self._lock:
            conns = list(self._active.values())
        for conn in conns:
            _shutdown(conn.sock)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)

    def _watch(self) -> None:
        while not self._stop.wait(WATCH_POLL_S):
            now = time.monotonic()
            with self._lock:
                late = [fd for fd, (due, _) in self._due.items() if due <= now]
                conns = [self._due.pop(fd)[1] for fd in late]
            for conn in conns:
                log.info("closing a connection whose request head took over %.0f s",
                         self.timeout_s)
                _shutdown(conn.sock)


def _shutdown(sock: Any) -> None:
    """Shut a (TLS) socket down from another thread; the plain socket's method, so the TLS
    object is left to the thread that owns it."""
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


class _Worker(ThreadWorker):
    """gunicorn's gthread worker driven by a thread of this process instead of a forked child:
    no signal handlers, no change of user, no parent watch (the caller owns all three)."""

    def __init__(self, *args: Any, deadlines: _Deadlines, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadlines = deadlines

    def serve(self, wsgi: Callable[..., Iterable[bytes]]) -> None:
        """What ``init_process`` does for gthread, less the process-wide parts."""
        self.tpool = self.get_thread_pool()
        self.poller = selectors.DefaultSelector()
        self.method_queue.init()
        self.wsgi = wsgi
        self.booted = True
        self.run()

    def is_parent_alive(self) -> bool:
        return True

    def enqueue_req(self, conn: Any) -> None:
        self.deadlines.arm(conn)
        super().enqueue_req(conn)

    def finish_request(self, conn: Any, fs: Any) -> None:
        self.deadlines.release(conn)
        super().finish_request(conn, fs)

    def handle(self, conn: Any) -> Any:
        """gunicorn lets a new connection hold a thread for 5 s waiting for its first byte;
        here it waits FIRST_BYTE_WAIT_S, then in the poller (no thread) until keep-alive."""
        if not conn.initialized and not conn.data_ready:
            if not conn.wait_for_data(FIRST_BYTE_WAIT_S):
                return gthread._DEFER  # noqa: SLF001 - gunicorn's "wait in the poller" answer
            conn.data_ready = True
        return super().handle(conn)


class HttpServer:
    """One listening socket served by the in-process gthread worker; ``start`` returns once
    it listens (``port`` is the bound port, useful with port 0)."""

    def __init__(self, app: Callable[..., Iterable[bytes]], host: str, port: int, *,
                 limits: HttpLimits, tls: ssl.SSLContext | None = None) -> None:
        self.limits = limits
        self.app = app
        self.tls = tls
        self.deadlines = _Deadlines(self.limits.header_timeout_s)
        self.cfg = self._config(host, port)
        self._listener: socket.socket | None = None
        self._worker: _Worker | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def _config(self, host: str, port: int) -> Config:
        cfg = Config()
        threads = self.limits.max_connections + EXTRA_THREADS
        values: dict[str, Any] = {
            "bind": [f"{host}:{port}"],
            "worker_class": "gthread",
            "threads": threads,
            "worker_connections": max(self.limits.max_sockets, threads + 1),
            "keepalive": KEEPALIVE_S,
            "graceful_timeout": STOP_GRACE_S,
            "logger_class": _QuietLogger,
            "forwarded_allow_ips": "",  # phones reach the gateway directly: trust no proxy
        }
        if self.tls is not None:
            context = self.tls
            # gunicorn looks for certfile/keyfile to know TLS is on; the context itself (one,
            # loaded once) comes from the hook, not from these names.
            values.update(certfile="tls", keyfile="tls",
                          ssl_context=lambda _cfg, _default: context)
        for name, value in values.items():
            cfg.set(name, value)
        return cfg

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        sock = environ.get("gunicorn.socket")
        if sock is not None:
            self.deadlines.head_done(sock)
            if environ.get("HTTP_UPGRADE", "").lower() != "websocket":
                sock.settimeout(self.limits.read_timeout_s)
        return self.app(environ, start_response)

    def start(self) -> HttpServer:
        host, port = self.cfg.address[0]
        family = socket.AF_INET6 if ":" in str(host) else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((host, port))
            listener.listen(self.cfg.backlog)
        except OSError:
            listener.close()
            raise
        self._listener = listener
        self.port = listener.getsockname()[1]
        worker = _Worker(0, 0, [listener], None, 30, self.cfg,
                         _QuietLogger(self.cfg), deadlines=self.deadlines)
        self._worker = worker
        self.deadlines.start()
        self._thread = threading.Thread(target=worker.serve, args=(self._wsgi,),
                                        name="http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, give requests in flight ``STOP_GRACE_S``, then end the rest."""
        if self._worker is not None:
            self._worker.handle_exit(0, None)
        if self._thread is not None:
            self._thread.join(timeout=STOP_GRACE_S + 1.0)
            self.deadlines.shut_all()
            self._thread.join(timeout=5.0)
            self._thread = None
        self.deadlines.stop()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._worker is not None and self._worker.tmp is not None:
            self._worker.tmp.close()
        self._worker = None
