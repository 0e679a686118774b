"""Outbound SMS: price table, providers (sealed credentials), the outbound queue and
log with its status history, and conversations for routing replies.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    tz = sa.DateTime(timezone=True)
    op.create_table(
        "sms_prices",
        sa.Column("prefix", sa.String(16), primary_key=True),
        sa.Column("price_per_segment", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", tz, nullable=False),
    )
    op.create_table(
        "sms_providers",
        sa.Column("id", sa.UUID(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("config", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("credentials_sealed", sa.Text(), nullable=False),
        sa.Column("rate_per_second", sa.Integer(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", tz, nullable=False),
    )
    op.create_table(
        "sms_outbound",
        sa.Column("id", sa.UUID(), primary_key=True),
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("key_id", sa.UUID(), nullable=True),
        sa.Column("from_number", sa.String(32), nullable=False),
        sa.Column("to_number", sa.String(32), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("encoding", sa.String(8), nullable=False),
        sa.Column("segments", sa.Integer(), nullable=False),
        sa.Column("destination_prefix", sa.String(16), nullable=False),
        sa.Column("price_per_segment", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("charge_id", sa.UUID(), nullable=False, unique=True),
        sa.Column("client_reference", sa.String(128), nullable=True),
        sa.Column("status_callback", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("send_state", sa.String(16), nullable=False),
        sa.Column("provider_id", sa.UUID(), nullable=True),
        sa.Column("provider", sa.String(64), nullable=True),
        sa.Column("provider_message_id", sa.String(128), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", tz, nullable=False),
        sa.Column("leased_until", tz, nullable=True),
        sa.Column("error_code", sa.String(32), nullable=True),
        sa.Column("error_message", sa.String(255), nullable=True),
        sa.Column("refunded", sa.Boolean(), nullable=False),
        sa.Column("queued_at", tz, nullable=False),
        sa.Column("sent_at", tz, nullable=True),
        sa.Column("delivered_at", tz, nullable=True),
        sa.Column("failed_at", tz, nullable=True),
        sa.Column("updated_at", tz, nullable=False),
        sa.UniqueConstraint("provider_id", "provider_message_id", name="uq_sms_outbound_provider"),
    )
    op.create_index(
        "ix_sms_outbound_due",
        "sms_outbound",
        ["next_attempt_at"],
        postgresql_where=sa.text("send_state <> 'done'"),
    )
    op.create_index("ix_sms_outbound_org", "sms_outbound", ["org_id", "queued_at"])
    op.create_table(
        "sms_status_history",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column(
            "message_id",
            sa.UUID(),
            sa.ForeignKey("sms_outbound.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error_code", sa.String(32), nullable=True),
        sa.Column("at", tz, nullable=False),
    )
    op.create_index("ix_sms_status_history_message_id", "sms_status_history", ["message_id"])
    op.create_table(
        "sms_conversations",
        sa.Column("org_id", sa.UUID(), primary_key=True),
        sa.Column("remote_number", sa.String(32), primary_key=True),
        sa.Column("local_number", sa.String(32), nullable=False),
        sa.Column("last_sent_at", tz, nullable=False),
        sa.Column("expires_at", tz, nullable=False),
    )
    op.create_index(
        "ix_sms_conversations_remote", "sms_conversations", ["remote_number", "last_sent_at"]
    )


def downgrade() -> None:
    for table in (
        "sms_conversations",
        "sms_status_history",
        "sms_outbound",
        "sms_providers",
        "sms_prices",
    ):
        op.drop_table(table)
