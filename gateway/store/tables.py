"""The count database's tables, declared once (SQLAlchemy Core) for SQLite and PostgreSQL.

Ids and timestamps are text (ISO 8601, UTC, ``types.to_ts``) so both back-ends sort and
compare them alike. The schema changes only through Alembic revisions (``migrations/``); this
module is what the newest revision leaves behind, and a test keeps the two equal.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData()


def _text(name: str, *args: object, **kwargs: object) -> Column:
    return Column(name, Text, *args, **kwargs)  # type: ignore[arg-type]


meta = Table(
    "meta", metadata,
    _text("key", primary_key=True),
    _text("value", nullable=False),
)

devices = Table(
    "devices", metadata,
    _text("id", primary_key=True),
    _text("name", nullable=False, unique=True),
    _text("role", nullable=False),
    _text("token_hash", nullable=False, unique=True),
    _text("created_at", nullable=False),
    _text("last_seen"),
    _text("revoked_at"),
    _text("token_at"),
)

sessions = Table(
    "sessions", metadata,
    _text("id", primary_key=True),
    _text("device_id", ForeignKey("devices.id"), nullable=False),
    _text("walker", nullable=False),
    _text("label"),
    _text("created_at", nullable=False),
    _text("confirmed_at"),
    Index("sessions_device", "device_id", "created_at"),
)

counts = Table(
    "counts", metadata,
    _text("id", primary_key=True),
    _text("session_id", ForeignKey("sessions.id"), nullable=False),
    _text("device_id", ForeignKey("devices.id"), nullable=False),
    _text("client_id", nullable=False),
    _text("source", nullable=False),
    _text("location"),
    _text("photo_hash", nullable=False),
    Column("photo_bytes", Integer, nullable=False),
    _text("status", nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    _text("error_code"),
    _text("error_message"),
    _text("result_json"),
    _text("created_at", nullable=False),
    _text("updated_at", nullable=False),
    _text("finished_at"),
    _text("confirmed_at"),
    _text("confirmed_by"),
    _text("photo_purged_at"),
    _text("bay_id"),
    _text("replaces"),
    _text("part_of"),
    _text("superseded_by"),
    _text("location_choice"),
    _text("recount_note"),
    _text("recount_by"),
    _text("recount_at"),
    _text("crops_hash"),  # code crops sent beside a reduced photo (0005): one photo-store file
    _text("crops_json"),  # and where each lies in the full photo: [{"box", "bytes"}], "full"
    _text("lease_owner"),  # the gateway replica counting it (0007, gateway/store/leases_repo)
    _text("lease_until"),  # and until when; past it, another replica may take it over
    UniqueConstraint("device_id", "client_id"),
    Index("counts_session", "session_id", "created_at"),
    Index("counts_status", "status"),
    Index("counts_photo", "photo_hash"),
    Index("counts_bay", "bay_id"),
)

corrections = Table(
    "corrections", metadata,
    _text("id", primary_key=True),
    _text("count_id", ForeignKey("counts.id"), nullable=False),
    _text("location"),
    _text("sku", nullable=False),
    Column("model_quantity", Integer),
    Column("quantity", Integer, nullable=False),
    _text("row_json", nullable=False),
    _text("by_device", nullable=False),
    _text("by_name", nullable=False),
    _text("corrected_at", nullable=False),
    _text("row_condition"),
    _text("client_id"),
    Index("corrections_count", "count_id"),
    # NULL client ids (corrections sent without one) never collide.
    Index("corrections_client", "count_id", "client_id", unique=True),
)

outbox = Table(
    "outbox", metadata,
    _text("id", primary_key=True),
    _text("count_id", ForeignKey("counts.id"), nullable=False, unique=True),
    _text("session_id", nullable=False),
    _text("walker", nullable=False),
    _text("location"),
    _text("rows_json", nullable=False),
    _text("created_at", nullable=False),
    _text("revises"),
    _text("findings_json"),  # the bay's shelf audit findings, per photo (0006)
)

outbox_delivery = Table(
    "outbox_delivery", metadata,
    _text("entry_id", ForeignKey("outbox.id"), nullable=False),
    _text("sink", nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    _text("delivered_at"),
    _text("last_error"),
    _text("retry_at"),
    _text("lease_owner"),  # the gateway replica delivering it now (0008, outbox_repo)
    _text("lease_until"),  # and until when; past it, another replica may deliver it
    PrimaryKeyConstraint("entry_id", "sink"),
)

# One row per zone and scheduled minute of the fixed cameras (0008, cameras_repo): the replica
# that inserted it fetches the cameras; a run whose holder stopped renewing is finished by
# another in the same session.
camera_runs = Table(
    "camera_runs", metadata,
    _text("zone", nullable=False),
    _text("minute", nullable=False),
    _text("session_id"),
    _text("lease_owner"),
    _text("lease_until"),
    _text("started_at", nullable=False),
    _text("done_at"),
    PrimaryKeyConstraint("zone", "minute"),
)

# A photo's item boxes as a person corrected them (the complete set each time; the newest
# counts); the model's own boxes stay in the count's result.
box_corrections = Table(
    "box_corrections", metadata,
    _text("id", primary_key=True),
    _text("count_id", ForeignKey("counts.id"), nullable=False),
    _text("boxes_json", nullable=False),
    _text("by_device", nullable=False),
    _text("by_name", nullable=False),
    _text("corrected_at", nullable=False),
    _text("client_id"),
    _text("findings_json"),  # the audit's findings from these boxes (0006)
    Index("box_corrections_count", "count_id", "corrected_at"),
    Index("box_corrections_client", "count_id", "client_id", unique=True),
)


# Stock history (issue 16): past counts imported from CSV files (the store's own confirmed bays
# join them from the outbox), and receipts into stock between counts.
stock_history = Table(
    "stock_history", metadata,
    _text("sku", nullable=False),
    _text("location", nullable=False),
    Column("quantity", Integer, nullable=False),
    _text("counted_at", nullable=False),
    _text("source", nullable=False),
    _text("expires_on"),  # revision 0004: the count's Expiration_Date, when there is one
    PrimaryKeyConstraint("sku", "location", "counted_at"),
)

stock_receipts = Table(
    "stock_receipts", metadata,
    _text("sku", nullable=False),
    _text("location", nullable=False),
    Column("quantity", Integer, nullable=False),
    _text("received_at", nullable=False),
    _text("source", nullable=False),
    PrimaryKeyConstraint("sku", "location", "received_at", "source"),
)

stock_shipments = Table(
    "stock_shipments", metadata,
    _text("sku", nullable=False),
    _text("location", nullable=False),
    Column("quantity", Integer, nullable=False),
    _text("shipped_at", nullable=False),
    _text("source", nullable=False),
    PrimaryKeyConstraint("sku", "location", "shipped_at", "source"),
)

# Reorder suggestions (issue 16): open ones follow the forecast; an approved one is delivered to
# the ERP as a purchase request on its own retry schedule (erp_*).
reorder_suggestions = Table(
    "reorder_suggestions", metadata,
    _text("id", primary_key=True),
    _text("sku", nullable=False),
    _text("location", nullable=False),
    Column("quantity", Integer, nullable=False),
    _text("facts_json", nullable=False),
    _text("state", nullable=False),
    _text("created_at", nullable=False),
    _text("updated_at", nullable=False),
    _text("decided_by"),
    _text("decided_at"),
    _text("note"),
    Column("erp_attempts", Integer, nullable=False, server_default="0"),
    _text("erp_retry_at"),
    _text("erp_done_at"),
    _text("erp_error"),
    _text("erp_reference"),
    Index("reorder_by_key", "sku", "location", "state"),
    Index("reorder_one_open", "sku", "location", unique=True,
          sqlite_where=text("state = 'open'"), postgresql_where=text("state = 'open'")),
)
