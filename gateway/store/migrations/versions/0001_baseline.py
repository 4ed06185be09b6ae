"""Baseline: the schema as the store left it before Alembic (its "schema_version" 4).

Works on an empty database and on one made by earlier gateways: tables and indexes are created
if absent, and a database of schema_version 1, 2 or 3 gains the columns those versions lack
(all text). ``meta.schema_version`` stays for older tools reading it; from here on the
revision in ``alembic_version`` is the truth.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

PRE_ALEMBIC_VERSION = "4"

TABLES = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS devices (
        id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, role TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, last_seen TEXT,
        revoked_at TEXT, token_at TEXT)""",
    """CREATE TABLE IF NOT EXISTS sessions (
        id TEXT PRIMARY KEY, device_id TEXT NOT NULL REFERENCES devices(id),
        walker TEXT NOT NULL, label TEXT, created_at TEXT NOT NULL, confirmed_at TEXT)""",
    """CREATE TABLE IF NOT EXISTS counts (
        id TEXT PRIMARY KEY, session_id TEXT NOT NULL REFERENCES sessions(id),
        device_id TEXT NOT NULL REFERENCES devices(id), client_id TEXT NOT NULL,
        source TEXT NOT NULL, location TEXT, photo_hash TEXT NOT NULL,
        photo_bytes INTEGER NOT NULL, status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0, error_code TEXT, error_message TEXT,
        result_json TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
        finished_at TEXT, confirmed_at TEXT, confirmed_by TEXT, photo_purged_at TEXT,
        bay_id TEXT, replaces TEXT, part_of TEXT, superseded_by TEXT, location_choice TEXT,
        recount_note TEXT, recount_by TEXT, recount_at TEXT,
        UNIQUE (device_id, client_id))""",
    """CREATE TABLE IF NOT EXISTS corrections (
        id TEXT PRIMARY KEY, count_id TEXT NOT NULL REFERENCES counts(id),
        location TEXT, sku TEXT NOT NULL, model_quantity INTEGER, quantity INTEGER NOT NULL,
        row_json TEXT NOT NULL, by_device TEXT NOT NULL, by_name TEXT NOT NULL,
        corrected_at TEXT NOT NULL, row_condition TEXT, client_id TEXT)""",
    """CREATE TABLE IF NOT EXISTS outbox (
        id TEXT PRIMARY KEY, count_id TEXT NOT NULL UNIQUE REFERENCES counts(id),
        session_id TEXT NOT NULL, walker TEXT NOT NULL, location TEXT,
        rows_json TEXT NOT NULL, created_at TEXT NOT NULL, revises TEXT)""",
    """CREATE TABLE IF NOT EXISTS outbox_delivery (
        entry_id TEXT NOT NULL REFERENCES outbox(id), sink TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0, delivered_at TEXT, last_error TEXT,
        retry_at TEXT, PRIMARY KEY (entry_id, sink))""",
)

# Columns schema_version 1, 2 and 3 databases lack (table, column), all text.
ADDED_IN_2 = (("corrections", "row_condition"), ("corrections", "client_id"))
ADDED_IN_3 = (
    *(("counts", column)
      for column in ("bay_id", "replaces", "part_of", "superseded_by", "location_choice",
                     "recount_note", "recount_by", "recount_at")),
    ("outbox", "revises"), ("devices", "last_seen"), ("devices", "revoked_at"),
)
ADDED_IN_4 = (("devices", "token_at"),)
MISSING_FROM = {"1": ADDED_IN_2 + ADDED_IN_3 + ADDED_IN_4, "2": ADDED_IN_3 + ADDED_IN_4,
                "3": ADDED_IN_4}

INDEXES = (
    "CREATE INDEX IF NOT EXISTS sessions_device ON sessions(device_id, created_at)",
    "CREATE INDEX IF NOT EXISTS counts_session ON counts(session_id, created_at)",
    "CREATE INDEX IF NOT EXISTS counts_status ON counts(status)",
    "CREATE INDEX IF NOT EXISTS counts_photo ON counts(photo_hash)",
    "CREATE INDEX IF NOT EXISTS corrections_count ON corrections(count_id)",
    # NULL client ids (corrections sent without one) never collide.
    "CREATE UNIQUE INDEX IF NOT EXISTS corrections_client ON corrections(count_id, client_id)",
    "CREATE INDEX IF NOT EXISTS counts_bay ON counts(bay_id)",
)


def upgrade() -> None:
    bind = op.get_bind()
    for statement in TABLES:
        bind.exec_driver_sql(statement)
    found = bind.execute(sa.text("SELECT value FROM meta WHERE key = 'schema_version'")).scalar()
    columns = {t: {c["name"] for c in sa.inspect(bind).get_columns(t)}
               for t in ("devices", "counts", "corrections", "outbox")}
    for table, column in MISSING_FROM.get(str(found), ()):
        if column not in columns[table]:
            op.add_column(table, sa.Column(column, sa.Text()))
    for statement in INDEXES:
        bind.exec_driver_sql(statement)
    if found is None:
        bind.execute(sa.text("INSERT INTO meta (key, value) VALUES ('schema_version', :v)"),
                     {"v": PRE_ALEMBIC_VERSION})
    else:
        bind.execute(sa.text("UPDATE meta SET value = :v WHERE key = 'schema_version'"),
                     {"v": PRE_ALEMBIC_VERSION})


def downgrade() -> None:
    raise NotImplementedError("the baseline is not undone: restore a backup instead")
