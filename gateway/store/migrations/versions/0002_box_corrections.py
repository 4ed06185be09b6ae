"""Box corrections: a photo's item boxes as a person corrected them.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "box_corrections",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("count_id", sa.Text(), sa.ForeignKey("counts.id"), nullable=False),
        sa.Column("boxes_json", sa.Text(), nullable=False),
        sa.Column("by_device", sa.Text(), nullable=False),
        sa.Column("by_name", sa.Text(), nullable=False),
        sa.Column("corrected_at", sa.Text(), nullable=False),
        sa.Column("client_id", sa.Text()),
    )
    op.create_index("box_corrections_count", "box_corrections", ["count_id", "corrected_at"])
    op.create_index("box_corrections_client", "box_corrections", ["count_id", "client_id"],
                    unique=True)


def downgrade() -> None:
    op.drop_table("box_corrections")
