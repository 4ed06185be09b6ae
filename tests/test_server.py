"""The gateway end to end: real server, real pipeline, real Triton, WebSocket + REST clients."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from gateway.schema import COLUMNS
from gateway.server import GatewayServer
from gateway.store import Store
from gateway.store.types import utcnow

from .server_support import (
    WsClient,
    new_token,
    outcome,
    running_gateway,
    shelf_jpeg,
)

pytestmark = pytest.mark.triton


@pytest.fixture(scope="module")
def gw(triton, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    with running_gateway(tmp_path_factory.mktemp("gw"), triton.url) as server:
        yield server


@pytest.fixture(scope="module")
def walker(gw: GatewayServer) -> str:
    return new_token(gw.settings.data_dir, "walker-anna")


@pytest.fixture(scope="module")
def walker2(gw: GatewayServer) -> str:
    return new_token(gw.settings.data_dir, "walker-bob")


@pytest.fixture(scope="module")
def manager(gw: GatewayServer) -> str:
    return new_token(gw.settings.data_dir, "manager-may", "manager")


@pytest.fixture
def phone(gw: GatewayServer) -> Iterator[WsClient]:
    client = WsClient(gw)
    yield client
    client.close()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def store_of(gw: GatewayServer) -> Store:
    return gw.services.store


# -- WebSocket ----------------------------------------------------------------------------------

def test_photo_is_acked_after_storage_then_counted(gw: GatewayServer, phone: WsClient,
                                                   walker: str) -> None:
    welcome = phone.hello(walker)
    assert welcome["type"] == "welcome" and welcome["session"]
    photo_id = str(uuid.uuid4())
    data = shelf_jpeg(1)
    phone.photo(photo_id, data)
    ack = phone.wait_for(lambda m: m["type"] == "ack")
    assert ack["id"] == photo_id
    # At ack time the photo is on disk and in the database.
    record = store_of(gw).count_by_client(store_of(gw).device_by_token(walker).id, photo_id)
    assert record is not None and record.session_id == welcome["session"]
    assert gw.services.photos.get(record.photo_hash) == data
    result = phone.wait_for(outcome(photo_id))
    assert result["type"] == "result", result
    assert result["rows"], "a shelf photo yields at least one row"
    assert all(set(row) == set(COLUMNS) for row in result["rows"])
    assert all(len(box) == 6 for box in result["boxes"])
    assert result["codes"] and "total" in result["timings_ms"]
    assert result["width"] == 1280 and result["height"] == 720


def test_same_photo_id_twice_is_one_count(gw: GatewayServer, walker: str) -> None:
    photo_id = str(uuid.uuid4())
    data = shelf_jpeg(2)
    first = WsClient(gw)
    session = first.hello(walker)["session"]
    first.photo(photo_id, data)
    ack1 = first.wait_for(lambda m: m["type"] == "ack")
    result1 = first.wait_for(outcome(photo_id))
    first.close()
    second = WsClient(gw)  # a phone that lost the answer resends after reconnecting
    second.hello(walker, session)
    second.photo(photo_id, data)
    ack2 = second.wait_for(lambda m: m["type"] == "ack")
    result2 = second.wait_for(outcome(photo_id))
    second.photo(photo_id, data)  # and again on the same connection: answered again
    assert second.wait_for(lambda m: m["type"] == "ack")["count_id"] == ack1["count_id"]
    assert second.wait_for(outcome(photo_id))["rows"] == result1["rows"]
    second.close()
    assert ack1["count_id"] == ack2["count_id"]
    assert result1["rows"] == result2["rows"]
    counts = [c for c in store_of(gw).session_counts(session) if c.client_id == photo_id]
    assert len(counts) == 1


def test_preview_frames_are_counted_and_not_stored(gw: GatewayServer, phone: WsClient,
                                                   walker: str) -> None:
    session = phone.hello(walker)["session"]
    phone.photo("preview-1", shelf_jpeg(3, 640, 360), preview=True)
    result = phone.wait_for(lambda m: m.get("id") == "preview-1")
    assert result["type"] == "result" and result["preview"] is True
    assert "count_id" not in result
    assert store_of(gw).session_counts(session) == []


def test_correct_and_confirm_over_websocket(gw: GatewayServer, phone: WsClient,
                                            walker: str) -> None:
    phone.hello(walker)
    photo_id = str(uuid.uuid4())
    phone.photo(photo_id, shelf_jpeg(4))
    result = phone.wait_for(outcome(photo_id))
    row = result["rows"][0]
    phone.send({"type": "correct", "id": photo_id, "sku": row["SKU"], "quantity": 7})
    corrected = phone.wait_for(lambda m: m["type"] == "corrected")
    fixed = next(r for r in corrected["rows"] if r["SKU"] == row["SKU"])
    assert fixed["Quantity_Counted"] == 7
    (correction,) = corrected["corrections"]
    assert correction["model_quantity"] == row["Quantity_Counted"]
    assert correction["by"] == "walker-anna" and correction["at"]
    phone.send({"type": "confirm", "id": photo_id})
    assert phone.wait_for(lambda m: m["type"] == "confirmed")["id"] == photo_id
    phone.send({"type": "confirm", "id": photo_id})  # harmless
    assert phone.wait_for(lambda m: m["type"] == "confirmed")["id"] == photo_id
    due = [e for e in store_of(gw).outbox_due("test-sink", utcnow(), 1000)
           if e.count_id == corrected["count_id"]]
    assert len(due) == 1 and due[0].walker == "walker-anna"
    assert any(r["Quantity_Counted"] == 7 for r in due[0].rows)
    phone.send({"type": "correct", "id": photo_id, "sku": row["SKU"], "quantity": 1})
    assert phone.wait_for(lambda m: m["type"] == "error")["code"] == "already_confirmed"


def test_bad_token_is_refused_and_closed(gw: GatewayServer, phone: WsClient) -> None:
    reply = phone.hello("not-a-token")
    assert reply == {"type": "error", "code": "unauthorized",
                     "message": "a valid device token is required"}
    assert phone.closed_within()


def test_photo_before_hello_is_refused(gw: GatewayServer, phone: WsClient) -> None:
    phone.photo("x", b"\xff\xd8")
    assert phone.recv()["code"] == "hello_required"
    assert phone.closed_within()


def test_other_walkers_session_is_refused(gw: GatewayServer, walker: str, walker2: str) -> None:
    anna = WsClient(gw)
    session = anna.hello(walker)["session"]
    anna.close()
    bob = WsClient(gw)
    reply = bob.hello(walker2, session)
    bob.close()
    assert reply["code"] == "unknown_session"


def test_malformed_messages_get_errors_and_the_connection_survives(
    gw: GatewayServer, phone: WsClient, walker: str
) -> None:
    phone.hello(walker)
    phone.send("{not json")
    assert phone.recv()["code"] == "bad_json"
    phone.send("[1, 2]")
    assert phone.recv()["code"] == "bad_json"
    phone.send({"type": "teleport"})
    assert phone.recv()["code"] == "unknown_type"
    phone.send(b"\x00\x01 stray bytes")
    assert phone.recv()["code"] == "unexpected_binary"
    phone.send({"type": "photo"})
    assert phone.recv()["code"] == "bad_request"
    phone.send({"type": "photo", "id": "has spaces"})
    phone.send(b"\xff\xd8")
    assert phone.recv()["code"] == "bad_request"
    phone.send({"type": "correct", "id": "never-sent", "sku": "X", "quantity": 1})
    assert phone.recv()["code"] == "not_found"
    phone.send({"type": "ping"})
    assert phone.recv() == {"type": "pong"}


def test_garbage_bytes_are_rejected_clearly_and_never_stored(
    gw: GatewayServer, phone: WsClient, walker: str
) -> None:
    """Issue 13: refused bytes never touch the disk (no ack, no count, no photo file)."""
    phone.hello(walker)
    phone.photo("garbage-1", b"this is not a jpeg" * 100)
    error = phone.wait_for(outcome("garbage-1"))
    assert error["type"] == "error" and error["code"] == "not_an_image"
    assert not any(m["type"] == "ack" for m in phone.inbox)
    assert gw.services.store.count_by_client(
        gw.services.store.device_by_token(walker).id, "garbage-1") is None
    phone.photo("empty-1", b"")
    assert phone.wait_for(lambda m: m.get("id") == "empty-1")["code"] == "empty"


def test_oversized_frame_closes_with_1009(triton, tmp_path: Path) -> None:
    with running_gateway(tmp_path, triton.url, max_message_bytes=100_000) as server:
        token = new_token(tmp_path, "w")
        phone = WsClient(server)
        phone.hello(token)
        phone.send({"type": "photo", "id": "big"})
        phone.send(b"\xff" * 300_000)
        assert phone.closed_within()
        assert phone.ws.close_reason == 1009
        assert store_of(server).list_sessions()[0] is not None
        assert not any(c.client_id == "big" for s in store_of(server).list_sessions()
                       for c in store_of(server).session_counts(s.id))


def test_photo_rate_and_connection_limits(triton, tmp_path: Path) -> None:
    with running_gateway(tmp_path, triton.url, photo_rate_per_min=0.001,
                         max_connections=2) as server:
        token = new_token(tmp_path, "w")
        phone = WsClient(server)
        phone.hello(token)
        import cv2
        import numpy as np

        for i in range(11):  # burst of 10, then refused
            ok, tiny = cv2.imencode(".jpg", np.full((32, 32, 3), i, np.uint8))
            phone.photo(f"r{i}", tiny.tobytes())
        replies = [phone.wait_for(lambda m, i=i: m.get("id") == f"r{i}" and m["type"] in
                                  ("ack", "error") and m.get("code") != "not_an_image")
                   for i in range(11)]
        assert [r["type"] for r in replies[:10]] == ["ack"] * 10
        assert replies[10]["code"] == "rate_limited" and replies[10]["retry_after_s"] > 0
        second = WsClient(server)
        second.hello(token)
        with pytest.raises(Exception):  # noqa: B017 - the handshake is refused with 503
            WsClient(server)
        response = requests.get(server.base_url + "/api/v1/sessions", headers=auth(token),
                                timeout=10)
        assert response.status_code == 503
        assert response.json()["code"] == "too_many_connections"
        assert requests.get(server.base_url + "/healthz", timeout=10).status_code in (200, 503)
        phone.close()
        second.close()


# -- REST -------------------------------------------------------------------------------------

def post_photo(gw: GatewayServer, token: str, data: bytes, **form: str) -> requests.Response:
    headers = auth(token)
    key = form.pop("key", None)
    if key:
        headers["Idempotency-Key"] = key
    return requests.post(gw.base_url + "/api/v1/counts", headers=headers,
                         files={"photo": ("shelf.jpg", data, "image/jpeg")}, data=form,
                         timeout=120)


def test_rest_count_is_idempotent_and_session_readable(gw: GatewayServer, walker: str,
                                                       walker2: str, manager: str) -> None:
    key = str(uuid.uuid4())
    first = post_photo(gw, walker, shelf_jpeg(5), key=key, location="B-2-1")
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["type"] == "result" and body["id"] == key and body["rows"]
    again = post_photo(gw, walker, shelf_jpeg(5), key=key)
    assert again.json()["count_id"] == body["count_id"]
    session_url = f"{gw.base_url}/api/v1/sessions/{body['session']}"
    session = requests.get(session_url, headers=auth(walker), timeout=10).json()
    assert [c["id"] for c in session["counts"]].count(body["count_id"]) == 1
    assert session["walker"] == "walker-anna"
    assert requests.get(session_url, headers=auth(walker2), timeout=10).status_code == 404
    assert requests.get(session_url, headers=auth(manager), timeout=10).status_code == 200
    count_url = f"{gw.base_url}/api/v1/counts/{body['count_id']}"
    assert requests.get(count_url, headers=auth(walker2), timeout=10).status_code == 404
    listed = requests.get(gw.base_url + "/api/v1/sessions", headers=auth(walker2), timeout=10)
    assert body["session"] not in [s["id"] for s in listed.json()["sessions"]]


def test_rest_correction_csv_and_confirm(gw: GatewayServer, walker: str, manager: str) -> None:
    body = post_photo(gw, walker, shelf_jpeg(6)).json()
    count_url = f"{gw.base_url}/api/v1/counts/{body['count_id']}"
    model_row = body["rows"][0]
    patched = requests.patch(count_url, headers=auth(manager), timeout=10,
                             json={"sku": model_row["SKU"], "quantity": 3})
    assert patched.status_code == 200, patched.text
    view = patched.json()
    assert view["model_rows"][0]["Quantity_Counted"] == model_row["Quantity_Counted"]
    fix = view["corrections"][0]
    assert (fix["quantity"], fix["model_quantity"], fix["by"]) == (
        3, model_row["Quantity_Counted"], "manager-may")
    injected = requests.patch(count_url, headers=auth(walker), timeout=10,
                              json={"sku": "=HYPERLINK(\"http://x\")", "quantity": 1})
    assert injected.status_code == 200
    bad = requests.patch(count_url, headers=auth(walker), json={"sku": "X", "quantity": "3"},
                         timeout=10)
    assert bad.status_code == 400 and bad.json()["code"] == "bad_request"
    not_json = requests.patch(count_url, headers=auth(walker), data="{", timeout=10)
    assert not_json.status_code == 400 and not_json.json()["code"] == "bad_json"

    csv_url = f"{gw.base_url}/api/v1/sessions/{body['session']}/counts.csv"
    text = requests.get(csv_url, headers=auth(walker), timeout=10).text
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == COLUMNS
    skus = [r[1] for r in rows[1:]]
    assert "'=HYPERLINK(\"http://x\")" in skus and "=HYPERLINK(\"http://x\")" not in skus
    assert any(r[1] == model_row["SKU"] and r[3] == "3" for r in rows[1:])

    confirm = requests.post(count_url + "/confirm", headers=auth(walker), timeout=10)
    assert confirm.status_code == 200 and confirm.json()["newly_confirmed"] is True
    again = requests.post(count_url + "/confirm", headers=auth(walker), timeout=10)
    assert again.json()["newly_confirmed"] is False
    late = requests.patch(count_url, headers=auth(walker), json={"sku": "X", "quantity": 1},
                          timeout=10)
    assert late.status_code == 409 and late.json()["code"] == "already_confirmed"
    second = post_photo(gw, walker, shelf_jpeg(7), session=body["session"]).json()
    closing = requests.post(f"{gw.base_url}/api/v1/sessions/{body['session']}/confirm",
                            headers=auth(walker), timeout=10).json()
    assert second["count_id"] in closing["confirmed"]
    assert body["count_id"] in closing["already_confirmed"]
    assert store_of(gw).session_rows(body["session"])


def test_rest_rejects_bad_photos_and_missing_fields(gw: GatewayServer, walker: str) -> None:
    response = post_photo(gw, walker, b"GIF89a garbage")
    assert response.status_code == 422 and response.json()["code"] == "not_an_image"
    missing = requests.post(gw.base_url + "/api/v1/counts", headers=auth(walker), timeout=10)
    assert missing.status_code == 400
    other = post_photo(gw, walker, shelf_jpeg(1), session="no-such-session")
    assert other.status_code == 404


def test_every_endpoint_needs_a_token_except_health_and_pwa(gw: GatewayServer,
                                                             manager: str) -> None:
    fake = "/api/v1/counts/x"
    for method, path in [("get", "/api/v1/sessions"), ("get", "/api/v1/sessions/x"),
                         ("get", "/api/v1/sessions/x/counts.csv"), ("post", "/api/v1/counts"),
                         ("patch", fake), ("get", fake), ("post", fake + "/confirm"),
                         ("post", "/api/v1/sessions/x/confirm"), ("get", "/api/v1/openapi.json"),
                         ("get", "/api/v1/locations")]:
        for headers in ({}, auth("wrong"), {"Authorization": "Basic abc"}):
            response = requests.request(method, gw.base_url + path, headers=headers, timeout=10)
            assert response.status_code == 401, (method, path, headers)
            assert response.json()["code"] == "unauthorized"
    health = requests.get(gw.base_url + "/healthz", timeout=10)
    assert health.status_code == 200
    assert health.json() | {"queue": None, "connections": None} == {
        "status": "ok", "gateway": "ok", "triton": "ok", "store": "ok", "queue": None,
        "connections": None, "models": {"ocr_pipeline": "ok", "face_detector": "ok",
                                        "person_detector": "ok", "item_detector": "ok"}}
    ready = requests.get(gw.base_url + "/healthz?probe=ready", timeout=10)
    assert ready.status_code == 200 and "models" not in ready.json()  # no model calls
    index = requests.get(gw.base_url + "/", timeout=10)
    assert index.status_code == 200 and "<html" in index.text.lower()
    assert requests.get(gw.base_url + "/../gateway/config.py", timeout=10).status_code == 404
    spec = requests.get(gw.base_url + "/api/v1/openapi.json", headers=auth(manager), timeout=10)
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    for path in ("/counts", "/counts/{count_id}", "/counts/{count_id}/confirm",
                 "/sessions/{session_id}", "/sessions/{session_id}/counts.csv",
                 "/sessions/{session_id}/confirm"):
        assert path in paths


def test_locations_list_the_loaded_catalog_with_home_skus(gw: GatewayServer,
                                                           walker: str) -> None:
    from gateway.catalog import load_catalog

    response = requests.get(gw.base_url + "/api/v1/locations", headers=auth(walker), timeout=10)
    assert response.status_code == 200, response.text
    listed = response.json()["locations"]
    catalog = load_catalog(gw.settings.data_dir)
    assert [e["location"] for e in listed] == catalog.locations() and len(listed) > 3
    for entry in listed:
        home = catalog.by_sku(entry["sku"])
        assert home is not None and home.location == entry["location"]
        assert entry["description"] == home.description
    spec = requests.get(gw.base_url + "/api/v1/openapi.json", headers=auth(walker),
                        timeout=10).json()
    assert "200" in spec["paths"]["/locations"]["get"]["responses"]


def test_oversized_upload_is_413(triton, tmp_path: Path) -> None:
    with running_gateway(tmp_path, triton.url, max_message_bytes=100_000) as server:
        token = new_token(tmp_path, "w")
        response = post_photo(server, token, b"\xff" * 200_000)
        assert response.status_code == 413 and response.json()["code"] == "too_large"
