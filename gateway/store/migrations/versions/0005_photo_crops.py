"""Code crops: full-resolution parts of a photo sent beside its reduced version on a slow
link (their bytes one file in the photo store, where they lie in a JSON list). And receipts and
shipments read twice from one Tryton move (a done move Tryton wrote again got a second row
under its new write time) are kept once: the first.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("counts") as batch:
        batch.add_column(sa.Column("crops_hash", sa.Text()))
        batch.add_column(sa.Column("crops_json", sa.Text()))
    for table, at in (("stock_receipts", "received_at"), ("stock_shipments", "shipped_at")):
        op.execute(f"""DELETE FROM {table} WHERE source LIKE 'tryton move %' AND EXISTS (
            SELECT 1 FROM {table} AS first WHERE first.sku = {table}.sku
            AND first.location = {table}.location AND first.source = {table}.source
            AND first.{at} < {table}.{at})""")


def downgrade() -> None:
    with op.batch_alter_table("counts") as batch:
        batch.drop_column("crops_json")
        batch.drop_column("crops_hash")
