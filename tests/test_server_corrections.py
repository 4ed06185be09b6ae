"""Corrections through the real gateway (real Triton): Condition ("Mark Damaged") and re-sends."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from gateway.schema import COLUMNS, CONDITIONS
from gateway.server import GatewayServer
from gateway.store.types import utcnow

from .server_support import WsClient, new_token, outcome, running_gateway, shelf_jpeg

pytestmark = pytest.mark.triton


@pytest.fixture(scope="module")
def gw(triton, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    with running_gateway(tmp_path_factory.mktemp("gw-corrections"), triton.url) as server:
        yield server


@pytest.fixture(scope="module")
def walker(gw: GatewayServer) -> str:
    return new_token(gw.settings.data_dir, "walker-cleo")


@pytest.fixture
def phone(gw: GatewayServer) -> Iterator[WsClient]:
    client = WsClient(gw)
    yield client
    client.close()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def csv_rows(gw: GatewayServer, token: str, session: str) -> list[dict[str, str]]:
    text = requests.get(f"{gw.base_url}/api/v1/sessions/{session}/counts.csv",
                        headers=auth(token), timeout=10).text
    reader = csv.DictReader(io.StringIO(text))
    assert tuple(reader.fieldnames or ()) == COLUMNS
    return list(reader)


def session_count(gw: GatewayServer, token: str, session: str, count_id: str) -> dict[str, Any]:
    body = requests.get(f"{gw.base_url}/api/v1/sessions/{session}", headers=auth(token),
                        timeout=10).json()
    return next(c for c in body["counts"] if c["id"] == count_id)


def test_mark_damaged_over_websocket_reaches_session_csv_and_outbox(
    gw: GatewayServer, phone: WsClient, walker: str
) -> None:
    session = phone.hello(walker)["session"]
    photo_id = str(uuid.uuid4())
    phone.photo(photo_id, shelf_jpeg(11))
    result = phone.wait_for(outcome(photo_id))
    assert result["type"] == "result", result
    row = result["rows"][0]
    assert row["Condition"] != "Damaged"
    # The PWA's "Mark Damaged": same quantity, condition Damaged, its queued correction's id.
    correct = {"type": "correct", "id": photo_id, "sku": row["SKU"],
               "quantity": row["Quantity_Counted"], "condition": "Damaged",
               "correction_id": "fix-1"}
    phone.send(correct)
    corrected = phone.wait_for(lambda m: m["type"] == "corrected")
    assert corrected["correction_id"] == "fix-1"
    fixed = next(r for r in corrected["rows"] if r["SKU"] == row["SKU"])
    assert fixed["Condition"] == "Damaged" and fixed["Quantity_Counted"] == row[
        "Quantity_Counted"]
    (record,) = corrected["corrections"]
    assert (record["condition"], record["correction_id"], record["by"]) == (
        "Damaged", "fix-1", "walker-cleo")
    assert record["model_quantity"] == row["Quantity_Counted"] and record["at"]

    # Re-sent after a dropped reply, and the same correction again without an id: one record.
    phone.send(correct)
    phone.send({k: v for k, v in correct.items() if k != "correction_id"})
    for _ in range(2):
        again = phone.wait_for(lambda m: m["type"] == "corrected")
        assert len(again["corrections"]) == 1
    # Only the schema's conditions; the connection survives the refusal.
    for bad in ("Broken", "damaged", 3):
        phone.send({**correct, "condition": bad, "correction_id": "fix-bad"})
        error = phone.wait_for(lambda m: m["type"] == "error")
        assert error["code"] == "bad_request" and error["id"] == photo_id
        assert all(c in error["message"] for c in CONDITIONS)
    phone.send({"type": "ping"})
    assert phone.wait_for(lambda m: m["type"] == "pong") == {"type": "pong"}

    count = session_count(gw, walker, session, corrected["count_id"])
    assert next(r for r in count["rows"] if r["SKU"] == row["SKU"])["Condition"] == "Damaged"
    assert next(r for r in count["model_rows"] if r["SKU"] == row["SKU"])["Condition"] == row[
        "Condition"]
    assert [c["condition"] for c in count["corrections"]] == ["Damaged"]
    line = next(r for r in csv_rows(gw, walker, session) if r["SKU"] == row["SKU"])
    assert line["Condition"] == "Damaged"

    phone.send({"type": "confirm", "id": photo_id})
    phone.wait_for(lambda m: m["type"] == "confirmed")
    (entry,) = [e for e in gw.services.store.outbox_due("test-sink", utcnow(), 1000)
                if e.count_id == corrected["count_id"]]
    assert next(r for r in entry.rows if r["SKU"] == row["SKU"])["Condition"] == "Damaged"
    # The PWA re-sends a correction whose reply it lost even after confirming: not an error.
    phone.send(correct)
    late = phone.wait_for(lambda m: m["type"] in ("corrected", "error"))
    assert late["type"] == "corrected" and len(late["corrections"]) == 1


def test_rest_patch_takes_condition_and_is_idempotent(gw: GatewayServer, walker: str) -> None:
    posted = requests.post(gw.base_url + "/api/v1/counts", headers=auth(walker), timeout=120,
                           files={"photo": ("shelf.jpg", shelf_jpeg(12), "image/jpeg")})
    assert posted.status_code == 200, posted.text
    body = posted.json()
    sku = body["rows"][0]["SKU"]
    url = f"{gw.base_url}/api/v1/counts/{body['count_id']}"

    def patch(payload: dict[str, Any], key: str | None = None) -> requests.Response:
        headers = auth(walker) | ({"Idempotency-Key": key} if key else {})
        return requests.patch(url, headers=headers, json=payload, timeout=10)

    for _ in range(2):  # a retried PATCH with the same key
        first = patch({"sku": sku, "quantity": 2, "condition": "Damaged"}, key="k-1")
        assert first.status_code == 200, first.text
    assert [(c["quantity"], c["condition"], c["correction_id"])
            for c in first.json()["corrections"]] == [(2, "Damaged", "k-1")]
    for _ in range(2):  # the id as a body field
        second = patch({"sku": sku, "quantity": 3, "correction_id": "k-2"})
    assert patch({"sku": sku, "quantity": 3}).status_code == 200  # identical, no id: a repeat
    view = requests.get(url, headers=auth(walker), timeout=10).json()
    assert [c["correction_id"] for c in view["corrections"]] == ["k-1", "k-2"]
    assert second.json()["corrections"] == view["corrections"]
    line = next(r for r in view["rows"] if r["SKU"] == sku)
    assert (line["Quantity_Counted"], line["Condition"]) == (3, "Damaged")  # kept Damaged

    for payload in ({"sku": sku, "quantity": 3, "condition": "Mouldy"},
                    {"sku": sku, "quantity": 3, "condition": ["Damaged"]},
                    {"sku": sku, "quantity": 3, "correction_id": "has spaces"}):
        refused = patch(payload)
        assert refused.status_code == 400, payload
        assert refused.json()["code"] == "bad_request"
    assert "Out of Stock" in patch({"sku": sku, "quantity": 1, "condition": "x"}).json()["message"]
    assert len(requests.get(url, headers=auth(walker), timeout=10).json()["corrections"]) == 2

    expired = patch({"sku": sku, "quantity": 3, "condition": "Expired"}, key="k-3")
    assert next(r for r in expired.json()["rows"] if r["SKU"] == sku)["Condition"] == "Expired"
    line = next(r for r in csv_rows(gw, walker, body["session"]) if r["SKU"] == sku)
    assert (line["Quantity_Counted"], line["Condition"]) == ("3", "Expired")

    spec = requests.get(gw.base_url + "/api/v1/openapi.json", headers=auth(walker),
                        timeout=10).json()
    schema = spec["components"]["schemas"]["Correction"]["properties"]
    assert schema["condition"]["enum"] == list(CONDITIONS) and "correction_id" in schema
    params = spec["paths"]["/counts/{count_id}"]["patch"]["parameters"]
    assert any(p["name"] == "Idempotency-Key" for p in params)
