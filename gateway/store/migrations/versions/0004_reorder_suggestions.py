"""Reorder suggestions: what the forecast says to buy, the manager's decision, and the ERP
request an approval becomes (delivered through its own retry schedule, like the outbox); the
expiry date of imported past counts (expiry risk); shipments out of stock (consumption that
is not shrinkage).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reorder_suggestions",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("sku", sa.Text(), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("facts_json", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Text(), nullable=False),
        sa.Column("decided_by", sa.Text()),
        sa.Column("decided_at", sa.Text()),
        sa.Column("note", sa.Text()),
        sa.Column("erp_attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("erp_retry_at", sa.Text()),
        sa.Column("erp_done_at", sa.Text()),
        sa.Column("erp_error", sa.Text()),
        sa.Column("erp_reference", sa.Text()),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("reorder_by_key", "reorder_suggestions", ["sku", "location", "state"])
    # At most one open suggestion per SKU and bin, even when two managers refresh at once.
    op.create_index("reorder_one_open", "reorder_suggestions", ["sku", "location"], unique=True,
                    sqlite_where=sa.text("state = 'open'"),
                    postgresql_where=sa.text("state = 'open'"))
    with op.batch_alter_table("stock_history") as batch:
        batch.add_column(sa.Column("expires_on", sa.Text()))
    op.create_table(
        "stock_shipments",
        sa.Column("sku", sa.Text(), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("shipped_at", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("sku", "location", "shipped_at", "source"),
    )


def downgrade() -> None:
    op.drop_table("stock_shipments")
    with op.batch_alter_table("stock_history") as batch:
        batch.drop_column("expires_on")
    op.drop_index("reorder_one_open", table_name="reorder_suggestions")
    op.drop_index("reorder_by_key", table_name="reorder_suggestions")
    op.drop_table("reorder_suggestions")
