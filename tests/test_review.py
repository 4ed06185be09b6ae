"""The manager's review through the real gateway (issue 12, finding 8): the day's sessions by
walker, the review queue with reasons, photos, sending a bay back, approving."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import requests

from gateway.server import GatewayServer
from gateway.training.scenes import encode_jpeg, render_scene

from .server_support import WsClient, new_token, outcome, running_gateway

pytestmark = pytest.mark.triton


@pytest.fixture(scope="module")
def gw(triton, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    with running_gateway(tmp_path_factory.mktemp("gw-review"), triton.url) as server:
        yield server


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_manager_sees_the_day_sends_a_bay_back_and_approves(gw: GatewayServer) -> None:
    walker = new_token(gw.settings.data_dir, "walker-rita")
    manager = new_token(gw.settings.data_dir, "manager-max", "manager")
    phone = WsClient(gw)
    try:
        session = phone.hello(walker)["session"]
        conflict_id, plain_id = str(uuid.uuid4()), str(uuid.uuid4())
        phone.photo(conflict_id, encode_jpeg(render_scene(33, location="B-01-2",
                                                          difficulty=0.2)), location="C-02-2")
        conflicted = phone.wait_for(outcome(conflict_id))
        phone.photo(plain_id, encode_jpeg(render_scene(37, difficulty=0.2)))
        plain = phone.wait_for(outcome(plain_id))

        assert requests.get(f"{gw.base_url}/api/v1/review", headers=auth(walker),
                            timeout=10).status_code == 403
        day = requests.get(f"{gw.base_url}/api/v1/review", headers=auth(manager),
                           timeout=10).json()
        (mine,) = [s for s in day["sessions"] if s["id"] == session]
        assert (mine["walker"], mine["bays"], mine["confirmed"]) == ("walker-rita", 2, 0)
        queue = {q["photo_id"]: q for q in day["queue"] if q["session"] == session}
        assert any(r.startswith("location:") for r in queue[conflict_id]["reasons"])
        assert queue[plain_id]["rows"] and "Flags" in queue[plain_id]["rows"][0]
        assert day["sheet_url"] is None  # no Sheets sink configured here

        photo = requests.get(f"{gw.base_url}/api/v1/counts/{plain['count_id']}/photo",
                             headers=auth(manager), timeout=10)
        assert photo.status_code == 200 and photo.content[:2] == b"\xff\xd8"

        back = requests.post(f"{gw.base_url}/api/v1/counts/{conflicted['count_id']}/recount",
                             headers=auth(manager), json={"note": "count the top shelf too"},
                             timeout=10)
        assert back.status_code == 200, back.text
        told = phone.wait_for(lambda m: m["type"] == "recount")
        assert (told["id"], told["note"], told["by"]) == (conflict_id, "count the top shelf too",
                                                           "manager-max")
        assert requests.post(f"{gw.base_url}/api/v1/counts/{plain['count_id']}/recount",
                             headers=auth(walker), json={"note": "x"},
                             timeout=10).status_code == 403
        assert requests.post(f"{gw.base_url}/api/v1/counts/{plain['count_id']}/recount",
                             headers=auth(manager), json={"note": ""},
                             timeout=10).status_code == 400
        # Approve: the manager confirms the plain bay.
        approved = requests.post(f"{gw.base_url}/api/v1/counts/{plain['count_id']}/confirm",
                                 headers=auth(manager), timeout=10)
        assert approved.status_code == 200
        day = requests.get(f"{gw.base_url}/api/v1/review", headers=auth(manager),
                           timeout=10).json()
        (mine,) = [s for s in day["sessions"] if s["id"] == session]
        assert mine["confirmed"] == 1
        queue = {q["photo_id"]: q for q in day["queue"] if q["session"] == session}
        assert queue[plain_id]["confirmed"] and "sent back: count the top shelf too" in queue[
            conflict_id]["reasons"]
        # Reopen the approved bay: it is open again, asked for, and its re-confirmation goes to
        # the sinks as revising the first one.
        url = f"{gw.base_url}/api/v1/counts/{plain['count_id']}/reopen"
        assert requests.post(url, headers=auth(walker), timeout=10).status_code == 403
        reopened = requests.post(url, headers=auth(manager), timeout=10)
        assert reopened.status_code == 200, reopened.text
        (copy,) = reopened.json()["counts"]
        assert copy["confirmed_at"] is None and copy["rows"] == plain["rows"]
        assert requests.post(url, headers=auth(manager), timeout=10).status_code == 409
        day = requests.get(f"{gw.base_url}/api/v1/review", headers=auth(manager),
                           timeout=10).json()
        item = next(q for q in day["queue"] if q["count_id"] == copy["id"])
        assert not item["confirmed"] and item["reasons"][0].startswith("reopened")
        assert requests.post(f"{gw.base_url}/api/v1/counts/{copy['id']}/confirm",
                             headers=auth(manager), timeout=10).status_code == 200
        first, second = gw.services.store.outbox_entries(session)
        assert second.revises == first.id and second.count_id == copy["id"]
    finally:
        phone.close()


def test_forecast_for_managers_only(gw: GatewayServer) -> None:
    """Issue 16: GET /api/v1/forecast is the CLI's table, for manager tokens only."""
    from datetime import UTC, datetime, timedelta

    from gateway.store import open_store
    from gateway.store.stock_repo import StockEvent

    start = datetime(2026, 1, 1, tzinfo=UTC)
    store = open_store(gw.settings)
    try:
        # A bin no other test counts in: the confirmed bays of this gateway join the history.
        store.add_history([StockEvent("SKU-10001", "Z-99-9", 200 - 5 * d,
                                      start + timedelta(days=d), "test")
                           for d in range(0, 40, 4)])
    finally:
        store.close()
    manager = new_token(gw.settings.data_dir, f"manager-{uuid.uuid4().hex[:6]}", "manager")
    walker = new_token(gw.settings.data_dir, f"walker-{uuid.uuid4().hex[:6]}")
    url = f"{gw.base_url}/api/v1/forecast"
    assert requests.get(url, headers=auth(walker), timeout=30).status_code == 403
    bad = requests.get(url, params={"horizon": "0"}, headers=auth(manager), timeout=30)
    assert bad.status_code == 400 and bad.json()["code"] == "bad_request"
    assert "horizon" in bad.json()["message"]
    answer = requests.get(url, params={"horizon": "14"}, headers=auth(manager), timeout=30)
    assert answer.status_code == 200, answer.text
    (row,) = [r for r in answer.json()["rows"] if r["Location"] == "Z-99-9"]
    assert row["On_Hand"] == 20 and abs(row["Daily_Demand"] - 5) < 0.5
    assert row["Suggested_Order_Qty"] > 0  # 20 left is under a week of 5 a day
