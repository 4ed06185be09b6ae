"""Sinks without outside services: escaping, variance flags, backoff, drop folder, webhook."""

from __future__ import annotations

import csv
import json
import random
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, request
from werkzeug.serving import make_server

from gateway.config import load_settings
from gateway.schema import COLUMNS
from gateway.sinks.alerts import WebhookSink
from gateway.sinks.base import SinkError
from gateway.sinks.commands import doctor_lines, doctor_main
from gateway.sinks.csv_safety import safe_cell
from gateway.sinks.registry import build_sinks, configured
from gateway.sinks.variance import Thresholds, assess
from gateway.sinks.worker import OutboxWorker
from tests.fakes.bays import Bays, Clock, row


@pytest.mark.parametrize(("value", "expected"), [
    ("=1+2", "'=1+2"), ("+1-1", "'+1-1"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=cmd", "'\t=cmd"), ("plain", "plain"), ("-3", "-3"), ("12.50", "12.50"),
    (-3, -3), (Decimal("12.50"), 12.5), (None, ""), ("a=b", "a=b"),
])
def test_safe_cell(value: Any, expected: Any) -> None:
    assert safe_cell(value) == expected


def test_variance_flags() -> None:
    t = Thresholds()
    line = assess(row("A-1-1", "S", 35, price="1.00"), Decimal(40), 20, t)
    assert (line.variance, line.variance_pct, line.flags) == (Decimal(-5), Decimal("-12.5"),
                                                              ("Variance",))
    # 9 % off, but 9 x 60.00 = 540 > 500: flagged on value.
    assert assess(row("A-1-1", "S", 109, price="60.00"), Decimal(100), 20, t).flags == \
        ("Variance",)
    assert assess(row("A-1-1", "S", 105, price="1.00"), Decimal(100), 20, t).flags == ()
    assert assess(row("A-1-1", "S", 5, price="1.00"), Decimal(5), 6, t).flags == ("Low stock",)
    assert assess(row("A-1-1", "S", 5, price="1.00"), None, None, t).flags == ("Low stock",)
    assert assess(row("A-1-1", "S", 0, price="1.00"), Decimal(0), 6, t).flags == \
        ("Out of stock",)
    new = assess(row("A-1-1", "S", 3, price="1.00"), Decimal(0), 1, t)
    assert new.variance_pct is None and new.flags == ("Variance",)
    assert new.columns() == {"System_Quantity": 0, "Variance": 3, "Variance_Pct": "",
                             "Flag": "Variance"}
    strict = Thresholds.from_settings(load_settings({"SHELFCOUNT_VARIANCE_PCT": "2",
                                                     "SHELFCOUNT_VARIANCE_VALUE": "5"}))
    assert assess(row("A-1-1", "S", 103, price="1.00"), Decimal(100), 1, strict).flagged
    with pytest.raises(ValueError, match="SHELFCOUNT_VARIANCE_PCT: .*valid decimal"):
        Thresholds.from_settings(load_settings({"SHELFCOUNT_VARIANCE_PCT": "ten"}))


def test_backoff_grows_exponentially_with_jitter_and_caps() -> None:
    worker = OutboxWorker(store=None, sinks=[], base_delay_s=2.0, max_delay_s=60.0,  # type: ignore[arg-type]
                          rng=random.Random(1))
    down = SinkError("down")
    for attempt, full in [(1, 2), (2, 4), (3, 8), (4, 16), (8, 60), (30, 60), (5000, 60)]:
        delays = [worker.backoff_s(attempt, down) for _ in range(20)]
        assert all(full / 2 <= d <= full for d in delays)
        assert len(set(delays)) > 1  # jitter
    assert worker.backoff_s(1, SinkError("quota", retry_after=45)) >= 45
    assert worker.backoff_s(1, SinkError("no product", transient=False)) == 60


def _folder_settings(tmp_path: Path, drop: Path) -> Any:
    return load_settings({"SHELFCOUNT_DROP_DIR": str(drop),
                          "SHELFCOUNT_SAP_WAREHOUSE": "WH1"}, data_dir=tmp_path / "data")


def test_drop_folder_files_atomic_and_idempotent(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    settings = _folder_settings(tmp_path, drop)
    bays = Bays.open(tmp_path / "store.db")
    worker = OutboxWorker(bays.store, build_sinks(settings, bays.store.session_rows))
    bays.confirm("A-01-1", [row("A-01-1", "SKU-10001", 12, description="=cmd()")])
    assert worker.run_once() == 1
    bays.confirm("A-01-2", [row("A-01-2", "SKU-10002", 0)])
    assert worker.run_once() == 1
    files = sorted(p.name for p in drop.iterdir())
    stem = f"shelfcount_{bays.store.outbox_entries(bays.session_id)[0].created_at.date()}_" \
           f"{bays.session_id}"
    assert files == [f"{stem}.csv", f"{stem}_netsuite_adjustment.csv",
                     f"{stem}_sap_b1_counting.csv"]  # no temporary files left
    with open(drop / f"{stem}.csv", newline="", encoding="utf-8") as fh:
        counts = list(csv.reader(fh))
    assert counts[0] == list(COLUMNS)
    assert [r[1] for r in counts[1:]] == ["SKU-10001", "SKU-10002"]
    assert counts[1][2] == "'=cmd()"
    with open(drop / f"{stem}_sap_b1_counting.csv", newline="", encoding="utf-8") as fh:
        sap = list(csv.DictReader(fh))
    assert [(r["ItemCode"], r["WarehouseCode"], r["BinLocation"], r["CountedQuantity"])
            for r in sap] == [("SKU-10001", "WH1", "A-01-1", "12"),
                              ("SKU-10002", "WH1", "A-01-2", "0")]
    with open(drop / f"{stem}_netsuite_adjustment.csv", newline="", encoding="utf-8") as fh:
        netsuite = list(csv.DictReader(fh))
    assert [(r["Item"], r["Bin"], r["New Quantity"]) for r in netsuite] == \
        [("SKU-10001", "A-01-1", "12"), ("SKU-10002", "A-01-2", "0")]
    # Re-delivering (retry after a crash) rewrites the same file, no duplicate line.
    (sink,) = build_sinks(settings, bays.store.session_rows, only="folder")
    sink.deliver(bays.store.outbox_entries(bays.session_id)[0])
    with open(drop / f"{stem}.csv", newline="", encoding="utf-8") as fh:
        assert len(list(csv.reader(fh))) == 3


def finding(kind: str, sku: str = "", expected: str = "", x0: float = 10.5) -> dict[str, Any]:
    return {"type": kind, "box": [x0, 20.0, x0 + 100, 220.0], "sku": sku,
            "expected_sku": expected, "confidence": 0.9}


def test_drop_folder_writes_the_sessions_findings(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    settings = _folder_settings(tmp_path, drop)
    bays = Bays.open(tmp_path / "store.db")
    worker = OutboxWorker(bays.store, build_sinks(
        settings, bays.store.session_rows, session_findings=bays.store.session_findings))
    first = bays.confirm("A-01-1", [row("A-01-1", "SKU-10001", 3)],
                         [finding("gap", expected="SKU-10001"),
                          finding("misplaced", "=SKU-9", "SKU-10001", x0=300.5)])
    second = bays.confirm("A-01-2", [row("A-01-2", "SKU-10002", 5)])
    assert worker.run_once() == 2
    (path,) = drop.glob("*_findings.csv")
    with open(path, newline="", encoding="utf-8") as fh:
        lines = list(csv.reader(fh))
    assert lines[0] == ["Location", "Photo", "Type", "X0", "Y0", "X1", "Y1", "SKU",
                        "Expected_SKU", "Confidence"]
    assert lines[1:] == [["A-01-1", first, "gap", "10.5", "20.0", "110.5", "220.0", "",
                          "SKU-10001", "0.9"],
                         ["A-01-1", first, "misplaced", "300.5", "20.0", "400.5", "220.0",
                          "'=SKU-9", "SKU-10001", "0.9"]]  # a formula is made text
    assert second not in path.read_text(encoding="utf-8")


def test_drop_folder_missing_waits(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    settings = _folder_settings(tmp_path, drop)
    bays = Bays.open(tmp_path / "store.db")
    clock = Clock()
    worker = OutboxWorker(bays.store, build_sinks(settings, bays.store.session_rows),
                          clock=clock)
    bays.confirm("A-01-1", [row("A-01-1", "SKU-10001", 12)])
    assert worker.run_once() == 0
    assert doctor_lines(settings) == [("folder", f"drop folder {drop} does not exist")]
    drop.mkdir()
    clock.advance(5)
    assert worker.run_once() == 1


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[tuple[dict[str, Any], str]], list[int]]]:
    """A loopback receiver recording (JSON body, Idempotency-Key); answers from ``statuses``."""
    received: list[tuple[dict[str, Any], str]] = []
    statuses: list[int] = []
    app = Flask("hook")

    @app.route("/hook", methods=["POST", "HEAD"])
    def hook() -> tuple[str, int]:
        if request.method == "HEAD":
            return "", 200
        status = statuses.pop(0) if statuses else 204
        if status < 300:
            received.append((request.get_json(), request.headers.get("Idempotency-Key", "")))
        return "", status

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", received, statuses
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_webhook_alerts_flagged_lines_only(tmp_path: Path, webhook: Any) -> None:
    url, received, statuses = webhook
    settings = load_settings({"SHELFCOUNT_ALERT_WEBHOOK": url}, data_dir=tmp_path / "data")
    bays = Bays.open(tmp_path / "store.db")
    clock = Clock()
    worker = OutboxWorker(bays.store, build_sinks(settings, bays.store.session_rows),
                          clock=clock)
    bays.confirm("A-01-1", [row("A-01-1", "SKU-10001", 40)])  # nothing to say
    low = bays.confirm("A-01-2", [row("A-01-2", "SKU-10002", 40), row("A-01-2", "SKU-10003", 0)])
    statuses.append(503)
    assert worker.run_once() == 1  # the quiet bay; the alert met a 503
    clock.advance(5)
    assert worker.run_once() == 1
    assert len(received) == 1
    body, key = received[0]
    assert key == low == body["count_id"]
    assert [(ln["SKU"], ln["Flag"]) for ln in body["lines"]] == [("SKU-10003", "Out of stock")]
    assert json.loads(json.dumps(body))["walker"] == "walker-1"
    assert doctor_lines(settings) == [("alerts", None)]
    assert "not an http" in str(WebhookSink("ftp://x").check())


def test_webhook_alerts_misplaced_and_missing_findings(tmp_path: Path, webhook: Any) -> None:
    url, received, _ = webhook
    settings = load_settings({"SHELFCOUNT_ALERT_WEBHOOK": url}, data_dir=tmp_path / "data")
    bays = Bays.open(tmp_path / "store.db")
    worker = OutboxWorker(bays.store, build_sinks(settings, bays.store.session_rows))
    bays.confirm("A-01-1", [row("A-01-1", "SKU-10001", 40)], [finding("gap")])  # no call
    wrong = bays.confirm("A-01-2", [row("A-01-2", "SKU-10002", 40)],
                         [finding("gap"), finding("misplaced", "SKU-10009", "SKU-10002"),
                          finding("missing", expected="SKU-10005")])
    assert worker.run_once() == 2
    (body, key), = received
    assert key == wrong and body["lines"] == []
    assert [(f["type"], f["sku"], f["expected_sku"], f["Photo"]) for f in body["findings"]] == [
        ("misplaced", "SKU-10009", "SKU-10002", wrong), ("missing", "", "SKU-10005", wrong)]


def test_registry_and_doctor_without_sinks(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    settings = load_settings({}, data_dir=tmp_path)
    assert configured(settings) == [] and build_sinks(settings, lambda s: []) == []
    assert doctor_main(settings) == 0
    assert "no sinks configured" in capsys.readouterr().out
    half = load_settings({"SHELFCOUNT_TRYTON_URL": "http://127.0.0.1:9",
                          "SHELFCOUNT_DROP_DIR": str(tmp_path)}, data_dir=tmp_path)
    assert [s.name for s in build_sinks(half, lambda s: [])] == ["folder"]
    assert doctor_main(half) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == ["tryton: missing SHELFCOUNT_TRYTON_DB, SHELFCOUNT_TRYTON_USER, "
                   "SHELFCOUNT_TRYTON_PASSWORD", "folder: ok"]


def test_each_sink_declares_typed_settings_and_readme_lists_them(tmp_path: Path) -> None:
    """The one list of plug-ins drives the registry, doctor and README's settings table."""
    from gateway.sinks.registry import PLUGINS, settings_table

    assert [p.name for p in PLUGINS] == ["tryton", "sheets", "folder", "alerts"]
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    start = readme.index("<!-- sinks-table: shelfcount sinks -->\n") + 39
    assert readme[start:readme.index("\n<!-- /sinks-table -->")] == settings_table(), (
        "README's sinks table is out of date: paste the output of `shelfcount sinks`")
    bad = load_settings({"SHELFCOUNT_SHEETS_CREDENTIALS": str(tmp_path / "sa.json"),
                         "SHELFCOUNT_SHEETS_SPREADSHEET": "key",
                         "SHELFCOUNT_SHEETS_WORKSHEET": "week"}, data_dir=tmp_path)
    ((name, problem),) = doctor_lines(bad)
    assert name == "sheets" and problem is not None
    assert problem.startswith("SHELFCOUNT_SHEETS_WORKSHEET: ") and "'day'" in problem
    secret = load_settings({"SHELFCOUNT_TRYTON_URL": "http://127.0.0.1:9",
                            "SHELFCOUNT_TRYTON_DB": "db", "SHELFCOUNT_TRYTON_USER": "u",
                            "SHELFCOUNT_TRYTON_PASSWORD": "hunter2"}, data_dir=tmp_path)
    (tryton,) = build_sinks(secret, lambda _: [], only="tryton")
    assert "hunter2" not in repr(tryton.__dict__)  # the password is not in the sink's repr
    with pytest.raises(ValueError, match="SHELFCOUNT_VARIANCE_PCT"):
        Thresholds.from_settings(load_settings({"SHELFCOUNT_VARIANCE_PCT": "-3"}))


def test_reorder_point_comes_from_the_catalog(tmp_path: Path, webhook: Any) -> None:
    from gateway.catalog import import_catalog

    url, received, _ = webhook
    data = tmp_path / "data"
    import_catalog(Path(__file__).parent.parent / "gateway" / "demo" / "catalog.csv", data)
    settings = load_settings({"SHELFCOUNT_ALERT_WEBHOOK": url}, data_dir=data)
    bays = Bays.open(tmp_path / "store.db")
    worker = OutboxWorker(bays.store, build_sinks(settings, bays.store.session_rows))
    # SKU-10001's Reorder_Point is 20 in the demo catalog; SKU-10004's is 6.
    bays.confirm("A-01-1", [row("A-01-1", "SKU-10001", 15), row("A-01-1", "SKU-10004", 7)])
    assert worker.run_once() == 1
    assert [(ln["SKU"], ln["Flag"]) for ln in received[0][0]["lines"]] == \
        [("SKU-10001", "Low stock")]


def test_worker_thread_delivers_when_woken_and_stops(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    bays = Bays.open(tmp_path / "store.db")
    worker = OutboxWorker(bays.store, build_sinks(_folder_settings(tmp_path, drop),
                                                  bays.store.session_rows), poll_s=60)
    worker.start()
    assert worker.running
    try:
        bays.confirm("A-01-1", [row("A-01-1", "SKU-10001", 12)])
        worker.wake()
        for _ in range(100):
            if bays.delivered("folder"):
                break
            threading.Event().wait(0.05)
        assert bays.delivered("folder") == 1
    finally:
        worker.stop()
    assert not worker.running


def test_a_reopened_bay_is_in_the_drop_folder_once_with_its_new_rows(tmp_path: Path) -> None:
    """Issue 12: a bay a manager reopened and confirmed again replaces its first version in the
    session's files (it was listed twice), and the ERP files say it was revised."""
    drop = tmp_path / "drop"
    drop.mkdir()
    settings = _folder_settings(tmp_path, drop)
    bays = Bays.open(tmp_path / "store.db")
    worker = OutboxWorker(bays.store, build_sinks(settings, bays.store.session_rows))
    first = bays.confirm("A-01-1", [row("A-01-1", "SKU-10001", 12)])
    bays.confirm("A-01-2", [row("A-01-2", "SKU-10002", 3)])
    assert worker.run_once() == 2
    manager, _ = bays.store.add_device("manager-1", "manager")
    (copy,) = bays.store.reopen(first, manager)
    bays.store.finish_count(copy.id, {"rows": [row("A-01-1", "SKU-10001", 15)]})
    bays.store.confirm_count(copy.id, manager)
    assert worker.run_once() == 1
    (counts_file,) = [p for p in drop.glob("*.csv")
                      if not p.stem.endswith(("_counting", "_adjustment"))]
    with open(counts_file, newline="", encoding="utf-8") as fh:
        lines = list(csv.DictReader(fh))
    assert sorted((r["SKU"], r["Quantity_Counted"]) for r in lines) == [
        ("SKU-10001", "15"), ("SKU-10002", "3")]
    (sap_file,) = drop.glob("*_sap_b1_counting.csv")
    with open(sap_file, newline="", encoding="utf-8") as fh:
        sap = {r["ItemCode"]: r for r in csv.DictReader(fh)}
    assert sap["SKU-10001"]["CountedQuantity"] == "15"
    assert "reopened" in sap["SKU-10001"]["Remarks"] and "reopened" not in sap[
        "SKU-10002"]["Remarks"]
