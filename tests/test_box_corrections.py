"""Box corrections (issue 15's contract, issue 14's BoxCorrection model): a person's complete
set of item boxes for a photo replaces the model's on the real gateway, the line quantities
follow the boxes, the model's boxes and figures stay beside, re-sends count once, and bad
boxes are refused with nothing stored."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from gateway.server import GatewayServer

from .server_support import WsClient, new_token, outcome, running_gateway, shelf_jpeg

pytestmark = pytest.mark.triton


@pytest.fixture(scope="module")
def gw(triton, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    with running_gateway(tmp_path_factory.mktemp("gw-boxes"), triton.url) as server:
        yield server


@pytest.fixture(scope="module")
def walker(gw: GatewayServer) -> str:
    return new_token(gw.settings.data_dir, "walker-boxes")


def auth(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


def counted(gw: GatewayServer, token: str, seed: int) -> dict[str, Any]:
    posted = requests.post(f"{gw.base_url}/api/v1/counts", headers=auth(token),
                           files={"photo": ("shelf.jpg", shelf_jpeg(seed), "image/jpeg")},
                           timeout=120)
    assert posted.status_code == 200, posted.text
    return posted.json()


def put_boxes(gw: GatewayServer, token: str, count_id: str, body: Any,
              **headers: str) -> requests.Response:
    return requests.put(f"{gw.base_url}/api/v1/counts/{count_id}/boxes", json=body,
                        headers=auth(token, **headers), timeout=30)


def quantities(rows: list[dict[str, Any]]) -> Counter[str]:
    out: Counter[str] = Counter()
    for row in rows:
        out[row["SKU"]] += int(row["Quantity_Counted"])
    return +out  # lines at 0 drop out


def test_corrected_boxes_set_the_line_quantities(gw: GatewayServer, walker: str) -> None:
    result = counted(gw, walker, 11)
    assert result["model_version"] == "1"  # the item detector version Triton answered with
    model = result["boxes"]
    named = [b for b in model if b[5]]
    assert len(named) >= 3, model
    sku = named[0][5]
    # One box removed, two added (the second a copy moved right), one unnamed item.
    x0, y0, x1, y1 = named[0][:4]
    w = x1 - x0
    corrected = [[*b[:4], b[5]] for b in model[1:]]
    corrected += [[x0, y0, x1, y1, sku], [x0 + w / 4, y0, x1 + w / 4, y1, sku],
                  [1.0, 1.0, 40.0, 40.0, ""]]
    answer = put_boxes(gw, walker, result["count_id"], {"boxes": corrected},
                       **{"Idempotency-Key": "boxes-1"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert quantities(body["rows"]) == Counter(b[4] for b in corrected)
    assert body["model_boxes"] == model and len(body["boxes"]) == len(corrected)
    assert [b[:4] + [b[5]] for b in body["boxes"]] == corrected
    assert body["boxes_corrected"]["by"] == "walker-boxes"
    assert quantities(body["model_rows"]) == quantities(result["rows"])  # the model's kept
    # A re-send with the same key records nothing new; the count reads the same.
    again = put_boxes(gw, walker, result["count_id"], {"boxes": corrected},
                      **{"Idempotency-Key": "boxes-1"})
    assert again.status_code == 200 and again.json()["corrections"] == body["corrections"]
    stored = gw.services.store.get_count(result["count_id"])
    assert stored.box_edit is not None and stored.box_edit.client_id == "boxes-1"


@pytest.mark.parametrize(("boxes", "status"), [
    ([[10, 10, 99999, 20, ""]], 400),  # outside the photo
    ([[-1, 10, 20, 20, ""]], 400),
    ([[20, 10, 10, 20, ""]], 400),  # x1 < x0
    ([[10, 10, 20, "20", ""]], 400),
    ([[10, 10, 20, 20]], 400),
    ([[10, 10, 20, 20, "NO-SUCH-SKU"]], 400),
    ([[1, 1, 2, 2, ""]] * 10_000, 400),
    ("not a list", 400),
])
def test_bad_boxes_are_refused_and_nothing_is_stored(gw: GatewayServer, walker: str,
                                                     boxes: Any, status: int) -> None:
    result = counted(gw, walker, 12)
    answer = put_boxes(gw, walker, result["count_id"], {"boxes": boxes})
    assert answer.status_code == status, answer.text
    assert answer.json()["code"] in ("bad_request", "unknown_sku")
    stored = gw.services.store.get_count(result["count_id"])
    assert stored.box_edit is None and stored.corrections == ()


def test_nan_unknown_counts_other_walkers_and_confirmed_bays(gw: GatewayServer,
                                                             walker: str) -> None:
    result = counted(gw, walker, 13)
    count_id = result["count_id"]
    nan = requests.put(f"{gw.base_url}/api/v1/counts/{count_id}/boxes",
                       data='{"boxes": [[NaN, 1, 2, 3, ""]]}', timeout=10,
                       headers=auth(walker, **{"Content-Type": "application/json"}))
    assert nan.status_code == 400
    assert put_boxes(gw, walker, "no-such-count", {"boxes": []}).status_code == 404
    other = new_token(gw.settings.data_dir, "walker-other")
    assert put_boxes(gw, other, count_id, {"boxes": []}).status_code == 404
    assert gw.services.store.get_count(count_id).box_edit is None
    confirmed = requests.post(f"{gw.base_url}/api/v1/counts/{count_id}/confirm",
                              headers=auth(walker), timeout=10)
    assert confirmed.status_code == 200, confirmed.text
    late = put_boxes(gw, walker, count_id, {"boxes": []})
    assert late.status_code == 409 and late.json()["code"] == "already_confirmed"


def test_boxes_over_websocket_answer_boxes_saved_then_a_fresh_result(
        gw: GatewayServer, walker: str) -> None:
    phone = WsClient(gw)
    try:
        phone.hello(walker)
        photo_id = str(uuid.uuid4())
        phone.photo(photo_id, shelf_jpeg(14))
        first = phone.wait_for(outcome(photo_id))
        assert first["type"] == "result", first
        keep = [[*b[:4], b[5]] for b in first["boxes"]][:2]
        phone.send({"type": "boxes", "id": photo_id, "boxes": keep, "correction_id": "b-1"})
        saved = phone.wait_for(lambda m: m["type"] in ("boxes_saved", "error"))
        assert saved == {"type": "boxes_saved", "id": photo_id, "count_id": first["count_id"],
                         "correction_id": "b-1"}
        fresh = phone.wait_for(lambda m: m["type"] == "result" and m["id"] == photo_id)
        assert quantities(fresh["rows"]) == Counter(b[4] for b in keep)
        assert fresh["box_sources"] == ["person"] * len(keep)
        phone.send({"type": "boxes", "id": photo_id, "boxes": [[0, 0, 1, "x", ""]]})
        refused = phone.wait_for(lambda m: m["type"] == "error")
        assert refused["code"] == "bad_request" and refused["id"] == photo_id
    finally:
        phone.close()


def test_please_check_until_a_person_fixes_the_boxes(triton, tmp_path) -> None:
    """SHELFCOUNT_REVIEW_BELOW: a result whose least sure line is below it says please_check
    (the welcome tells the phone the threshold) until a person corrects the photo."""
    with running_gateway(tmp_path, triton.url, review_below=0.999) as server:
        token = new_token(server.settings.data_dir, "walker-check")
        phone = WsClient(server)
        try:
            assert phone.hello(token)["review_below"] == 0.999
            photo_id = str(uuid.uuid4())
            phone.photo(photo_id, shelf_jpeg(15))
            first = phone.wait_for(outcome(photo_id))
            assert first["type"] == "result" and first["please_check"] is True
            assert min(float(r["Count_Confidence"]) for r in first["rows"]) < 0.999
            manager = new_token(server.settings.data_dir, "manager-check", "manager")
            queue = requests.get(f"{server.base_url}/api/v1/review", headers=auth(manager),
                                 timeout=10).json()["queue"]
            (item,) = queue
            assert item["please_check"] is True
            assert item["photo_url"] == f"/api/v1/counts/{first['count_id']}/photo"
            assert any(r.startswith("low confidence") for r in item["reasons"])
            photo = requests.get(server.base_url + item["photo_url"], headers=auth(manager),
                                 timeout=10)
            assert photo.status_code == 200 and photo.content[:2] == b"\xff\xd8"
            keep = [[*b[:4], b[5]] for b in first["boxes"]]
            phone.send({"type": "boxes", "id": photo_id, "boxes": keep})
            fresh = phone.wait_for(lambda m: m["type"] == "result" and m.get("box_sources")
                                   and m["box_sources"][0] == "person")
            assert fresh["please_check"] is False
        finally:
            phone.close()
