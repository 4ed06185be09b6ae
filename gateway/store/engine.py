"""The database connection: one SQLAlchemy engine for a SQLite file or a PostgreSQL URL, the
transaction every store operation runs in, and the Alembic upgrade run on opening.

SQLite: WAL, synchronous=FULL (an acknowledged photo survives a power cut), foreign keys on,
and ``BEGIN IMMEDIATE`` so a transaction takes the write lock when it starts rather than
failing half-way. PostgreSQL: psycopg 3; ``schema`` puts every table in its own schema (the
tests run in isolation on a shared server). One lock serialises the gateway's transactions:
plenty for a few cores, and every multi-statement change (confirm + outbox) stays atomic.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Table, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_PG_MIGRATION_LOCK = 7_151_004  # advisory lock: two gateways opening one database migrate once


def insert_unless_present(conn: Connection, table: Table) -> Any:
    """An INSERT into ``table`` that skips rows whose key is already there (``ON CONFLICT DO
    NOTHING`` in both back-ends): two replicas writing the same row at once is not an error,
    and the second learns it lost (no row returned with ``.returning``)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


class Database:
    """Engine, transactions and schema upgrades for one database."""

    def __init__(self, target: str | Path, *, schema: str | None = None) -> None:
        """``target``: a ``postgresql://`` URL or a SQLite file path."""
        self.target = str(target)
        self.schema = schema
        self.is_postgres = self.target.startswith(("postgresql://", "postgres://"))
        if schema is not None and not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
            raise ValueError(f"bad schema name {schema!r}")
        self._lock = threading.RLock()
        self.engine = _pg_engine(self.target, schema) if self.is_postgres else \
            _sqlite_engine(Path(self.target))

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        """One transaction; everything inside commits together or not at all."""
        with self._lock, self.engine.begin() as conn:
            yield conn

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (idempotent)."""
        with self.tx() as conn:
            if self.is_postgres:
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                             {"key": _PG_MIGRATION_LOCK})
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def ping(self) -> bool:
        try:
            with self.tx() as conn:
                return conn.execute(text("SELECT 1")).scalar() == 1
        except Exception:  # noqa: BLE001 - health check reports, never raises
            return False

    def close(self) -> None:
        self.engine.dispose()

    def drop_schema(self) -> None:
        """Tests only: remove the PostgreSQL schema this database created."""
        if self.is_postgres and self.schema:
            with self.tx() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))


def _sqlite_engine(path: Path) -> Engine:
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(f"sqlite:///{path}",
                           connect_args={"check_same_thread": False, "timeout": 10.0})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # the driver opens no transactions of its own
        cursor = dbapi_conn.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON",
                       "busy_timeout=10000"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin_immediate(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _pg_engine(url: str, schema: str | None) -> Engine:
    url = re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", url)
    if schema is None:
        return create_engine(url, pool_pre_ping=True)
    with create_engine(url).begin() as conn:
        conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    return create_engine(url, pool_pre_ping=True,
                         connect_args={"options": f"-csearch_path={schema}"})
