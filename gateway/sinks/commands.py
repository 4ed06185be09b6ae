"""CLI entry points: ``shelfcount export SESSION --to SINK`` and ``shelfcount doctor``."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from gateway.config import Settings

from .base import SinkError
from .registry import PLUGINS, SinkConfigError, build_sinks, configured, require, settings_table
from .worker import OutboxWorker

if TYPE_CHECKING:
    from gateway.store import Store


def _open_store(settings: Settings) -> Store:
    from gateway.store import open_store  # the store pulls in drivers the doctor never needs

    return open_store(settings)


def start_worker(settings: Settings, store: Store) -> OutboxWorker | None:
    """The gateway's outbox worker thread, started; None when no sink is configured."""
    sinks = build_sinks(settings, store.session_rows, session_findings=store.session_findings)
    if not sinks:
        return None
    return OutboxWorker(store, sinks, lease_s=float(settings.lease_s)).start()


def system_quantity_lookup(settings: Settings, store: Store) -> Any:
    """The ERP's (Tryton's) system quantities of a bay, for the manager's review; None when
    Tryton is not configured. A sink of its own: the outbox worker's is busy in its thread."""
    try:
        (sink,) = build_sinks(settings, store.session_rows, only="tryton")
    except (SinkConfigError, ValueError):
        return None
    return sink.system_quantities  # type: ignore[attr-defined]


def export_main(settings: Settings, session_id: str, target: str) -> int:
    """Re-send every confirmed bay of a session to one sink now.

    The sinks are idempotent, so bays already there are skipped and only missing ones land.
    Prints one line per bay that failed and a summary; exit 0 when all arrived.
    """
    try:
        require(settings, target)  # before opening (and maybe creating) the store
        store = _open_store(settings)
        (sink,) = build_sinks(settings, store.session_rows, only=target,
                              session_findings=store.session_findings)
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
    out: list[tuple[str, str | None]] = []
    for plugin in configured(settings):
        missing = plugin.missing(settings)
        if missing:
            out.append((plugin.name, f"missing {', '.join(missing)}"))
            continue
        try:
            (sink,) = build_sinks(settings, lambda session_id: [], only=plugin.name)
            out.append((plugin.name, sink.check()))
        except (SinkError, ValueError) as exc:
            out.append((plugin.name, str(exc)))
    return out


def doctor_main(settings: Settings) -> int:
    """One line per configured sink: ``name: ok`` or ``name: what is wrong``; exit 1 on any."""
    lines = doctor_lines(settings)
    if not lines:
        needs = "; ".join(f"{p.name}: {', '.join(p.missing(settings))}" for p in PLUGINS)
        print(f"no sinks configured (set, per sink, {needs})")
        return 0
    for name, problem in lines:
        print(f"{name}: {'ok' if problem is None else problem}")
    return 0 if all(problem is None for _, problem in lines) else 1


def sinks_main() -> int:
    """``shelfcount sinks``: every sink's settings as README's Markdown table."""
    print(settings_table())
    return 0
