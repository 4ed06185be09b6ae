"""Count leases: which gateway replica is counting a stored photo, and until when (another
replica takes the photo over once the lease has run out: its holder died).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("counts") as batch:
        batch.add_column(sa.Column("lease_owner", sa.Text()))
        batch.add_column(sa.Column("lease_until", sa.Text()))


def downgrade() -> None:
    with op.batch_alter_table("counts") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("lease_owner")
