"""Outbound SMS: the customer's `Idempotency-Key` of a send (unique per org, with the
hash of the request it was first used for), and alphanumeric sender ids the operator
approved for an org.

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
    op.add_column("sms_outbound", sa.Column("idempotency_key", sa.String(255), nullable=True))
    op.add_column("sms_outbound", sa.Column("request_hash", sa.String(64), nullable=True))
    op.create_index(
        "uq_sms_outbound_idempotency",
        "sms_outbound",
        ["org_id", "idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.create_table(
        "sms_sender_ids",
        sa.Column("sender_id", sa.String(11), primary_key=True),
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_sms_sender_ids_org_id", "sms_sender_ids", ["org_id"])


def downgrade() -> None:
    op.drop_table("sms_sender_ids")
    op.drop_index("uq_sms_outbound_idempotency", table_name="sms_outbound")
    op.drop_column("sms_outbound", "request_hash")
    op.drop_column("sms_outbound", "idempotency_key")
