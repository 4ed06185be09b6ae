"""The purchase worker: each approved reorder suggestion to the ERP as a purchase request.

Its own thread beside the outbox worker, with the same retry rules (exponential backoff with
jitter from the stored attempt count; a refusal that needs a person waits the longest delay),
reading the approvals the store keeps, so an approval made while Tryton is away is sent when
it is back, also after a restart.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from gateway.config import Settings
from gateway.sinks.worker import PollingWorker

log = logging.getLogger(__name__)


class PurchaseWorker(PollingWorker):
    """Sends due approvals through ``purchaser.request``; ``run_once`` for one pass."""

    thread_name = "purchase-worker"

    def __init__(self, store: Any, purchaser: Any, *, batch: int = 20, **timing: Any) -> None:
        super().__init__(**timing)
        self.store = store
        self.purchaser = purchaser
        self.batch = batch

    def run_once(self) -> int:
        done = 0
        for s in self.store.erp_due(self.clock(), self.batch):
            try:
                ref = self.purchaser.request(s, self.clock().date())
            except Exception as exc:  # noqa: BLE001 - one bad approval must not stop the rest
                delay = self.backoff_s(int(s.erp.get("attempts", 0)) + 1, exc)
                log.warning("purchase request for %s at %s failed (attempt %d), next try in "
                            "%.0f s: %s", s.sku, s.location, s.erp.get("attempts", 0) + 1,
                            delay, exc)
                self.store.erp_mark_failed(s.id, str(exc),
                                           self.clock() + timedelta(seconds=delay))
                continue
            self.store.erp_mark_done(s.id, ref, self.clock())
            done += 1
        return done


def tryton_client(settings: Settings) -> Any:
    """A Tryton JSON-RPC client when the Tryton sink is fully configured, else None."""
    from gateway.sinks.plugin import parse_settings
    from gateway.sinks.registry import plugin
    from gateway.sinks.tryton import TrytonClient

    tryton = plugin("tryton")
    if not tryton.is_on(settings) or tryton.missing(settings):
        return None
    config = parse_settings(tryton.settings_model, settings)
    return TrytonClient(config.url, config.db, config.user, config.password.get_secret_value())


def build_purchaser(settings: Settings) -> Any:
    """The Tryton purchaser when Tryton is fully configured, else None (approvals are kept
    and shown as not sent)."""
    from gateway.sinks.tryton_purchase import TrytonPurchaser

    client = tryton_client(settings)
    return TrytonPurchaser(client) if client is not None else None


def start_purchasing(settings: Settings, store: Any) -> PurchaseWorker | None:
    """The gateway's purchase worker thread, started; None without Tryton."""
    purchaser = build_purchaser(settings)
    return PurchaseWorker(store, purchaser).start() if purchaser is not None else None
