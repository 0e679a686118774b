"""Invoices: the payment provider's subscription invoices of each org (receipts of paid
plans).

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "invoices",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column(
            "invoice_id", sa.String(255), nullable=False, comment="the provider's invoice id"
        ),
        sa.Column("number", sa.String(64)),
        sa.Column("subscription_id", sa.String(255)),
        sa.Column("plan_id", sa.Uuid()),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("amount_due", sa.BigInteger(), nullable=False, comment="minor currency units"),
        sa.Column("amount_paid", sa.BigInteger(), nullable=False, comment="minor currency units"),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("hosted_invoice_url", sa.String(2048)),
        sa.Column("invoice_pdf", sa.String(2048)),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("paid_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("status IN ('paid', 'payment_failed')", name="ck_invoices_status"),
        sa.CheckConstraint("amount_due >= 0 AND amount_paid >= 0", name="ck_invoices_amounts"),
        sa.UniqueConstraint("provider", "invoice_id", name="uq_invoices_provider_invoice"),
    )
    op.create_index("ix_invoices_org_id", "invoices", ["org_id", "id"])


def downgrade() -> None:
    op.drop_table("invoices")
