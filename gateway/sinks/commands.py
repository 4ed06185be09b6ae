"""CLI entry points: ``shelfcount export SESSION --to SINK`` and ``shelfcount doctor``."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from gateway.config import Settings

from .base import SinkError
from .registry import (
    SINK_SETTINGS,
    SinkConfigError,
    build_sinks,
    configured,
    missing_settings,
    require,
)
from .worker import OutboxWorker

if TYPE_CHECKING:
    from gateway.store import Store


def _open_store(settings: Settings) -> Store:
    from gateway.store import open_store  # the store pulls in drivers the doctor never needs

    return open_store(settings)


def start_worker(settings: Settings, store: Store) -> OutboxWorker | None:
    """The gateway's outbox worker thread, started; None when no sink is configured."""
    sinks = build_sinks(settings, store.session_rows)
    if not sinks:
        return None
    return OutboxWorker(store, sinks).start()


def export_main(settings: Settings, session_id: str, target: str) -> int:
    """Re-send every confirmed bay of a session to one sink now.

    The sinks are idempotent, so bays already there are skipped and only missing ones land.
    Prints one line per bay that failed and a summary; exit 0 when all arrived.
    """
    try:
        require(settings, target)  # before opening (and maybe creating) the store
        store = _open_store(settings)
        (sink,) = build_sinks(settings, store.session_rows, only=target)
    except (SinkConfigError, ValueError) as exc:
        print(f"shelfcount export: {exc}", file=sys.stderr)
        return 2
    entries = store.outbox_entries(session_id)
    if not entries:
        print(f"shelfcount export: session {session_id} has no confirmed bays",
              file=sys.stderr)
        return 1
    outcomes = sink.deliver_batch(entries)
    failed = 0
    for entry, outcome in zip(entries, outcomes, strict=True):
        if outcome is None:
            store.outbox_mark_delivered(entry.id, sink.name)
        else:
            failed += 1
            print(f"shelfcount export: count {entry.count_id}: {outcome}", file=sys.stderr)
    print(f"{sink.name}: {len(entries) - failed} of {len(entries)} bays of session "
          f"{session_id} delivered")
    return 0 if failed == 0 else 1


def doctor_lines(settings: Settings) -> list[tuple[str, str | None]]:
    """(sink, problem or None) for every configured sink, in delivery order."""
    names = configured(settings)
    out: list[tuple[str, str | None]] = []
    complete = [n for n in names if not missing_settings(settings, n)]
    for name in names:
        missing = missing_settings(settings, name)
        if missing:
            out.append((name, f"missing {', '.join(missing)}"))
    for name in complete:
        try:
            (sink,) = build_sinks(settings, lambda session_id: [], only=name)
            out.append((name, sink.check()))
        except (SinkError, ValueError) as exc:
            out.append((name, str(exc)))
    order = list(SINK_SETTINGS)
    return sorted(out, key=lambda item: order.index(item[0]))


def doctor_main(settings: Settings) -> int:
    """One line per configured sink: ``name: ok`` or ``name: what is wrong``; exit 1 on any."""
    lines = doctor_lines(settings)
    if not lines:
        print("no sinks configured (set SHELFCOUNT_SHEETS_CREDENTIALS and _SPREADSHEET, "
              "SHELFCOUNT_TRYTON_URL/_DB/_USER/_PASSWORD, SHELFCOUNT_DROP_DIR or "
              "SHELFCOUNT_ALERT_WEBHOOK)")
        return 0
    for name, problem in lines:
        print(f"{name}: {'ok' if problem is None else problem}")
    return 0 if all(problem is None for _, problem in lines) else 1
