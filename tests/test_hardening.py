"""Hostile input through the real gateway (issue 13, the parts done): nested JSON, long
fields, bytes that are no image never stored, security headers, malformed gRPC requests."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import requests

from gateway.server import GatewayServer
from gateway.sinks.csv_safety import safe_cell

from .server_support import WsClient, new_token, outcome, running_gateway, shelf_jpeg

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture(scope="module")
def gw(triton, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    with running_gateway(tmp_path_factory.mktemp("gw-hard"), triton.url) as server:
        yield server


@pytest.fixture(scope="module")
def token(gw: GatewayServer) -> str:
    return new_token(gw.settings.data_dir, "walker-hal")


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def photo_files(gw: GatewayServer) -> set[Path]:
    return {p for p in (Path(gw.settings.data_dir) / "photos").rglob("*") if p.is_file()}


@pytest.mark.triton
def test_deeply_nested_json_is_bad_json_not_a_crash(gw: GatewayServer, token: str) -> None:
    posted = requests.post(f"{gw.base_url}/api/v1/counts", headers=auth(token),
                           files={"photo": ("b.jpg", shelf_jpeg(12), "image/jpeg")}, timeout=60)
    count_id = posted.json()["count_id"]
    answer = requests.patch(f"{gw.base_url}/api/v1/counts/{count_id}", headers={
        **auth(token), "Content-Type": "application/json"}, data=DEEP, timeout=30)
    assert answer.status_code == 400 and answer.json()["code"] == "bad_json"
    phone = WsClient(gw)
    try:
        phone.hello(token)
        phone.send(DEEP)
        assert phone.wait_for(lambda m: m["type"] == "error")["code"] == "bad_json"
        phone.send({"type": "ping"})
        assert phone.wait_for(lambda m: m["type"] == "pong")  # the connection lives on
    finally:
        phone.close()


@pytest.mark.triton
def test_text_fields_have_maximum_lengths(gw: GatewayServer, token: str) -> None:
    phone = WsClient(gw)
    try:
        phone.send({"type": "hello", "token": token, "session": None, "device": "x" * 100_000})
        refused = phone.recv()
        assert refused["type"] == "error" and refused["code"] == "bad_request"
        assert phone.closed_within(10)
    finally:
        phone.close()
    phone = WsClient(gw)
    try:
        phone.hello(token)
        photo_id = str(uuid.uuid4())
        phone.photo(photo_id, shelf_jpeg(11))
        row = phone.wait_for(outcome(photo_id))["rows"][0]
        phone.send({"type": "correct", "id": photo_id, "sku": row["SKU"], "quantity": 1,
                    "location": "L" * 10_000})
        assert phone.wait_for(lambda m: m["type"] == "error")["code"] == "bad_request"
    finally:
        phone.close()


@pytest.mark.triton
def test_bytes_that_are_no_image_never_touch_the_disk(gw: GatewayServer, token: str) -> None:
    before = photo_files(gw)
    noise = os.urandom(2_000_000)
    for data in (noise, b"\xff\xd8\xff\xe0" + noise[:100_000]):  # random; a truncated "JPEG"
        answer = requests.post(f"{gw.base_url}/api/v1/counts", headers=auth(token),
                               files={"photo": ("x.jpg", data, "image/jpeg")}, timeout=30)
        assert answer.status_code == 422, answer.text
        assert answer.json()["code"] in ("not_an_image", "truncated")
    assert photo_files(gw) == before


@pytest.mark.triton
def test_security_headers_and_no_server_version(gw: GatewayServer) -> None:
    for path in ("/", "/api/v1/healthz"):
        headers = requests.get(gw.base_url + path, timeout=10).headers
        csp = headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY" and headers["Referrer-Policy"]
        assert "Werkzeug" not in headers.get("Server", "") and "Python" not in headers.get(
            "Server", "")


@pytest.mark.triton
def test_an_undecodable_grpc_request_is_invalid_argument(gw: GatewayServer, token: str) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as channel:
        call = channel.unary_unary("/shelfcount.v1.CountService/Count")
        with pytest.raises(grpc.RpcError) as info:
            call(b"\xff\xff\xff\xff not a protobuf", timeout=30,
                 metadata=(("authorization", f"Bearer {token}"),))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with grpc.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as channel:
        stream = channel.stream_stream("/shelfcount.v1.CountService/Stream")
        with pytest.raises(grpc.RpcError) as info:
            list(stream(iter([b"\xff\xff\xff\xff not a protobuf"]), timeout=30,
                        metadata=(("authorization", f"Bearer {token}"),)))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_csv_cells_with_control_characters_or_fullwidth_signs_are_escaped() -> None:
    for text in ("\n=1+1", "\x0b@SUM(A1)", "\uff1dHYPERLINK(1)", "\uff0b1", "\uff20x",
                 "\uff0d1"):
        assert safe_cell(text) == "'" + text
    assert safe_cell("-3") == "-3" and safe_cell("Box 40x30") == "Box 40x30"


@pytest.mark.triton
def test_oversize_messages_free_their_slot_and_silent_sockets_time_out(
        triton, tmp_path: Path) -> None:
    """Issue 13, finding 2: four oversize messages (closed 1009) held four slots for 30 min;
    the idle timeout is a setting now."""
    with running_gateway(tmp_path, triton.url, max_message_bytes=100_000, max_connections=4,
                         ws_idle_timeout_s=3.0) as server:
        token = new_token(tmp_path, "walker-big")
        for i in range(4):
            big = WsClient(server)
            big.hello(token)
            big.send({"type": "photo", "id": f"big-{i}"})
            big.send(b"\xff" * 300_000)
            assert big.closed_within(5)
            big.close()
        time.sleep(1.5)  # the readers notice within RECEIVE_POLL_S
        phone = WsClient(server)  # a slot is free: the handshake is not refused
        assert phone.hello(token)["type"] == "welcome"
        for _ in range(3):  # pings inside the timeout keep it open
            time.sleep(1.5)
            phone.send({"type": "ping"})
            assert phone.wait_for(lambda m: m["type"] == "pong", timeout=5)
        t0 = time.monotonic()
        assert phone.closed_within(8)  # then silence: closed after ~3 s
        assert 2.0 < time.monotonic() - t0 < 7.0
        phone.close()
