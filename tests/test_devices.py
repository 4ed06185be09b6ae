"""Devices (issue 13): list, revoke (open WebSocket and gRPC streams end within 5 s, later
requests 401), no silent re-pairing under a taken name, re-pairing ends the old token's
streams, and tokens expire after SHELFCOUNT_TOKEN_TTL_DAYS."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
import requests

from gateway.proto_gen.shelfcount.v1 import counting_pb2 as pb
from gateway.proto_gen.shelfcount.v1 import counting_pb2_grpc as pb_grpc

from .server_support import WsClient, new_token, running_gateway


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway.cli", "device", *args],
                          capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "SHELFCOUNT_DATA_DIR": str(data_dir)})


def test_device_add_list_revoke_from_the_command_line(tmp_path: Path) -> None:
    assert cli(tmp_path, "add", "walker-kim").returncode == 0
    taken = cli(tmp_path, "add", "walker-kim")
    assert taken.returncode == 2 and "--replace" in taken.stderr
    assert len(taken.stderr.strip().splitlines()) == 1 and "Traceback" not in taken.stderr
    assert cli(tmp_path, "add", "walker-kim", "--replace").returncode == 0
    revoked = cli(tmp_path, "revoke", "walker-kim")
    assert revoked.returncode == 0, revoked.stderr
    listed = cli(tmp_path, "list").stdout.splitlines()
    assert listed[0].split("\t") == ["name", "role", "created", "last_seen", "revoked",
                                     "token_expires"]
    (kim,) = [line.split("\t") for line in listed[1:] if line.startswith("walker-kim")]
    assert kim[1] == "walker" and kim[4] != "-"
    missing = cli(tmp_path, "revoke", "nobody")
    assert missing.returncode == 2 and "nobody" in missing.stderr


@pytest.mark.triton
def test_revoking_ends_open_streams_within_5_s_and_later_requests_are_401(
        triton, tmp_path: Path) -> None:
    with running_gateway(tmp_path, triton.url) as gw:
        walker = new_token(tmp_path, "walker-rev")
        manager = new_token(tmp_path, "manager-rev", "manager")
        phone = WsClient(gw)
        phone.hello(walker)
        stream_end: list[object] = []
        stop = threading.Event()

        def idle_photos():  # an open Stream that sends nothing until told
            stop.wait(30)
            return
            yield  # noqa: B901 - a generator

        def run_stream() -> None:
            with grpc.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as channel:
                stub = pb_grpc.CountServiceStub(channel)
                try:
                    for _ in stub.Stream(idle_photos(), timeout=30,
                                         metadata=(("authorization", f"Bearer {walker}"),)):
                        pass
                    stream_end.append("ended")
                except grpc.RpcError as exc:
                    stream_end.append(exc.code())

        thread = threading.Thread(target=run_stream, daemon=True)
        thread.start()
        time.sleep(1.0)
        listed = requests.get(f"{gw.base_url}/api/v1/devices", timeout=10,
                              headers={"Authorization": f"Bearer {manager}"}).json()["devices"]
        assert {d["name"] for d in listed} >= {"walker-rev", "manager-rev"}
        assert requests.get(f"{gw.base_url}/api/v1/devices", timeout=10, headers={
            "Authorization": f"Bearer {walker}"}).status_code == 403
        t0 = time.monotonic()
        gone = requests.delete(f"{gw.base_url}/api/v1/devices/walker-rev", timeout=10,
                               headers={"Authorization": f"Bearer {manager}"})
        assert gone.status_code == 200 and gone.json()["revoked_at"]
        assert phone.closed_within(5.0)
        thread.join(timeout=6.0)
        stop.set()
        assert time.monotonic() - t0 < 6.5
        assert stream_end == [grpc.StatusCode.UNAUTHENTICATED]
        assert requests.get(f"{gw.base_url}/api/v1/devices/me", timeout=10, headers={
            "Authorization": f"Bearer {walker}"}).status_code == 401
        phone.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.triton
def test_re_pairing_ends_the_old_tokens_open_websocket(triton, tmp_path: Path) -> None:
    """Finding 4: a re-paired device's old token was refused for new requests, but its open
    WebSocket kept being served."""
    with running_gateway(tmp_path, triton.url) as gw:
        old = new_token(tmp_path, "walker-again")
        phone = WsClient(gw)
        assert phone.hello(old)["type"] == "welcome"
        time.sleep(2.5)  # the gateway has seen the device as it is now
        new = new_token(tmp_path, "walker-again")  # device add NAME --replace
        assert phone.closed_within(5.0)
        assert any(m.get("code") == "unauthorized" and "paired again" in m.get("message", "")
                   for m in phone.inbox)
        phone.close()
        assert requests.get(f"{gw.base_url}/api/v1/devices/me", headers=bearer(old),
                            timeout=10).status_code == 401
        fresh = WsClient(gw)
        try:
            assert fresh.hello(new)["type"] == "welcome"
            time.sleep(2.5)  # a poll of the device table later it is still open
            fresh.send({"type": "ping"})
            assert fresh.wait_for(lambda m: m["type"] == "pong", timeout=5)
        finally:
            fresh.close()


@pytest.mark.triton
def test_tokens_expire_after_the_ttl(triton, tmp_path: Path) -> None:
    ttl_s = 4.0
    with running_gateway(tmp_path, triton.url, token_ttl_days=ttl_s / 86400) as gw:
        token = new_token(tmp_path, "walker-ttl")
        manager = new_token(tmp_path, "manager-ttl", "manager")
        paired = time.monotonic()
        assert requests.get(f"{gw.base_url}/api/v1/devices/me", headers=bearer(token),
                            timeout=10).status_code == 200
        listed = requests.get(f"{gw.base_url}/api/v1/devices", headers=bearer(manager),
                              timeout=10).json()["devices"]
        assert all(d["token_expires_at"] for d in listed)
        phone = WsClient(gw)
        assert phone.hello(token)["type"] == "welcome"
        assert phone.closed_within(ttl_s + 5.0)  # the open socket ends soon after expiry
        assert time.monotonic() - paired >= ttl_s - 0.5
        assert any(m.get("code") == "token_expired" for m in phone.inbox)
        phone.close()
        refused = requests.get(f"{gw.base_url}/api/v1/devices/me", headers=bearer(token),
                               timeout=10)
        assert refused.status_code == 401 and refused.json()["code"] == "token_expired"
        with grpc.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as channel:
            with pytest.raises(grpc.RpcError) as info:
                pb_grpc.CountServiceStub(channel).Count(
                    pb.Photo(id="late", image=b"x"), timeout=10,
                    metadata=(("authorization", f"Bearer {token}"),))
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        again = new_token(tmp_path, "walker-ttl")  # pairing again gives a fresh token
        assert requests.get(f"{gw.base_url}/api/v1/devices/me", headers=bearer(again),
                            timeout=10).status_code == 200
    listed = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "device", "list"], capture_output=True, text=True,
        timeout=120, env={"PATH": "/usr/bin:/bin", "SHELFCOUNT_DATA_DIR": str(tmp_path),
                          "SHELFCOUNT_TOKEN_TTL_DAYS": "30"}).stdout.splitlines()
    (row,) = [line.split("\t") for line in listed if line.startswith("walker-ttl")]
    assert row[5].startswith("20")  # an ISO time 30 days after the last pairing
