"""Purchases (credit packs through a payment provider) and applied provider events.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "purchases",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("pack_id", sa.String(64), nullable=False),
        sa.Column("credits", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False, comment="minor currency units"),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("checkout_session_id", sa.String(255), nullable=True, unique=True),
        sa.Column("payment_intent_id", sa.String(255), nullable=True, unique=True),
        sa.Column("ledger_entry_id", sa.Uuid(), nullable=True),
        sa.Column("refunded_credits", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'processing', 'paid', 'failed', 'expired')",
            name="ck_purchases_status",
        ),
        sa.CheckConstraint("credits > 0 AND amount >= 0", name="ck_purchases_amounts"),
        sa.CheckConstraint("refunded_credits >= 0", name="ck_purchases_refunded"),
    )
    op.create_index("ix_purchases_org_id", "purchases", ["org_id", "id"])
    op.create_table(
        "provider_events",
        sa.Column("provider", sa.String(16), primary_key=True),
        sa.Column("event_id", sa.String(255), primary_key=True),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
    )


def downgrade() -> None:
    op.drop_table("provider_events")
    op.drop_table("purchases")
