"""The contract every sink follows, and the error it raises when a delivery has to wait."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol


class Entry(Protocol):
    """One confirmed bay as the outbox hands it out (gateway.store.types.OutboxEntry)."""

    @property
    def id(self) -> str: ...
    @property
    def count_id(self) -> str: ...
    @property
    def session_id(self) -> str: ...
    @property
    def walker(self) -> str: ...
    @property
    def location(self) -> str | None: ...
    @property
    def rows(self) -> list[dict[str, Any]]: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def revises(self) -> str | None: ...  # the entry a reopened bay's re-confirmation replaces
    @property
    def findings(self) -> list[dict[str, Any]]: ...  # shelf audit, with Photo and Location


# The shelf audit's findings as the sinks write them (a "Findings" worksheet, the drop
# folder's *_findings.csv): one line per finding, its box in pixels of the photo named.
FINDING_COLUMNS = ("Location", "Photo", "Type", "X0", "Y0", "X1", "Y1", "SKU", "Expected_SKU",
                   "Confidence")


def finding_cells(finding: dict[str, Any]) -> list[Any]:
    """One finding as FINDING_COLUMNS' values."""
    box = list(finding.get("box") or []) + [""] * 4
    return [finding.get("Location", ""), finding.get("Photo", ""), finding.get("type", ""),
            *box[:4], finding.get("sku", ""), finding.get("expected_sku", ""),
            finding.get("confidence", "")]


class SinkError(Exception):
    """A delivery that did not happen; the entry stays in the outbox and is tried again.

    ``transient`` errors (destination down, quota) are retried on the exponential schedule;
    the others (a product missing in the ERP) need a person, so they are retried at the
    longest interval until someone fixes the data. ``retry_after`` is a server's own hint.
    """

    def __init__(self, message: str, *, transient: bool = True,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after


class Sink(Protocol):
    """A destination for confirmed bays.

    ``deliver`` must be idempotent: delivering an entry that already arrived (the worker died
    after sending, before recording it) changes nothing. ``deliver_batch`` lets a sink send
    several entries in one round trip (Sheets quotas count requests); it returns one outcome
    per entry, None for delivered. ``check`` returns None when the sink is usable, else one
    line saying what is wrong (``shelfcount doctor``).
    """

    name: str

    def deliver(self, entry: Entry) -> None: ...

    def deliver_batch(self, entries: Sequence[Entry]) -> list[Exception | None]: ...

    def check(self) -> str | None: ...


def deliver_each(sink: Sink, entries: Sequence[Entry]) -> list[Exception | None]:
    """``deliver_batch`` for sinks with nothing to gain from batching: one by one."""
    outcomes: list[Exception | None] = []
    for entry in entries:
        try:
            sink.deliver(entry)
        except Exception as exc:  # noqa: BLE001 - reported per entry, the worker decides
            outcomes.append(exc)
        else:
            outcomes.append(None)
    return outcomes
