"""A loopback TCP proxy that makes a slow phone link: client -> server bytes limited to a rate,
server -> client delayed. Browsers' own network emulation does not slow WebSocket uploads, so the
PWA tests and ``make bench-pwa`` put this between Chromium and the gateway."""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

CHUNK = 4096


def _close(*socks: socket.socket) -> None:
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _pump(src: socket.socket, dst: socket.socket, rate_bps: float) -> None:
    """Copy src -> dst at most ``rate_bps`` bytes a second."""
    try:
        while True:
            data = src.recv(CHUNK)
            if not data:
                break
            time.sleep(len(data) / rate_bps)
            dst.sendall(data)
    except OSError:
        pass
    finally:
        _close(src, dst)


def _pump_late(src: socket.socket, dst: socket.socket, delay_s: float) -> None:
    """Copy src -> dst, each chunk ``delay_s`` after it arrived: latency, not a lower rate
    (a download of a megabyte takes the latency plus its transfer, not a delay per chunk)."""
    chunks: queue.Queue[tuple[float, bytes]] = queue.Queue()

    def send() -> None:
        try:
            while True:
                due, data = chunks.get()
                if not data:
                    break
                time.sleep(max(0.0, due - time.monotonic()))
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _close(src, dst)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        while data := src.recv(CHUNK):
            chunks.put((time.monotonic() + delay_s, data))
    except OSError:
        pass
    chunks.put((0.0, b""))


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
            threading.Thread(target=_pump, args=(client, upstream, up_bps),
                             daemon=True).start()
            threading.Thread(target=_pump_late, args=(upstream, client, latency_s),
                             daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()
        thread.join(timeout=2)
