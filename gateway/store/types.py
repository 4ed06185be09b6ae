"""Records the store hands out. Plain frozen dataclasses so callers never hold a DB cursor."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

ROLES: tuple[str, ...] = ("walker", "manager", "camera")

# Life of a count: queued -> processing -> done | failed; "waiting" = Triton was unreachable,
# the photo is kept and retried when it answers again.
STATUSES: tuple[str, ...] = ("queued", "processing", "waiting", "done", "failed")
UNFINISHED: tuple[str, ...] = ("queued", "processing", "waiting")


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_ts(moment: datetime) -> str:
    """Timestamp text: always UTC, always microseconds, so text order == time order."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def from_ts(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


class StoreError(Exception):
    """A request the store refuses, with a stable code (``not_found``, ``conflict`` ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Device:
    """A phone, handheld, fixed camera or manager that holds a token."""

    id: str
    name: str
    role: str
    created_at: datetime
    last_seen: datetime | None = None
    revoked_at: datetime | None = None  # revoked devices keep their history, lose their token
    token_at: datetime | None = None  # when its current token was issued (None: at creation)

    def token_expires(self, ttl_days: float) -> datetime | None:
        """When its token stops working under SHELFCOUNT_TOKEN_TTL_DAYS (None: never)."""
        if ttl_days <= 0:
            return None
        return (self.token_at or self.created_at) + timedelta(days=ttl_days)

    @property
    def is_manager(self) -> bool:
        return self.role == "manager"


@dataclass(frozen=True)
class Session:
    """One walker's pass over some locations."""

    id: str
    device_id: str
    walker: str
    label: str | None
    created_at: datetime
    confirmed_at: datetime | None


@dataclass(frozen=True)
class Correction:
    """A person's change to one line; the model's figure is kept next to it."""

    id: str
    count_id: str
    location: str | None
    sku: str
    model_quantity: int | None  # None: the line was added by the person
    quantity: int
    row: dict[str, Any]
    by_device: str
    by_name: str
    corrected_at: datetime
    condition: str | None = None  # the Condition the person set (e.g. "Damaged"); None: kept
    client_id: str | None = None  # the client's correction id (re-sends are recorded once)

    def to_json(self) -> dict[str, Any]:
        return {
            "location": self.location,
            "sku": self.sku,
            "model_quantity": self.model_quantity,
            "quantity": self.quantity,
            "condition": self.condition,
            "correction_id": self.client_id,
            "expiry": self.row.get("Expiration_Date", ""),
            "removed": bool(self.row.get("_removed")),
            "split": self.row.get("_split") or None,
            "by": self.by_name,
            "at": to_ts(self.corrected_at),
        }


@dataclass(frozen=True)
class BoxEdit:
    """A photo's item boxes as a person corrected them (the complete set)."""

    id: str
    count_id: str
    boxes: list[list[Any]]  # [x0, y0, x1, y1, sku] in pixels of the stored photo
    by_device: str
    by_name: str
    corrected_at: datetime
    client_id: str | None = None
    findings: list[dict[str, Any]] | None = None  # the audit's, from these boxes

    def to_json(self) -> dict[str, Any]:
        return {"boxes": self.boxes, "by": self.by_name, "at": to_ts(self.corrected_at),
                "correction_id": self.client_id}


@dataclass(frozen=True)
class CountRecord:
    """One stored photo and what became of it."""

    id: str
    session_id: str
    device_id: str
    client_id: str
    source: str
    location: str | None
    photo_hash: str
    photo_bytes: int
    status: str
    attempts: int
    error_code: str | None
    error_message: str | None
    result: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    confirmed_at: datetime | None
    confirmed_by: str | None
    corrections: tuple[Correction, ...] = field(default_factory=tuple)
    # One bay (session + location) has one current photo, or several parts of a wide bay.
    bay_id: str | None = None  # set when counted; the first photo's count id
    replaces: str | None = None  # count id of the photo this retake replaces
    part_of: str | None = None  # count id of a photo of the bay this one is another part of
    superseded_by: str | None = None  # the count that stands instead (kept, not counted)
    location_choice: str | None = None  # the walker's answer to a location conflict
    recount_note: str | None = None  # a manager sent the bay back for a recount, saying why
    recount_by: str | None = None
    recount_at: datetime | None = None
    box_edit: BoxEdit | None = None  # the newest box correction, if a person made one
    crops_hash: str | None = None  # full-resolution code crops sent beside a reduced photo
    crops: dict[str, Any] | None = None  # {"full": [w, h], "parts": [{"box", "bytes"}]}

    @property
    def model_rows(self) -> list[dict[str, Any]]:
        return list((self.result or {}).get("rows") or [])

    @property
    def findings(self) -> list[dict[str, Any]]:
        """The shelf audit's findings: from a person's corrected boxes once there are, else
        the model's (a count stored before the audit existed has none)."""
        if self.box_edit is not None and self.box_edit.findings is not None:
            return list(self.box_edit.findings)
        return list((self.result or {}).get("findings") or [])

    @property
    def is_current(self) -> bool:
        """Counted in its bay: not replaced by a retake."""
        return self.superseded_by is None

    @property
    def rows(self) -> list[dict[str, Any]]:
        """What the walker approves: the model's rows, corrections, the chosen location."""
        from .rows import effective_rows

        return effective_rows(self.model_rows, self.corrections, self.location_choice)


@dataclass(frozen=True)
class OutboxEntry:
    """The rows of one confirmed bay, waiting to be delivered to each sink.

    Written in the same transaction that confirms the bay, so a confirmation can never be
    lost between the database and a sink. ``id`` is stable and unique: sinks use it (or
    ``count_id``) as their idempotency key. ``rows`` are the ten CSV columns
    (gateway.schema.COLUMNS) after the walker's corrections.
    """

    id: str
    count_id: str
    session_id: str
    walker: str
    location: str | None
    rows: list[dict[str, Any]]
    created_at: datetime
    revises: str | None = None  # the entry this one replaces (a reopened, re-confirmed bay)
    # the bay's shelf audit findings: each one's keys plus Photo (its count id) and Location
    findings: list[dict[str, Any]] = field(default_factory=list)
