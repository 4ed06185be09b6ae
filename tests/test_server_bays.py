"""One bay, one count, and location conflicts, through the real gateway (real Triton).

Issue 12, findings 1 and 2: retakes multiplied a bay's count and a bin label that disagreed
with the chosen location was confirmed silently.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from gateway.server import GatewayServer
from gateway.training.scenes import encode_jpeg, render_scene

from .server_support import WsClient, new_token, outcome, running_gateway

pytestmark = pytest.mark.triton


@pytest.fixture(scope="module")
def gw(triton, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    with running_gateway(tmp_path_factory.mktemp("gw-bays"), triton.url) as server:
        yield server


@pytest.fixture(scope="module")
def walker(gw: GatewayServer) -> str:
    return new_token(gw.settings.data_dir, "walker-bea")


@pytest.fixture
def phone(gw: GatewayServer) -> Iterator[WsClient]:
    client = WsClient(gw)
    yield client
    client.close()


def bay_photo(seed: int, location: str | None = None) -> bytes:
    return encode_jpeg(render_scene(seed, width=1920, height=1080, location=location,
                                    difficulty=0.2))


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def csv_rows(gw: GatewayServer, token: str, session: str) -> list[dict[str, str]]:
    text = requests.get(f"{gw.base_url}/api/v1/sessions/{session}/counts.csv",
                        headers=auth(token), timeout=10).text
    return list(csv.DictReader(io.StringIO(text)))


def send_photo(phone: WsClient, data: bytes, **fields: Any) -> dict[str, Any]:
    photo_id = str(uuid.uuid4())
    phone.photo(photo_id, data, **fields)
    return phone.wait_for(outcome(photo_id))


def total(rows: list[dict[str, Any]]) -> int:
    return sum(int(r["Quantity_Counted"]) for r in rows)


def test_a_retake_replaces_the_bays_photo_and_a_confirmed_bay_is_closed(
    gw: GatewayServer, phone: WsClient, walker: str
) -> None:
    session = phone.hello(walker)["session"]
    first = send_photo(phone, bay_photo(31))
    assert first["type"] == "result" and first["current"] and first["replaced"] == []
    location = first["rows"][0]["Location"]
    assert location and first["location_conflict"] is None
    retake = send_photo(phone, bay_photo(31))  # the walker shoots the same bay again
    assert retake["bay"] == first["bay"] and retake["replaced"] == [first["id"]]
    assert retake["parts"] == [retake["id"]]
    # The bay is counted once, from the retake: not the sum of both photos.
    rows = csv_rows(gw, walker, session)
    assert total(rows) == total(retake["rows"]) > 0
    assert {r["Location"] for r in rows} == {location}
    phone.send({"type": "confirm", "id": first["id"]})
    refused = phone.wait_for(lambda m: m.get("id") == first["id"] and m["type"] == "error")
    assert refused["code"] == "superseded"
    phone.send({"type": "confirm", "id": retake["id"]})
    phone.wait_for(lambda m: m["type"] == "confirmed" and m["id"] == retake["id"])
    # A third photo of the confirmed bay is kept, not counted, and cannot be confirmed.
    late = send_photo(phone, bay_photo(31))
    assert late["current"] is False and late["superseded_by"] == retake["id"]
    assert late["bay_confirmed"] is True
    phone.send({"type": "confirm", "id": late["id"]})
    refused = phone.wait_for(lambda m: m.get("id") == late["id"] and m["type"] == "error")
    assert refused["code"] == "superseded"
    assert total(csv_rows(gw, walker, session)) == total(retake["rows"])
    body = requests.get(f"{gw.base_url}/api/v1/sessions/{session}", headers=auth(walker),
                        timeout=10).json()
    (bay,) = body["bays"]
    assert bay["photos"] == [retake["id"]] and set(bay["history"]) == {first["id"], late["id"]}
    assert bay["confirmed"] is True
    outbox = gw.services.store.outbox_entries(session)
    assert len(outbox) == 1 and outbox[0].location == location


def test_parts_of_a_wide_bay_are_summed_and_shared_codes_are_pointed_out(
    gw: GatewayServer, phone: WsClient, walker: str
) -> None:
    session = phone.hello(walker)["session"]
    data = bay_photo(37)
    left = send_photo(phone, data)
    right = send_photo(phone, data, part_of=left["bay"])
    assert right["bay"] == left["bay"] and right["replaced"] == []
    assert set(right["parts"]) == {left["id"], right["id"]}
    assert total(right["bay_rows"]) == 2 * total(left["rows"])
    # Product codes (the same EAN on every carton of a SKU) do not mean overlap.
    assert right["overlap_codes"] == [] and right["codes"]
    assert total(csv_rows(gw, walker, session)) == 2 * total(left["rows"])
    phone.send({"type": "confirm", "id": right["id"]})
    phone.wait_for(lambda m: m["type"] == "confirmed" and m["id"] == right["id"])
    (entry,) = gw.services.store.outbox_entries(session)
    assert total(entry.rows) == 2 * total(left["rows"])
    assert gw.services.store.get_count(left["count_id"]).confirmed_at is not None


def test_a_bin_label_that_disagrees_with_the_chosen_location_is_asked_not_confirmed(
    gw: GatewayServer, phone: WsClient, walker: str
) -> None:
    session = phone.hello(walker)["session"]
    result = send_photo(phone, bay_photo(33, location="B-01-2"), location="C-02-2")
    conflict = result["location_conflict"]
    assert conflict and conflict["reason"] == "mismatch", result
    assert (conflict["chosen"], conflict["read"]) == ("C-02-2", "B-01-2")
    phone.send({"type": "confirm", "id": result["id"]})
    refused = phone.wait_for(lambda m: m.get("id") == result["id"] and m["type"] == "error")
    assert refused["code"] == "location_conflict"
    assert gw.services.store.outbox_entries(session) == []
    # The walker says the chosen location was right: every line moves there.
    phone.send({"type": "location", "id": result["id"], "location": "C-02-2"})
    located = phone.wait_for(lambda m: m["type"] == "located")
    assert located["location_conflict"] is None
    assert {r["Location"] for r in located["rows"]} == {"C-02-2"}
    phone.send({"type": "confirm", "id": result["id"]})
    phone.wait_for(lambda m: m["type"] == "confirmed" and m["id"] == result["id"])
    (entry,) = gw.services.store.outbox_entries(session)
    assert entry.location == "C-02-2" and {r["Location"] for r in entry.rows} == {"C-02-2"}


def test_an_unknown_location_needs_an_explicit_new_location_answer(
    gw: GatewayServer, walker: str
) -> None:
    data = bay_photo(34, location="Q-09-9")
    posted = requests.post(f"{gw.base_url}/api/v1/counts", headers=auth(walker),
                           files={"photo": ("bay.jpg", data, "image/jpeg")}, timeout=60)
    assert posted.status_code == 200, posted.text
    result = posted.json()
    assert result["location_conflict"]["reason"] == "unknown", result
    url = f"{gw.base_url}/api/v1/counts/{result['count_id']}"
    assert requests.post(f"{url}/confirm", headers=auth(walker), timeout=10).status_code == 409
    refused = requests.post(f"{url}/location", headers=auth(walker), json={"location": "Q-09-9"},
                            timeout=10)
    assert refused.status_code == 400 and refused.json()["code"] == "unknown_location"
    answered = requests.post(f"{url}/location", headers=auth(walker),
                             json={"location": "Q-09-9", "new": True}, timeout=10)
    assert answered.status_code == 200 and answered.json()["location_conflict"] is None
    assert requests.post(f"{url}/confirm", headers=auth(walker), timeout=10).status_code == 200
    spec = requests.get(f"{gw.base_url}/api/v1/openapi.json", headers=auth(walker),
                        timeout=10).json()
    assert "new" in spec["paths"]["/counts/{count_id}/location"]["post"]["requestBody"][
        "content"]["application/json"]["schema"]["properties"]


@pytest.mark.parametrize(
    ("fields", "code"),
    [({"replaces": "no-such-photo"}, "not_found"),
     ({"replaces": "a", "part_of": "b"}, "bad_request"),
     ({"part_of": ["not", "text"]}, "bad_request")],
)
def test_bad_bay_links_are_refused_with_a_code(
    phone: WsClient, walker: str, fields: dict[str, Any], code: str
) -> None:
    phone.hello(walker)
    answer = send_photo(phone, bay_photo(35), **fields)
    assert answer["type"] == "error" and answer["code"] == code, answer
