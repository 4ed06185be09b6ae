"""Receipts and shipments kept in step with Tryton's stock moves (``shelfcount moves sync``
and, while the gateway runs with Tryton configured, every ``SHELFCOUNT_TRYTON_MOVES_POLL_S``);
with ``SHELFCOUNT_TRYTON_ORDER_POINTS=1`` Tryton's purchase order points follow the forecast at
the same time.

With Tryton there is no receipts or shipments file to import: what arrived in a bin and what
left it are Tryton's done moves. The store keeps where the last read got to, so each read asks
only for moves written since (events are keyed by move id: reading one twice adds nothing).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from gateway.config import Settings
from gateway.sinks.worker import PollingWorker

log = logging.getLogger(__name__)
CURSOR = "tryton-moves"


def sync_moves(store: Any, moves: Any) -> tuple[int, int]:
    """Read new done moves into the store: (receipts added, shipments added)."""
    raw = store.stock_cursor(CURSOR)
    batch = moves.read(datetime.fromisoformat(raw) if raw else None)
    added = store.add_receipts(batch.receipts), store.add_shipments(batch.shipments)
    if batch.cursor is not None:
        store.set_stock_cursor(CURSOR, batch.cursor.isoformat())
    return added


def sync_order_points(store: Any, catalog: Any, writer: Any) -> int:
    """Write Tryton's order points from today's forecast; returns how many."""
    from gateway.stock.forecast import forecast_table

    return writer.write(forecast_table(store, catalog, 28))


def build_order_points(settings: Settings) -> Any:
    """The order point writer when asked for and Tryton is configured, else None."""
    from gateway.sinks.tryton_order_points import TrytonOrderPoints
    from gateway.stock.purchasing import tryton_client

    client = tryton_client(settings) if settings.tryton_order_points else None
    return TrytonOrderPoints(client) if client is not None else None


def build_moves(settings: Settings) -> Any:
    """The Tryton move reader when Tryton is fully configured, else None."""
    from gateway.sinks.tryton_moves import TrytonMoves
    from gateway.stock.purchasing import tryton_client

    client = tryton_client(settings)
    return TrytonMoves(client) if client is not None else None


class MovesWorker(PollingWorker):
    """Syncs the moves every ``poll_s`` (an error is logged and the next poll tries again)."""

    thread_name = "tryton-moves"

    def __init__(self, store: Any, moves: Any, *, order_points: Any = None,
                 catalog: Any = None, **timing: Any) -> None:
        super().__init__(**timing)
        self.store, self.moves = store, moves
        self.order_points, self.catalog = order_points, catalog

    def run_once(self) -> int:
        try:
            receipts, shipments = sync_moves(self.store, self.moves)
            if self.order_points is not None:
                sync_order_points(self.store, self.catalog(), self.order_points)
        except Exception as exc:  # noqa: BLE001 - Tryton away: the next poll
            log.warning("syncing with Tryton's stock failed: %s", exc)
            return 0
        if receipts or shipments:
            log.info("from Tryton: %d receipts, %d shipments", receipts, shipments)
        return 0


def start_moves(settings: Settings, store: Any, catalog: Any) -> MovesWorker | None:
    """The moves worker, started, with Tryton configured (``catalog``: the live catalog)."""
    if settings.tryton_moves_poll_s <= 0:
        return None
    moves = build_moves(settings)
    if moves is None:
        return None
    worker = MovesWorker(store, moves, order_points=build_order_points(settings),
                         catalog=catalog, poll_s=float(settings.tryton_moves_poll_s))
    return worker.start()  # type: ignore[return-value]


def sync_main(settings: Settings) -> int:
    """``shelfcount moves sync``: one read now; exit 2 without Tryton, 3 when it is away."""
    import sys

    from gateway.sinks.base import SinkError
    from gateway.store import open_store

    moves = build_moves(settings)
    if moves is None:
        print("shelfcount moves sync: Tryton is not configured (SHELFCOUNT_TRYTON_URL, _DB, "
              "_USER, _PASSWORD)", file=sys.stderr)
        return 2
    from gateway.catalog import load_catalog

    store = open_store(settings)
    points = build_order_points(settings)
    try:
        receipts, shipments = sync_moves(store, moves)
        written = sync_order_points(store, load_catalog(settings.data_dir), points) \
            if points is not None else None
    except SinkError as exc:
        print(f"shelfcount moves sync: {exc}", file=sys.stderr)
        return 3
    finally:
        store.close()
    print(f"from Tryton: {receipts} receipts, {shipments} shipments added")
    if written is not None:
        print(f"to Tryton: {written} purchase order points written")
    return 0
