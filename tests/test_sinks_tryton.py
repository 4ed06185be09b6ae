"""Tryton sink against a real trytond (SQLite), with the Sheets fake for the combined runs."""

from __future__ import annotations

import socket
import subprocess
import time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from gateway.config import load_settings
from gateway.sinks.base import SinkError
from gateway.sinks.commands import doctor_lines
from gateway.sinks.registry import build_sinks
from gateway.sinks.sheets import HEADER, VARIANCES
from gateway.sinks.tryton import NOTE_PREFIX, TrytonSink
from gateway.sinks.worker import OutboxWorker
from tests.fakes.bays import Bays, Clock, row

if TYPE_CHECKING:  # pytest plugins: imported by pytest, not here
    from tests.fakes.sheets_server import SheetsEnv
    from tests.tryton_fixtures import TrytonDB, TrytonServer

pytest_plugins = ["tests.tryton_fixtures", "tests.fakes.sheets_server"]

ON_HAND = Decimal(40)  # every seeded SKU in its home bin (tests/tryton_fixtures.py)
COUNT_ID = HEADER.index("Count_ID")


def _worker(tmp_path: Path, env: dict[str, str], clock: Clock | None = None,
            bays: Bays | None = None) -> tuple[Bays, OutboxWorker]:
    settings = load_settings(env, data_dir=tmp_path / "data")
    bays = bays or Bays.open(tmp_path / "store.db")
    return bays, OutboxWorker(bays.store, build_sinks(settings, bays.store.session_rows),
                              clock=clock or Clock())


def _booked(db: TrytonDB, count_id: str) -> list[dict]:
    """Inventories tagged with this count id, with their state."""
    client = db.client()
    notes = client.model("ir.note", "search_read",
                         [("message", "like", f"{NOTE_PREFIX}{count_id}:%")], 0, None, None,
                         ["resource"])
    ids = [int(str(n["resource"]).split(",")[1]) for n in notes]
    return client.model("stock.inventory", "read", ids, ["state", "location"])


def _inventories(db: TrytonDB, state: str) -> int:
    return len(db.client().model("stock.inventory", "search", [("state", "=", state)],
                                 0, None, None))


def test_bay_is_booked_once_and_feeds_the_variance(tmp_path: Path, tryton_db: TrytonDB,
                                                   sheets: SheetsEnv) -> None:
    bays, worker = _worker(tmp_path, {**tryton_db.env(), **sheets.env()})
    count = bays.confirm("A-01-1", [row("A-01-1", "SKU-10001", 35),
                                    row("A-01-1", "SKU-10002", 4)])
    done_before = _inventories(tryton_db, "done")
    assert worker.run_once() == 2  # tryton + sheets
    assert tryton_db.on_hand("A-01-1", "SKU-10001") == 35
    assert tryton_db.on_hand("A-01-1", "SKU-10002") == 4  # was 0 there: found 4
    assert [b["state"] for b in _booked(tryton_db, count)] == ["done"]
    rows = sheets.fake.rows(sheets.key, bays.store.outbox_entries(bays.session_id)[0]
                            .created_at.date().isoformat())
    extra = {r[1]: r[len(HEADER) - 4:] for r in rows[1:]}
    # System_Quantity, Variance, Variance_Pct, Flag: 35 vs 40 = -12.5 % (> 10 %).
    assert extra["SKU-10001"] == [40, -5, -12.5, "Variance"]
    assert extra["SKU-10002"] == [0, 4, "", "Variance, Low stock"]
    assert [r[1] for r in sheets.fake.rows(sheets.key, VARIANCES)[1:]] == \
        ["SKU-10001", "SKU-10002"]
    # A second delivery of the same bay (a retry) books nothing.
    sink = worker.sinks[0]
    assert isinstance(sink, TrytonSink)
    sink.deliver(bays.store.outbox_entries(bays.session_id)[0])
    assert tryton_db.on_hand("A-01-1", "SKU-10001") == 35
    assert _inventories(tryton_db, "done") == done_before + 1


def test_a_reopened_bay_is_booked_again_with_a_note_saying_so(tmp_path: Path,
                                                             tryton_db: TrytonDB) -> None:
    """Issue 12: a bay a manager reopened and confirmed again is booked with its new count, and
    its new inventory says in Tryton that it was reopened (once, also after a retry)."""
    from gateway.sinks.tryton import REOPENED_NOTE

    bays, worker = _worker(tmp_path, tryton_db.env())
    first = bays.confirm("A-01-1", [row("A-01-1", "SKU-10001", 35)])
    assert worker.run_once() == 1
    manager, _ = bays.store.add_device("manager-1", "manager")
    (copy,) = bays.store.reopen(first, manager)
    bays.store.finish_count(copy.id, {"rows": [row("A-01-1", "SKU-10001", 37)]})
    bays.store.confirm_count(copy.id, manager)
    assert worker.run_once() == 1
    assert tryton_db.on_hand("A-01-1", "SKU-10001") == 37
    (again,) = _booked(tryton_db, copy.id)
    (old,) = _booked(tryton_db, first)

    def flags(inventory: int) -> list[str]:
        return [n["message"] for n in tryton_db.client().model(
            "ir.note", "search_read", [("resource", "=", f"stock.inventory,{inventory}"),
                                       ("message", "like", f"{REOPENED_NOTE}%")],
            0, None, None, ["message"])]

    (flag,) = flags(again["id"])
    assert "counted again" in flag and flags(old["id"]) == []
    sink = worker.sinks[0]
    assert isinstance(sink, TrytonSink)
    sink.deliver(bays.store.outbox_entries(bays.session_id)[-1])  # a retry
    assert len(flags(again["id"])) == 1


class _DiesAfterSending:
    """The store as seen by a worker killed after delivering, before recording it."""

    def __init__(self, store: object) -> None:
        self._store = store

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    def outbox_mark_delivered(self, entry_id: str, sink: str) -> None:
        raise KeyboardInterrupt("killed between sending and recording")


def test_killed_after_booking_no_double_booking(tmp_path: Path, tryton_db: TrytonDB) -> None:
    settings = load_settings(tryton_db.env(), data_dir=tmp_path / "data")
    bays = Bays.open(tmp_path / "store.db")
    count = bays.confirm("A-02-1", [row("A-02-1", "SKU-10003", 31)])
    gone = subprocess.Popen(["true"])  # the killed gateway: a process of this machine, gone
    gone.wait()
    doomed = OutboxWorker(_DiesAfterSending(bays.store),  # type: ignore[arg-type]
                          build_sinks(settings, bays.store.session_rows),
                          owner=f"{socket.gethostname()}:{gone.pid}:dead")
    with pytest.raises(KeyboardInterrupt):
        doomed.run_once()
    assert tryton_db.on_hand("A-02-1", "SKU-10003") == 31
    restarted = OutboxWorker(bays.store, build_sinks(settings, bays.store.session_rows))
    assert restarted.run_once() == 0  # claimed by the dead process until the lease ends
    restarted.free_dead_claims()  # what the restarted gateway does on start
    assert restarted.run_once() == 1
    assert tryton_db.on_hand("A-02-1", "SKU-10003") == 31
    assert len(_booked(tryton_db, count)) == 1


def test_crash_before_tagging_leaves_no_second_booking(tmp_path: Path,
                                                       tryton_db: TrytonDB) -> None:
    """A draft created just before a crash (no note yet) is dropped, never confirmed."""
    bays, worker = _worker(tmp_path, tryton_db.env())
    bays.confirm("A-03-1", [row("A-03-1", "SKU-10005", 12)])
    client = tryton_db.client()
    (loc,) = client.model("stock.location", "search", [("code", "=", "A-03-1")], 0, 1, None)
    (prod,) = client.model("product.product", "search", [("code", "=", "SKU-10005")],
                           0, 1, None)
    client.model("stock.inventory", "create", [{
        "location": loc, "empty_quantity": "keep",
        "lines": [["create", [{"product": prod, "quantity": 12.0}]]]}])
    assert worker.run_once() == 1
    assert _inventories(tryton_db, "draft") == 0
    assert tryton_db.on_hand("A-03-1", "SKU-10005") == 12


def test_missing_product_or_location_is_a_clear_error_and_the_entry_stays(
        tmp_path: Path, tryton_db: TrytonDB, sheets: SheetsEnv) -> None:
    clock = Clock()
    bays, worker = _worker(tmp_path, {**tryton_db.env(), **sheets.env()}, clock)
    bays.confirm("A-01-1", [row("A-01-1", "SKU-99999", 3)])
    bays.confirm("Z-99-9", [row("Z-99-9", "SKU-10001", 3)])
    assert worker.run_once() == 2  # the sheet shows the counts, without a system quantity
    errors = [bays.store.outbox_status(e.id)["tryton"]["last_error"]
              for e in bays.store.outbox_entries(bays.session_id)]
    assert errors == ["Tryton has no product with code SKU-99999",
                      "Tryton has no storage location with code 'Z-99-9'"]
    clock.advance(601)  # needs a person: retried at the longest interval, still failing
    assert worker.run_once() == 0
    assert bays.delivered("tryton") == 0 and bays.delivered("sheets") == 2
    assert tryton_db.on_hand("A-01-1", "SKU-10001") == ON_HAND
    rows = sheets.fake.rows(sheets.key, bays.store.outbox_entries(bays.session_id)[0]
                            .created_at.date().isoformat())
    assert [r[len(HEADER) - 4:] for r in rows[1:]] == [["", "", "", "Low stock"]] * 2


def test_a_refused_bay_does_not_hold_up_its_batch(tmp_path: Path, tryton_db: TrytonDB) -> None:
    """Tryton refuses a line (a service product cannot be counted): the combined create
    fails, the batch falls back to bay by bay, the others are booked, the bad one waits."""
    from tests.tryton_fixtures import SERVICE_SKU

    bays, worker = _worker(tmp_path, tryton_db.env())
    bays.confirm("A-06-1", [row("A-06-1", "SKU-10011", 21)])
    bad = bays.confirm("A-06-2", [row("A-06-2", SERVICE_SKU, 1),
                                  row("A-06-2", "SKU-10012", 22)])
    bays.confirm("A-07-1", [row("A-07-1", "SKU-10013", 23)])
    assert worker.run_once() == 2
    assert [tryton_db.on_hand(loc, sku) for loc, sku in
            [("A-06-1", "SKU-10011"), ("A-06-2", "SKU-10012"), ("A-07-1", "SKU-10013")]] == \
        [21, ON_HAND, 23]
    entry = next(e for e in bays.store.outbox_entries(bays.session_id) if e.count_id == bad)
    assert "Tryton refused model.stock.inventory.create" in \
        bays.store.outbox_status(entry.id)["tryton"]["last_error"]
    assert _booked(tryton_db, bad) == [] and _inventories(tryton_db, "draft") == 0


def test_tryton_down_entries_wait_and_go_through(tmp_path: Path, tryton_db: TrytonDB,
                                                 tryton_server: TrytonServer,
                                                 sheets: SheetsEnv) -> None:
    clock = Clock()
    bays, worker = _worker(tmp_path, {**tryton_db.env(), **sheets.env()}, clock)
    tryton_server.stop()
    bays.confirm("A-04-1", [row("A-04-1", "SKU-10007", 38)])
    bays.confirm("A-04-2", [row("A-04-2", "SKU-10008", 44)])
    for _ in range(2):
        assert worker.run_once() == 0
        clock.advance(700)
    entry = bays.store.outbox_entries(bays.session_id)[0]
    status = bays.store.outbox_status(entry.id)
    assert "unreachable" in status["tryton"]["last_error"]
    assert "unreachable" in status["sheets"]["last_error"]  # waits for the system quantity
    tryton_server.start(tryton_db.db)
    assert worker.run_once() == 4
    assert tryton_db.on_hand("A-04-1", "SKU-10007") == 38
    assert tryton_db.on_hand("A-04-2", "SKU-10008") == 44
    rows = sheets.fake.rows(sheets.key, entry.created_at.date().isoformat())
    assert sorted(r[COUNT_ID] for r in rows[1:]) == sorted(bays.count_ids)


def test_doctor_lines_for_tryton(tmp_path: Path, tryton_db: TrytonDB,
                                 tryton_server: TrytonServer) -> None:
    def lines(**env: str) -> dict[str, str | None]:
        return dict(doctor_lines(load_settings({**tryton_db.env(), **env}, data_dir=tmp_path)))

    assert lines() == {"tryton": None}
    assert "login for user 'admin' refused" in str(lines(SHELFCOUNT_TRYTON_PASSWORD="wrong")
                                                   ["tryton"])
    assert "no database" in str(lines(SHELFCOUNT_TRYTON_DB="nope")["tryton"])
    tryton_server.stop()
    assert "unreachable" in str(lines()["tryton"])
    tryton_server.start(tryton_db.db)


def test_fifty_bay_session_reaches_sheet_and_tryton_once(tmp_path: Path, tryton_db: TrytonDB,
                                                         sheets: SheetsEnv,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    from tests.tryton_fixtures import LOCATIONS, SKUS

    bays, worker = _worker(tmp_path, {**tryton_db.env(), **sheets.env()})
    expected: dict[tuple[str, str], int] = {}
    for i in range(50):
        loc, home, other = LOCATIONS[i], SKUS[i], SKUS[i + 1]
        lines = [row(loc, home, 30 + i % 17), row(loc, other, i % 5)]
        expected.update({(loc, home): 30 + i % 17, (loc, other): i % 5})
        bays.confirm(loc, lines)
    started = time.monotonic()
    deadline = started + 300
    while (bays.delivered("tryton") < 50 or bays.delivered("sheets") < 50) and \
            time.monotonic() < deadline:
        worker.run_once()
    elapsed = time.monotonic() - started
    with capsys.disabled():
        print(f"\n50 bays (100 lines) to Tryton + Sheets in {elapsed:.1f} s")
    assert bays.delivered("tryton") == 50 and bays.delivered("sheets") == 50
    rows = sheets.fake.rows(sheets.key, bays.store.outbox_entries(bays.session_id)[0]
                            .created_at.date().isoformat())[1:]
    got = {(r[0], r[1]): r[3] for r in rows}
    assert len(rows) == 100 and got == expected
    for count_id in bays.count_ids:
        assert [b["state"] for b in _booked(tryton_db, count_id)] == ["done"]
    for (loc, sku), qty in list(expected.items())[::7]:
        assert tryton_db.on_hand(loc, sku) == qty


def test_system_quantities_before_and_after_booking(tmp_path: Path,
                                                    tryton_db: TrytonDB) -> None:
    bays, worker = _worker(tmp_path, tryton_db.env())
    bays.confirm("A-05-1", [row("A-05-1", "SKU-10009", 50)])
    entry = bays.store.outbox_entries(bays.session_id)[0]
    fresh = build_sinks(load_settings(tryton_db.env()), lambda _: [], only="tryton")[0]
    assert fresh.system_quantities(entry) == {("A-05-1", "SKU-10009"): ON_HAND}
    assert worker.run_once() == 1
    # a restarted process
    other = build_sinks(load_settings(tryton_db.env()), lambda _: [], only="tryton")[0]
    assert other.system_quantities(entry) == {("A-05-1", "SKU-10009"): ON_HAND}
    with pytest.raises(SinkError, match="no product"):
        bays.new_session()  # a recount of the bay, on another day
        bays.confirm("A-05-1", [row("A-05-1", "SKU-0", 1)])
        other.deliver(bays.store.outbox_entries(bays.session_id)[-1])
