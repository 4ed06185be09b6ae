"""Alert webhook sink: flagged lines of a bay POSTed as JSON to SHELFCOUNT_ALERT_WEBHOOK.

Only bays with at least one flagged line (variance, low stock, out of stock; see
:mod:`gateway.sinks.variance`) or a shelf audit finding someone must act on (``misplaced``
stock, a ``missing`` SKU; listed under ``findings``) produce a call. A webhook cannot be read
back, so exactly-once is the receiver's part: every call carries ``Idempotency-Key: <count
id>`` and the same key in the body, and a retry sends the identical document.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import requests
from pydantic import Field

from .base import Entry, SinkError, deliver_each
from .plugin import SinkContext, SinkPlugin, SinkSettings
from .variance import Thresholds, assess_entry

SystemQuantities = Callable[[Entry], dict[tuple[str, str], Decimal]]
ALERT_FINDINGS = ("misplaced", "missing")
ReorderPoint = Callable[[str], int | None]


class AlertSettings(SinkSettings):
    webhook: str = Field(alias="alert_webhook",
                         description="URL receiving a JSON POST for flagged lines")


class WebhookSink:
    """POSTs alerts for flagged lines."""

    name = "alerts"

    def __init__(self, url: str, *, thresholds: Thresholds | None = None,
                 reorder_point: ReorderPoint | None = None,
                 system_quantities: SystemQuantities | None = None,
                 timeout_s: float = 15.0) -> None:
        self.url = url
        self.thresholds = thresholds or Thresholds()
        self.reorder_point = reorder_point or (lambda sku: None)
        self.system_quantities = system_quantities
        self.timeout_s = timeout_s
        self._http = requests.Session()

    @classmethod
    def from_config(cls, config: AlertSettings, context: SinkContext) -> WebhookSink:
        return cls(config.webhook, thresholds=Thresholds.from_settings(context.settings),
                   reorder_point=context.reorder_point,
                   system_quantities=context.system_quantities)

    def payload(self, entry: Entry) -> dict[str, Any] | None:
        """The alert document for a bay, None when nothing is flagged."""
        system = self.system_quantities(entry) if self.system_quantities else None
        lines = [{**row, **line.columns()}
                 for row, line in assess_entry(entry, system, self.reorder_point,
                                               self.thresholds) if line.flagged]
        findings = [f for f in entry.findings if f.get("type") in ALERT_FINDINGS]
        if not lines and not findings:
            return None
        return {"type": "shelfcount.alert", "count_id": entry.count_id,
                "session": entry.session_id, "walker": entry.walker,
                "location": entry.location, "confirmed_at": entry.created_at.isoformat(),
                "lines": lines, "findings": findings}

    def deliver(self, entry: Entry) -> None:
        body = self.payload(entry)
        if body is None:
            return
        try:
            resp = self._http.post(self.url, json=body, timeout=self.timeout_s,
                                   headers={"Idempotency-Key": entry.count_id})
        except requests.RequestException as exc:
            raise SinkError(f"alert webhook unreachable: {type(exc).__name__}") from exc
        if resp.status_code == 429 or resp.status_code >= 500:
            raise SinkError(f"alert webhook answered HTTP {resp.status_code}")
        if resp.status_code >= 300:
            raise SinkError(f"alert webhook refused the alert: HTTP {resp.status_code}",
                            transient=False)

    def deliver_batch(self, entries: Sequence[Entry]) -> list[Exception | None]:
        return deliver_each(self, entries)

    def check(self) -> str | None:
        if not self.url.startswith(("http://", "https://")):
            return f"SHELFCOUNT_ALERT_WEBHOOK {self.url!r} is not an http(s) URL"
        try:
            self._http.head(self.url, timeout=self.timeout_s, allow_redirects=True)
        except requests.RequestException as exc:
            return f"alert webhook {self.url} unreachable: {type(exc).__name__}"
        return None


PLUGIN = SinkPlugin("alerts", AlertSettings, WebhookSink.from_config)
