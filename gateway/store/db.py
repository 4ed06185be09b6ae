"""The count store: devices, sessions, counts, corrections, confirmations and the outbox.

One class over one database (SQLite by default, PostgreSQL with ``SHELFCOUNT_DATABASE_URL``),
put together from one repository per aggregate: ``devices_repo`` (pairing, tokens),
``counts_repo`` (sessions, counts, bays, confirmation, retention), ``corrections_repo`` and
``outbox_repo``. Tables are SQLAlchemy Core (``tables.py``); the schema moves only by Alembic
revisions (``migrations/``), run when a store opens.
"""

from __future__ import annotations

from pathlib import Path

from .cameras_repo import CameraRunRepository
from .corrections_repo import CorrectionRepository
from .counts_repo import CountRepository
from .devices_repo import DeviceRepository, hash_token, new_id
from .engine import Database
from .leases_repo import LeaseRepository
from .outbox_repo import OutboxRepository
from .reorder_repo import ReorderRepository
from .stock_repo import StockRepository

__all__ = ["SCHEMA_VERSION", "Store", "hash_token", "new_id"]

# The pre-Alembic schema version (meta.schema_version) the baseline revision leaves, kept for
# tools that read it; the revision in alembic_version is what counts from now on.
SCHEMA_VERSION = "4"


class Store(DeviceRepository, CountRepository, CorrectionRepository, OutboxRepository,
            StockRepository, ReorderRepository, LeaseRepository, CameraRunRepository):
    """Thread-safe access to the count database (SQLite file or PostgreSQL URL)."""

    def __init__(self, target: str | Path, *, schema: str | None = None) -> None:
        """``target``: a ``postgresql://`` URL or a SQLite file path.

        ``schema`` (PostgreSQL only) puts every table in that schema, created if needed; the
        tests use it to run in isolation on a shared server.
        """
        self.db = Database(target, schema=schema)
        self.is_postgres = self.db.is_postgres
        self.db.migrate()

    def ping(self) -> bool:
        return self.db.ping()

    def close(self) -> None:
        self.db.close()

    def drop_schema(self) -> None:
        """Tests only: remove the PostgreSQL schema this store created."""
        self.db.drop_schema()
