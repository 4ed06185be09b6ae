"""A loopback TCP proxy that makes a slow phone link: client -> server bytes limited to a rate,
server -> client delayed. Browsers' own network emulation does not slow WebSocket uploads, so the
PWA tests and ``make bench-pwa`` put this between Chromium and the gateway."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

CHUNK = 4096


def _pump(src: socket.socket, dst: socket.socket, rate_bps: float | None, delay_s: float) -> None:
    """Copy src -> dst; ``rate_bps``: at most that many bytes a second (None: unlimited)."""
    try:
        while True:
            data = src.recv(CHUNK)
            if not data:
                break
            if delay_s:
                time.sleep(delay_s)
            if rate_bps:
                time.sleep(len(data) / rate_bps)
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@contextmanager
def throttled(target_port: int, *, up_bps: float = 40_000, latency_s: float = 0.25
              ) -> Iterator[int]:
    """Listen on a free loopback port and forward to ``target_port``; yields the port.

    The latency is added to each chunk the server sends back (answers come late); uploads are
    held to ``up_bps``."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", target_port))
            threading.Thread(target=_pump, args=(client, upstream, up_bps, 0.0),
                             daemon=True).start()
            threading.Thread(target=_pump, args=(upstream, client, None, latency_s),
                             daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()
        thread.join(timeout=2)
