"""Code crops: full-resolution parts of a photo sent beside its reduced version on a slow
link (their bytes one file in the photo store, where they lie in a JSON list).

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


def downgrade() -> None:
    with op.batch_alter_table("counts") as batch:
        batch.drop_column("crops_json")
        batch.drop_column("crops_hash")
