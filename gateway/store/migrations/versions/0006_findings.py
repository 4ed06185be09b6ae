"""Shelf audit findings: a person's corrected boxes keep the findings worked out from them,
and a confirmed bay's outbox entry carries its photos' findings to the sinks.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("box_corrections") as batch:
        batch.add_column(sa.Column("findings_json", sa.Text()))
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("findings_json", sa.Text()))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("findings_json")
    with op.batch_alter_table("box_corrections") as batch:
        batch.drop_column("findings_json")
