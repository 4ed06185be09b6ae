"""Work shared between gateway replicas beyond counting: a lease on each outbox delivery (one
replica delivers an entry to a sink at a time) and the camera runs (one replica fetches a
zone's cameras at a scheduled minute; another finishes a run whose holder died).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_delivery") as batch:
        batch.add_column(sa.Column("lease_owner", sa.Text()))
        batch.add_column(sa.Column("lease_until", sa.Text()))
    op.create_table(
        "camera_runs",
        sa.Column("zone", sa.Text(), nullable=False),
        sa.Column("minute", sa.Text(), nullable=False),
        sa.Column("session_id", sa.Text()),
        sa.Column("lease_owner", sa.Text()),
        sa.Column("lease_until", sa.Text()),
        sa.Column("started_at", sa.Text(), nullable=False),
        sa.Column("done_at", sa.Text()),
        sa.PrimaryKeyConstraint("zone", "minute"),
    )


def downgrade() -> None:
    op.drop_table("camera_runs")
    with op.batch_alter_table("outbox_delivery") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("lease_owner")
