"""The transport under hostile clients (issue 13, findings 1, 3 and 8): the production server
(gunicorn's gthread worker in the gateway's process) against idle and half-open sockets over
TLS, slow request heads and bodies, a socket cap that counts every connection, and a
permessage-deflate bomb. Loopback only, each bounded in time and count."""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest
import requests
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request
from wsproto.extensions import PerMessageDeflate

from gateway.server import GatewayServer

from .server_support import WsClient, new_token, running_gateway

HEADER_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 2.0


@pytest.fixture(scope="module")
def tls_gw(triton, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    with running_gateway(tmp_path_factory.mktemp("gw-tls"), triton.url, tls=True,
                         header_timeout_s=HEADER_TIMEOUT_S, read_timeout_s=READ_TIMEOUT_S,
                         max_connections=4, max_sockets=30) as server:
        yield server


@pytest.fixture(scope="module")
def gw(triton, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    with running_gateway(tmp_path_factory.mktemp("gw-plain"), triton.url,
                         header_timeout_s=HEADER_TIMEOUT_S, read_timeout_s=READ_TIMEOUT_S,
                         max_connections=4, max_sockets=30) as server:
        yield server


def cert(server: GatewayServer) -> str:
    return str(Path(server.settings.data_dir) / "tls" / "cert.pem")


def connect(server: GatewayServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.http_port), timeout=10)


def closed_by_server(sock: socket.socket, within_s: float) -> bool:
    """True when the gateway closes ``sock`` (EOF or reset) within ``within_s``."""
    sock.settimeout(within_s)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except OSError:
        return True
    return True


def accepted_sockets(port: int) -> int:
    """Connections the gateway holds on ``port`` (this process is both ends on loopback:
    the gateway's ends are those whose local port is the listening one)."""
    return sum(1 for c in psutil.Process().net_connections(kind="tcp")
               if c.laddr and c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED)


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


@pytest.mark.triton
def test_an_idle_or_stalled_tls_client_does_not_stop_https(tls_gw: GatewayServer) -> None:
    """Finding 1: the TLS handshake ran in the accept thread, so one silent socket stopped
    every new HTTPS / WSS connection."""
    idle = connect(tls_gw)  # connects, sends nothing
    stalled = connect(tls_gw)
    stalled.sendall(b"\x16\x03\x01")  # the start of a TLS record, then silence
    try:
        t0 = time.monotonic()
        answer = requests.get(f"{tls_gw.base_url}/healthz", verify=cert(tls_gw), timeout=10)
        assert answer.status_code == 200 and time.monotonic() - t0 < 3.0
        assert answer.headers["Strict-Transport-Security"].startswith("max-age=")
        context = ssl.create_default_context(cafile=cert(tls_gw))
        phone = WsClient(tls_gw, ssl_context=context)  # WSS beside them too
        try:
            assert phone.hello(new_token(tls_gw.settings.data_dir, "walker-tls"))["type"] == (
                "welcome")
        finally:
            phone.close()
        # The stalled handshake is cut at the header timeout, not left to hold a thread.
        assert closed_by_server(stalled, HEADER_TIMEOUT_S + 3.0)
    finally:
        idle.close()
        stalled.close()


@pytest.mark.triton
def test_slow_request_heads_are_cut_and_hold_no_thread(gw: GatewayServer) -> None:
    """Finding 8: 300 half-sent requests held 300 threads forever. Here 25 against a pool
    of max_connections + 16 = 20 threads: the pool never grows past its size, a normal
    client is answered, every slow socket is closed at the header timeout."""
    before = threading.active_count()
    slow = [connect(gw) for _ in range(25)]
    for sock in slow:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: shelf\r\nX-Slow: ")  # never finished
    try:
        time.sleep(0.5)
        t0 = time.monotonic()
        answer = requests.get(f"{gw.base_url}/healthz", timeout=15)
        assert answer.status_code == 200
        assert time.monotonic() - t0 < HEADER_TIMEOUT_S + 3.0
        assert threading.active_count() - before <= 4 + 16 + 2
        assert all(closed_by_server(sock, HEADER_TIMEOUT_S + 3.0) for sock in slow)
    finally:
        for sock in slow:
            sock.close()


@pytest.mark.triton
def test_a_stalled_body_is_answered_408_and_frees_its_slot(gw: GatewayServer) -> None:
    token = new_token(gw.settings.data_dir, "walker-slow-body")
    sock = connect(gw)
    try:
        sock.sendall((f"POST /api/v1/counts HTTP/1.1\r\nHost: shelf\r\n"
                      f"Authorization: Bearer {token}\r\n"
                      "Content-Type: multipart/form-data; boundary=b\r\n"
                      "Content-Length: 100000\r\n\r\n--b\r\n").encode())
        sock.settimeout(READ_TIMEOUT_S + 5.0)
        t0 = time.monotonic()
        head = sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 408"), head[:80]
        assert b'"request_timeout"' in head or b"request_timeout" in sock.recv(4096)
        assert time.monotonic() - t0 < READ_TIMEOUT_S + 3.0
    finally:
        sock.close()
    health = requests.get(f"{gw.base_url}/api/v1/healthz", timeout=10).json()
    assert health["connections"] == 0  # the API slot it held is free again


@pytest.mark.triton
def test_the_socket_cap_counts_idle_connections(gw: GatewayServer) -> None:
    """Every socket counts against SHELFCOUNT_MAX_SOCKETS (30 here), idle ones too, and idle
    ones are dropped after the keep-alive time, so the gateway serves again by itself."""
    idle = [connect(gw) for _ in range(60)]
    try:
        time.sleep(1.5)
        assert accepted_sockets(gw.http_port) <= 30
        answer = requests.get(f"{gw.base_url}/healthz", timeout=20)
        assert answer.status_code == 200
        assert sum(closed_by_server(sock, 15.0) for sock in idle) == len(idle)
    finally:
        for sock in idle:
            sock.close()


def _deflate_bomb(inflated: int) -> bytes:
    """``inflated`` zero bytes as one raw-deflate message body (~1 KiB per MiB)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(2**20)
    parts = [packer.compress(chunk) for _ in range(inflated // len(chunk))]
    return b"".join(parts) + packer.flush(zlib.Z_SYNC_FLUSH)[:-4]


def _masked_frame(payload: bytes, *, rsv1: bool) -> bytes:
    """One final binary frame from a client (masked), RSV1 = "compressed" when set."""
    mask = os.urandom(4)
    head = bytes([0x80 | (0x40 if rsv1 else 0) | 0x2, 0x80 | 127]) + len(payload).to_bytes(8, "big")
    data = np.frombuffer(payload, np.uint8)
    keys = np.resize(np.frombuffer(mask, np.uint8), data.size)
    return head + mask + (data ^ keys).tobytes()


def _ws_offering_deflate(server: GatewayServer) -> tuple[socket.socket, AcceptConnection]:
    sock = connect(server)
    client = WSConnection(ConnectionType.CLIENT)
    sock.sendall(client.send(Request(host="shelf", target="/ws/count",
                                     extensions=[PerMessageDeflate()])))
    while True:
        client.receive_data(sock.recv(65536))
        for event in client.events():
            if isinstance(event, AcceptConnection):
                return sock, event


@pytest.mark.triton
def test_a_compressed_bomb_is_refused_with_bounded_memory(gw: GatewayServer) -> None:
    """Finding 3: permessage-deflate was inflated before the size check (1 MiB on the wire,
    1 GiB in memory; four connections added 575 MB). Compression is not negotiated now, and
    a frame that claims it anyway ends its connection."""
    bomb = _masked_frame(_deflate_bomb(1024 * 2**20), rsv1=True)  # 1 GiB inflated
    start = rss_mb()
    sockets = []
    for _ in range(4):
        sock, accepted = _ws_offering_deflate(gw)
        assert accepted.extensions == []  # the offer is declined
        sock.sendall(bomb)
        sockets.append(sock)
    try:
        assert all(closed_by_server(sock, 10.0) for sock in sockets)
        assert rss_mb() - start < 100
    finally:
        for sock in sockets:
            sock.close()
    phone = WsClient(gw)  # an ordinary client still works
    try:
        assert phone.hello(new_token(gw.settings.data_dir, "walker-zip"))["type"] == "welcome"
        phone.send({"type": "ping"})
        assert phone.wait_for(lambda m: m["type"] == "pong", timeout=10)
    finally:
        phone.close()
