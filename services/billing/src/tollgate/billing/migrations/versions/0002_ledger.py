"""Accounts, the append-only ledger, debited request ids and idempotency keys.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("org_id", sa.Uuid(), primary_key=True),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("low_threshold", sa.BigInteger(), nullable=False),
        sa.Column("reserve", sa.BigInteger(), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column(
            "version", sa.BigInteger(), nullable=False, comment="of the last BalanceState enqueued"
        ),
        sa.Column("published_balance", sa.BigInteger(), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint("mode IN ('prepaid', 'postpaid')", name="ck_accounts_mode"),
        sa.CheckConstraint("status IN ('ok', 'low', 'exhausted')", name="ck_accounts_status"),
        sa.CheckConstraint("low_threshold >= 0", name="ck_accounts_low_threshold"),
        sa.CheckConstraint("reserve >= 0", name="ck_accounts_reserve"),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("seq", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("id", sa.Uuid(), nullable=False, unique=True),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("balance_after", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("idempotency_key", sa.String(400), nullable=False, unique=True),
        sa.Column("api_id", sa.Uuid(), nullable=True),
        sa.Column("request_count", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("clock_timestamp()"),
        ),
        sa.CheckConstraint(
            "(kind = 'debit' AND amount < 0) OR (kind = 'top_up' AND amount > 0) "
            "OR (kind = 'refund' AND amount > 0) OR (kind = 'expiry' AND amount < 0) "
            "OR (kind = 'adjustment' AND amount <> 0)",
            name="ck_ledger_entries_amount_sign",
        ),
    )
    op.create_index("ix_ledger_entries_org_seq", "ledger_entries", ["org_id", "seq"])
    op.create_index("ix_ledger_entries_org_created", "ledger_entries", ["org_id", "created_at"])
    # Append-only: corrections are new entries, never edits.
    op.execute(
        """
        CREATE FUNCTION ledger_entries_append_only() RETURNS trigger AS $$
        BEGIN
            RAISE EXCEPTION 'ledger_entries is append-only';
        END;
        $$ LANGUAGE plpgsql
        """
    )
    op.execute(
        "CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries "
        "FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_append_only()"
    )
    op.create_table(
        "debited_requests",
        sa.Column("request_id", sa.Uuid(), primary_key=True),
        sa.Column(
            "debited_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_index(
        "ix_debited_requests_debited_at",
        "debited_requests",
        ["debited_at"],
        postgresql_using="brin",
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("org_id", sa.Uuid(), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column(
            "response",
            sa.LargeBinary(),
            nullable=True,
            comment="the exact response body, replayed byte for byte",
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_table("debited_requests")
    op.execute("DROP TRIGGER ledger_entries_append_only ON ledger_entries")
    op.drop_table("ledger_entries")
    op.execute("DROP FUNCTION ledger_entries_append_only()")
    op.drop_table("accounts")
