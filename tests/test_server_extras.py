"""Gateway pieces around the protocols: cron, camera schedule, TLS, retention, CLI entry."""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import requests
from cryptography import x509
from simple_websocket import Client
from simple_websocket.ws import Base
from sqlalchemy import update

from gateway.catalog import import_catalog
from gateway.server.cameras import CameraConfigError, CameraScheduler, Cron, load_cameras
from gateway.server.tls import tls_files
from gateway.store.tables import counts
from gateway.store.types import utcnow

from .server_support import (
    DEMO_CATALOG,
    gateway_settings,
    new_token,
    running_gateway,
    shelf_jpeg,
)

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]



def test_cron_fields_and_day_semantics() -> None:
    cron = Cron.parse("*/15 6-8,18 * * 1-5")
    assert cron.matches(datetime(2026, 11, 23, 6, 45))  # Monday
    assert not cron.matches(datetime(2026, 11, 22, 6, 45))  # Sunday
    assert not cron.matches(datetime(2026, 11, 23, 9, 0))
    assert cron.matches(datetime(2026, 11, 23, 18, 0)) and not cron.matches(
        datetime(2026, 11, 23, 18, 5))
    either = Cron.parse("0 0 1 * 0")  # the 1st of the month OR any Sunday (classic cron)
    assert either.matches(datetime(2026, 11, 22, 0, 0))
    assert either.matches(datetime(2026, 12, 1, 0, 0))
    assert not either.matches(datetime(2026, 12, 2, 0, 0))
    assert Cron.parse("0 12 * * 7").matches(datetime(2026, 11, 22, 12, 0))
    # (croniter reads a reversed range such as 5-1 as one that wraps around: not an error)
    for bad in ("* * * *", "61 * * * *", "*/0 * * * *", "a * * * *", "* * 32 * *"):
        with pytest.raises(CameraConfigError):
            Cron.parse(bad)


def test_camera_config_errors_are_clear(tmp_path: Path) -> None:
    path = tmp_path / "cameras.yaml"
    path.write_text("zones:\n  a:\n    schedule: '0 6 * * *'\n    cameras: [ftp://x]\n")
    with pytest.raises(CameraConfigError, match="zone a: camera 1 needs an http"):
        load_cameras(path)
    path.write_text("zones: [1, 2]\n")
    with pytest.raises(CameraConfigError, match="zones"):
        load_cameras(path)
    with pytest.raises(CameraConfigError, match="cannot read"):
        load_cameras(tmp_path / "missing.yaml")


@pytest.fixture
def snapshot_server() -> Iterator[str]:
    """A loopback 'IP camera' serving a shelf JPEG at /snapshot.jpg (basic auth)."""
    photo = shelf_jpeg(40)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            if self.headers.get("Authorization") != "Basic dmlld2VyOnNlY3JldA==":
                self.send_response(401)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(photo)))
            self.end_headers()
            self.wfile.write(photo)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/snapshot.jpg"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.mark.triton
def test_scheduled_camera_counts(triton, tmp_path: Path, snapshot_server: str) -> None:
    config = tmp_path / "cameras.yaml"
    config.write_text(
        "zones:\n"
        "  aisle A:\n"
        "    schedule: '30 6 * * *'\n"
        "    cameras:\n"
        f"      - url: {snapshot_server}\n"
        "        location: A-1-1\n"
        "        username: viewer\n"
        "        password: secret\n"
        f"      - url: {snapshot_server.replace('snapshot', 'nothing')}\n"
    )
    with running_gateway(tmp_path / "data", triton.url, cameras_config=str(config)) as server:
        scheduler = server.cameras
        assert isinstance(scheduler, CameraScheduler)
        assert scheduler.run_due(datetime(2026, 11, 23, 6, 31)) == []
        queued = scheduler.run_due(datetime(2026, 11, 23, 6, 30))
        assert len(queued) == 1  # the second camera answers 401 and is skipped (logged)
        # the round is claimed in the store: the same minute again, or another replica's
        # scheduler, fetches nothing
        assert scheduler.run_due(datetime(2026, 11, 23, 6, 30)) == []
        other = CameraScheduler(server.services, scheduler.zones)
        assert other.run_due(datetime(2026, 11, 23, 6, 30)) == []
        store = server.services.store
        assert len(store.list_sessions(store.device_by_name("camera:aisle A").id)) == 1
        deadline = datetime.now() + timedelta(seconds=120)
        record = store.get_count(queued[0])
        while record.status not in ("done", "failed") and datetime.now() < deadline:
            threading.Event().wait(0.2)
            record = store.get_count(queued[0])
        assert record.status == "done" and record.source == "camera"
        assert record.location == "A-1-1" and record.result["rows"]
        assert store.device_by_name("camera:aisle A").role == "camera"
        # a replica that claimed the 07:00 round died before fetching: once its lease ran
        # out, this one fetches the round (a session of its own, the 07:00 photo id)
        store.claim_camera_run("aisle A", datetime(2026, 11, 23, 7, 0).isoformat(), "gw-dead",
                               30, now=utcnow() - timedelta(seconds=40))
        (resumed,) = scheduler.resume_stalled()
        assert store.get_count(resumed).client_id.endswith(".0.20261123T0700")
        assert scheduler.resume_stalled() == []
        assert len(store.list_sessions(store.device_by_name("camera:aisle A").id)) == 2


def test_tls_self_signed_certificate_serves_https_and_wss(tmp_path: Path) -> None:
    settings = gateway_settings(tmp_path, "127.0.0.1:1", tls=True)
    cert, key = tls_files(settings)
    parsed = x509.load_pem_x509_certificate(cert.read_bytes())
    names = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert tls_files(settings) == (cert, key)  # kept across restarts
    # `shelfcount serve --tls` as an operator runs it, in its own process.
    port, grpc_port = free_port(), free_port()
    import_catalog(DEMO_CATALOG, tmp_path)
    env = {**os.environ, "SHELFCOUNT_TRITON_URL": "127.0.0.1:1"}
    serve = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--tls", "--host", "127.0.0.1",
         "--port", str(port), "--grpc-port", str(grpc_port), "--data-dir", str(tmp_path)],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base_url = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = requests.get(base_url + "/healthz", verify=str(cert), timeout=5)
                break
            except requests.ConnectionError:
                assert serve.poll() is None and time.monotonic() < deadline, "serve did not start"
                time.sleep(0.3)
        assert health.status_code == 503 and health.json()["triton"] == "unavailable"
        token = new_token(tmp_path, "w")
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        ws = Client.connect(base_url.replace("https", "wss") + "/ws/count", ssl_context=context)
        ws.send(json.dumps({"type": "hello", "token": token, "session": None}))
        assert json.loads(ws.receive(timeout=30))["type"] == "welcome"
        _close_tls_websocket(ws)
        # gRPC over TLS, from a fresh client process as a fixed camera would connect: the
        # handshake must trust the gateway's certificate and then the token is checked.
        assert _grpc_status(grpc_port, cert) == "UNAUTHENTICATED"
        assert _grpc_status(grpc_port, None) == "UNAVAILABLE"  # plaintext is refused
    finally:
        serve.send_signal(signal.SIGINT)
        out, _ = serve.communicate(timeout=60)
    assert serve.returncode == 0, out[-2000:]
    with pytest.raises(ValueError, match="both"):
        tls_files(gateway_settings(tmp_path, "x", tls=True, tls_cert=str(cert)))


def _close_tls_websocket(ws: Client) -> None:
    """Close a WSS client without its reader thread outliving the socket's descriptor.

    ``Client.close`` closes the socket while the reader thread still waits in an SSL read;
    OpenSSL keeps the descriptor's number, so the thread's next read lands on whatever file
    takes that number next (seen: the pipe of a subprocess, whose output vanished, and a gRPC
    connection, whose TLS handshake failed). So: send the close frame only, let the server's
    reply end the reader thread, which then closes the socket itself.
    """
    Base.close(ws)
    ws.thread.join(timeout=30)
    assert not ws.thread.is_alive()


_GRPC_CLIENT = """
import sys, grpc
from pathlib import Path
from gateway.proto_gen.shelfcount.v1 import counting_pb2 as pb
from gateway.proto_gen.shelfcount.v1 import counting_pb2_grpc as pb_grpc
target, cert = sys.argv[1], sys.argv[2]
if cert:
    creds = grpc.ssl_channel_credentials(root_certificates=Path(cert).read_bytes())
    channel = grpc.secure_channel(target, creds,
                                  options=[("grpc.ssl_target_name_override", "localhost")])
else:
    channel = grpc.insecure_channel(target)
stub = pb_grpc.CountServiceStub(channel)
try:
    stub.Count(pb.Photo(id="x", image=b"x"), metadata=(("authorization", "Bearer nope"),),
               timeout=20)
    status = "OK"
except grpc.RpcError as exc:
    status = exc.code().name
channel.close()
print(status, flush=True)
"""


def _grpc_status(port: int, cert: Path | None) -> str:
    """The status a gRPC ``Count`` with a bad token gets, from a client in its own process."""
    done = subprocess.run(
        [sys.executable, "-c", _GRPC_CLIENT, f"127.0.0.1:{port}", str(cert or "")],
        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip(), (done.stdout, done.stderr[-2000:])
    return done.stdout.strip().splitlines()[-1]


def test_retention_removes_old_photo_files_only(tmp_path: Path) -> None:
    from gateway.server.services import Services

    settings = gateway_settings(tmp_path, "127.0.0.1:1", photo_retention_days=7)
    services = Services(settings, triton_url="127.0.0.1:1")
    try:
        store = services.store
        device, _ = store.add_device("w", "walker")
        session = store.create_session(device)
        old_hash = services.photos.put(b"old photo")
        new_hash = services.photos.put(b"new photo")
        crops_hash = services.photos.put(b"its code crops")
        old, _ = store.add_count(session_id=session.id, device_id=device.id, client_id="old",
                                 source="ws", location=None, photo_hash=old_hash, photo_bytes=9,
                                 crops_hash=crops_hash,
                                 crops={"full": [4032, 3024], "parts": []})
        new, _ = store.add_count(session_id=session.id, device_id=device.id, client_id="new",
                                 source="ws", location=None, photo_hash=new_hash, photo_bytes=9)
        for record in (old, new):
            store.finish_count(record.id, {"rows": []})
        with store.db.tx() as conn:  # age one count past the retention period
            conn.execute(update(counts).where(counts.c.id == old.id)
                         .values(created_at=(utcnow() - timedelta(days=8)).isoformat()))
        assert services.purge_photos() == 2  # the old photo and the code crops sent with it
        assert not services.photos.exists(old_hash) and services.photos.exists(new_hash)
        assert not services.photos.exists(crops_hash)
        assert store.get_count(old.id).status == "done"  # the record stays
        assert services.purge_photos() == 0
    finally:
        services.store.close()
        services.pipelines.close()


def test_device_add_returns_a_working_token(tmp_path: Path) -> None:
    token = new_token(tmp_path, "phone-7", "manager")
    assert len(token) >= 32
    from gateway.store import Store

    store = Store(tmp_path / "shelfcount.db")
    assert store.device_by_token(token).role == "manager"
    store.close()


def test_preview_runner_keeps_only_the_newest_frame_and_drops_stale_ones(tmp_path: Path) -> None:
    """Queueing policy of live previews, with a slow stand-in pipeline to control timing."""
    from types import SimpleNamespace

    from gateway.server.previews import PREVIEW_MAX_WAIT_S, PreviewRunner

    gate = threading.Event()
    seen: list[bytes] = []

    class SlowPipeline:
        def count(self, data: bytes, **_: object) -> SimpleNamespace:
            seen.append(data)
            gate.wait(10)
            return SimpleNamespace(to_json=lambda: {"rows": []})

    services = SimpleNamespace(
        pipelines=SimpleNamespace(get=SlowPipeline),
        worker=SimpleNamespace(triton_down=threading.Event()),
    )
    runner = PreviewRunner(services, workers=1)  # type: ignore[arg-type]
    runner.start()
    replies: dict[str, dict] = {}
    done = threading.Semaphore(0)

    def reply(message: dict) -> None:
        replies[message["id"]] = message
        done.release()

    try:
        runner.submit("phone", "f1", b"1", None, reply)  # taken by the worker at once
        deadline = datetime.now() + timedelta(seconds=10)
        while not seen and datetime.now() < deadline:
            threading.Event().wait(0.01)
        runner.submit("phone", "f2", b"2", None, reply)  # waits...
        runner.submit("phone", "f3", b"3", None, reply)  # ...and is replaced by this one
        assert done.acquire(timeout=10) and replies["f2"]["code"] == "preview_dropped"
        gate.set()
        for _ in range(2):
            assert done.acquire(timeout=10)
        assert replies["f1"]["type"] == replies["f3"]["type"] == "result"
        assert seen == [b"1", b"3"]
        gate.clear()
        runner.submit("phone", "f4", b"4", None, reply)
        while len(seen) < 3 and datetime.now() < deadline + timedelta(seconds=10):
            threading.Event().wait(0.01)
        runner.submit("other", "g1", b"5", None, reply)
        threading.Event().wait(PREVIEW_MAX_WAIT_S + 0.3)  # g1 goes stale behind f4
        gate.set()
        for _ in range(2):
            assert done.acquire(timeout=10)
        assert replies["g1"]["code"] == "preview_dropped" and b"5" not in seen
    finally:
        gate.set()
        runner.stop()
