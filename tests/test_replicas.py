"""Gateway replicas on one PostgreSQL: photos acknowledged by a replica that is then killed (-9)
are counted by another, each once; the survivor answers for the whole session, resumes its
WebSocket, and every confirmed bay reaches the drop folder and Tryton once (issue 18's
scenario: two gateways, the S3 server, two Tritons, one of each killed half-way)."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from gateway.catalog import import_catalog
from gateway.config import load_settings
from gateway.inference.embedded import EmbeddedTriton, free_ports
from gateway.server.serve import device_add
from gateway.store import Store

from .conftest import PG_URL
from .replica_support import fresh_database, replica
from .s3_server import s3_server
from .server_support import DEMO_CATALOG, WsClient, outcome, shelf_jpeg

pytestmark = pytest.mark.triton
pytest_plugins = ["tests.tryton_fixtures"]
# scene seeds whose bins Tryton has (tests/tryton_fixtures.py): A-01-2, A-02-1, A-01-1, A-02-2,
# then A-01-1 and A-02-1 again (a second photo of a bin: the same bay, the later one counts)
BINS = (20, 25, 26, 46, 80, 82)


@pytest.fixture()
def database() -> Iterator[str]:
    """A fresh PostgreSQL database for the replicas (dropped afterwards)."""
    if not PG_URL:
        pytest.skip("SHELFCOUNT_TEST_DATABASE_URL is not set: the replica test needs PostgreSQL")
    with fresh_database(PG_URL) as url:
        yield url


def test_a_killed_replicas_photos_are_counted_by_the_other_once(
        triton, database: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    import_catalog(DEMO_CATALOG, data_dir)
    env = {"SHELFCOUNT_DATABASE_URL": database, "SHELFCOUNT_LEASE_S": "3"}
    token = device_add(load_settings(env=env, data_dir=data_dir), "walker-replicas")
    headers = {"Authorization": f"Bearer {token}"}
    (dead,) = free_ports(1)  # replica A's Triton is away: its photos wait, leased by A
    with replica(data_dir, env, f"127.0.0.1:{dead}") as (a, a_url), \
            replica(data_dir, env, triton.url) as (_, b_url):
        acked, session = [], None
        for seed in (11, 12, 13):
            resp = requests.post(f"{a_url}/api/v1/counts", headers=headers,
                                 files={"photo": ("bay.jpg", shelf_jpeg(seed), "image/jpeg")},
                                 data={"id": str(uuid.uuid4())}, timeout=90)
            assert resp.status_code == 202, resp.text  # stored; A waits for its Triton
            acked.append(resp.json()["count_id"])
            session = resp.json()["session"]
        time.sleep(4)  # B must not take photos A still holds (A renews its leases)
        counts = requests.get(f"{b_url}/api/v1/sessions/{session}", headers=headers,
                              timeout=10).json()["counts"]
        assert {c["status"] for c in counts} == {"waiting"}
        os.kill(a.pid, signal.SIGKILL)
        a.wait(timeout=10)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            counts = requests.get(f"{b_url}/api/v1/sessions/{session}", headers=headers,
                                  timeout=10).json()["counts"]
            if len(counts) == 3 and all(c["status"] == "done" for c in counts):
                break
            time.sleep(0.5)
        assert sorted(c["id"] for c in counts) == sorted(acked)
        assert all(c["status"] == "done" and c["rows"] for c in counts), counts


def _session_counts(base: str, session: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    resp = requests.get(f"{base}/api/v1/sessions/{session}", headers=headers, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()["counts"]


def _until(check: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _booked(tryton_db: Any, count_id: str) -> int:
    from gateway.sinks.tryton import NOTE_PREFIX

    return len(tryton_db.client().model("ir.note", "search", [
        ("message", "like", f"{NOTE_PREFIX}{count_id}:%")], 0, None, None))


def test_two_gateways_s3_two_tritons_one_of_each_killed(  # noqa: PLR0915 - one scenario
        triton, database: str, tmp_path: Path, tryton_db: Any) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    drop = tmp_path / "drop"
    drop.mkdir()
    import_catalog(DEMO_CATALOG, data_dir)
    second = EmbeddedTriton(load_settings().model_repository, start_timeout_s=120)
    second.start()
    with s3_server(tmp_path / "s3") as s3:
        env = {"SHELFCOUNT_DATABASE_URL": database, "SHELFCOUNT_LEASE_S": "3",
               "SHELFCOUNT_DROP_DIR": str(drop), "SHELFCOUNT_BLUR_PEOPLE": "0",
               **s3.env(), **tryton_db.env()}
        token = device_add(load_settings(env=env, data_dir=data_dir), "walker-scale")
        headers = {"Authorization": f"Bearer {token}"}
        tritons = f"{triton.url},{second.url}"
        try:
            with replica(data_dir, env, tritons) as (a, a_url), \
                    replica(data_dir, env, tritons) as (_, b_url):
                phone = WsClient(SimpleNamespace(base_url=a_url))
                session = phone.hello(token)["session"]
                ids = [str(uuid.uuid4()) for _ in range(6)]
                acked = []
                for photo_id, seed in zip(ids[:4], BINS[:4], strict=True):
                    phone.photo(photo_id, shelf_jpeg(seed))
                    acked.append(phone.wait_for(lambda m, i=photo_id: m["type"] == "ack"
                                                and m["id"] == i)["count_id"])
                phone.wait_for(outcome(ids[0]))  # A counts (on either Triton) ...
                os.kill(second.pid, signal.SIGKILL)  # ... then a Triton and A die
                os.kill(a.pid, signal.SIGKILL)
                a.wait(timeout=10)
                # the walker goes on through B: REST photos and the same WebSocket session
                for photo_id, seed in zip(ids[4:], BINS[4:], strict=True):
                    resp = requests.post(
                        f"{b_url}/api/v1/counts", headers=headers, timeout=90,
                        files={"photo": ("bay.jpg", shelf_jpeg(seed), "image/jpeg")},
                        data={"id": photo_id, "session": session})
                    assert resp.status_code in (200, 202), resp.text
                    acked.append(resp.json()["count_id"])
                resumed = WsClient(SimpleNamespace(base_url=b_url))
                welcome = resumed.hello(token, session=session)
                assert welcome["session"] == session
                for photo_id in welcome["pending"]:  # A's photos B took over: outcomes follow
                    assert resumed.wait_for(outcome(photo_id))["type"] == "result"
                counts = _until(lambda: (c := _session_counts(b_url, session, headers))
                                and len(c) == 6 and all(x["status"] == "done" for x in c)
                                and c, 120, "every photo counted")
                assert sorted(c["id"] for c in counts) == sorted(acked)
                # a new replica joins; the walker confirms on B: both deliver the outbox
                with replica(data_dir, env, tritons) as (_, c_url):
                    resp = requests.post(f"{b_url}/api/v1/sessions/{session}/confirm",
                                         headers=headers, timeout=30)
                    assert resp.status_code == 200, resp.text
                    # two photos of one bin are one bay: the later one counts
                    confirmed = resp.json()["confirmed"]
                    assert sorted(confirmed + resp.json()["replaced"]) == sorted(acked)
                    store = Store(database)
                    try:
                        entries = store.outbox_entries(session)
                        _until(lambda: all(store.outbox_status(e.id).get(s, {}).get(
                            "delivered_at") for e in entries for s in ("folder", "tryton")),
                            120, "every bay delivered")
                        # each entry went out once per sink: one recorded attempt, one booking
                        assert {store.outbox_status(e.id)[s]["attempts"] for e in entries
                                for s in ("folder", "tryton")} == {1}
                    finally:
                        store.close()
                    assert len(entries) == len(confirmed) == 4
                    assert [_booked(tryton_db, c) for c in confirmed] == [1] * len(confirmed)
                    (sheet,) = [p for p in drop.glob(f"shelfcount_*_{session}.csv")]
                    lines = sheet.read_text().splitlines()[1:]
                    assert len(lines) == sum(len(c["rows"]) for c in counts
                                             if c["id"] in confirmed)
                    assert requests.get(f"{c_url}/api/v1/sessions/{session}", headers=headers,
                                        timeout=10).status_code == 200
        finally:
            second.stop()
