"""Auto top-up: per-org settings and saved payment method, and the charge job queue.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "auto_top_ups",
        sa.Column("org_id", sa.Uuid(), primary_key=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("threshold", sa.BigInteger(), nullable=False, comment="credits"),
        sa.Column("target", sa.BigInteger(), nullable=False, comment="credits"),
        sa.Column("monthly_cap", sa.BigInteger(), nullable=False, comment="minor currency units"),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("payment_method_id", sa.String(255)),
        sa.Column("customer_id", sa.String(255)),
        sa.Column(
            "armed",
            sa.Boolean(),
            nullable=False,
            server_default=sa.text("true"),
            comment="false from a charge until a refill",
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint("threshold >= 0 AND target > threshold", name="ck_auto_top_ups_levels"),
        sa.CheckConstraint("monthly_cap >= 0", name="ck_auto_top_ups_cap"),
    )
    op.create_table(
        "auto_top_up_charges",
        sa.Column("id", sa.Uuid(), primary_key=True, comment="= purchases.id"),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False, comment="minor currency units"),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("credits", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column(
            "run_after", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("payment_intent_id", sa.String(255)),
        sa.Column("failure", sa.String(64)),
        sa.Column(
            "crossed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint(
            "status IN ('queued', 'succeeded', 'failed')", name="ck_auto_top_up_charges_status"
        ),
    )
    op.create_index(
        "ix_auto_top_up_charges_due",
        "auto_top_up_charges",
        ["run_after"],
        postgresql_where=sa.text("status = 'queued'"),
    )
    op.create_index("ix_auto_top_up_charges_org", "auto_top_up_charges", ["org_id", "id"])


def downgrade() -> None:
    op.drop_table("auto_top_up_charges")
    op.drop_table("auto_top_ups")
