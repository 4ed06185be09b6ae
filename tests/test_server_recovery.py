"""Nothing is lost: gateway restarts mid-session and Triton dying while photos arrive."""

from __future__ import annotations

import os
import signal
import socket
import time
import uuid
from pathlib import Path

import grpc
import pytest
import requests

from gateway.proto_gen.shelfcount.v1 import counting_pb2 as pb
from gateway.proto_gen.shelfcount.v1 import counting_pb2_grpc as pb_grpc

from .server_support import WsClient, new_token, outcome, running_gateway, shelf_jpeg

pytestmark = pytest.mark.triton


def dead_url() -> str:
    """host:port where nothing listens: what the gateway sees while Triton is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def test_restart_in_the_middle_of_a_session_resumes_the_work(triton, tmp_path: Path) -> None:
    photo_ids = [str(uuid.uuid4()) for _ in range(3)]
    with running_gateway(tmp_path, dead_url()) as down:
        token = new_token(tmp_path, "walker")
        phone = WsClient(down)
        session = phone.hello(token)["session"]
        for i, photo_id in enumerate(photo_ids):
            phone.photo(photo_id, shelf_jpeg(10 + i))
            assert phone.wait_for(lambda m, p=photo_id: m["type"] == "ack" and m["id"] == p)
        for photo_id in photo_ids:
            notice = phone.wait_for(lambda m, p=photo_id: m.get("id") == p
                                    and m["type"] == "error")
            assert notice["code"] == "triton_unavailable" and notice["queued"] is True
        phone.close()
        camera = new_token(tmp_path, "camera", "manager")
        with grpc.insecure_channel(f"127.0.0.1:{down.grpc_port}") as channel:
            queued = pb_grpc.CountServiceStub(channel).Count(
                pb.Photo(id="grpc-1", image=shelf_jpeg(13)),
                metadata=(("authorization", f"Bearer {camera}"),), timeout=60)
        assert queued.queued and queued.error.code == "triton_unavailable" and not queued.rows
    # The gateway is gone with three photos uncounted; a new one on the same data resumes them.
    with running_gateway(tmp_path, triton.url) as up:
        phone = WsClient(up)
        welcome = phone.hello(token, session)
        assert welcome["session"] == session
        results = [phone.wait_for(outcome(photo_id), timeout=180) for photo_id in photo_ids]
        phone.close()
        assert [r["type"] for r in results] == ["result"] * 3
        view = requests.get(f"{up.base_url}/api/v1/sessions/{session}",
                            headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
        assert sorted(c["photo_id"] for c in view["counts"]) == sorted(photo_ids)
        assert {c["status"] for c in view["counts"]} == {"done"}
        with grpc.insecure_channel(f"127.0.0.1:{up.grpc_port}") as channel:
            again = pb_grpc.CountServiceStub(channel).Count(  # same id: its result, no 2nd count
                pb.Photo(id="grpc-1", image=shelf_jpeg(13)),
                metadata=(("authorization", f"Bearer {camera}"),), timeout=180)
        assert again.count_id == queued.count_id and again.rows and not again.error.code


def test_triton_killed_while_photos_arrive(triton, tmp_path: Path) -> None:
    if triton.server is None:
        pytest.skip("Triton is external (SHELFCOUNT_TRITON_URL): this test kills the embedded one")
    with running_gateway(tmp_path, triton.url) as server:
        token = new_token(tmp_path, "walker")
        phone = WsClient(server)
        phone.hello(token)
        warm = str(uuid.uuid4())
        phone.photo(warm, shelf_jpeg(20))
        assert phone.wait_for(outcome(warm))["type"] == "result"
        pid = triton.server.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        photo_ids = [str(uuid.uuid4()) for _ in range(3)]
        try:
            for i, photo_id in enumerate(photo_ids):
                phone.photo(photo_id, shelf_jpeg(21 + i))
                assert phone.wait_for(lambda m, p=photo_id: m["type"] == "ack" and m["id"] == p)
            queued = phone.wait_for(lambda m: m["type"] == "error" and m.get("queued"),
                                    timeout=60)
            assert queued["code"] == "triton_unavailable"
            results = [phone.wait_for(outcome(p), timeout=180) for p in photo_ids]
            assert [r["type"] for r in results] == ["result"] * 3
            assert all(r["rows"] for r in results)
        finally:
            phone.close()
            deadline = time.monotonic() + 120
            while triton.server.pid in (None, pid) and time.monotonic() < deadline:
                time.sleep(0.5)
            triton.server.wait_ready(120)
        assert triton.server.pid != pid


def test_confirmed_bay_reaches_the_drop_folder_sink(triton, tmp_path: Path) -> None:
    """The gateway runs the sinks' outbox worker: a confirmation ends up in the drop folder."""
    drop = tmp_path / "drop"
    drop.mkdir()
    env = {"SHELFCOUNT_DROP_DIR": str(drop)}
    with running_gateway(tmp_path / "data", triton.url, env=env) as server:
        assert server.outbox is not None
        token = new_token(tmp_path / "data", "walker")
        phone = WsClient(server)
        phone.hello(token)
        photo_id = str(uuid.uuid4())
        phone.photo(photo_id, shelf_jpeg(60))
        result = phone.wait_for(outcome(photo_id))
        phone.send({"type": "confirm", "id": photo_id})
        assert phone.wait_for(lambda m: m["type"] == "confirmed")["id"] == photo_id
        phone.close()
        deadline = time.monotonic() + 30
        files: list[Path] = []
        while time.monotonic() < deadline and not files:
            files = [p for p in drop.glob("shelfcount_*.csv") if "_sap_" not in p.name
                     and "_netsuite_" not in p.name]
            time.sleep(0.2)
        assert files, "the confirmed bay did not reach the drop folder"
        text = files[0].read_text()
        assert all(row["SKU"] in text for row in result["rows"])
