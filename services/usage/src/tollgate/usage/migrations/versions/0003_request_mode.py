"""Test mode: `mode` ('live' | 'test') on the request log and both aggregate tables,
who answered (`served_by`) and the contract drift a sandbox answer showed on the log,
and a count of drifted answers in the aggregates. A key is live or test for life, so
`mode` follows `key_id` and needs no place in the aggregates' primary key.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE request_log
            ADD COLUMN mode text NOT NULL DEFAULT 'live' CHECK (mode IN ('live', 'test')),
            ADD COLUMN served_by text,
            ADD COLUMN contract_drift jsonb
        """
    )
    for table in ("usage_minute", "usage_hour"):
        op.execute(
            f"""
            ALTER TABLE {table}
                ADD COLUMN mode text NOT NULL DEFAULT 'live',
                ADD COLUMN drifted bigint NOT NULL DEFAULT 0
            """
        )


def downgrade() -> None:
    for table in ("usage_minute", "usage_hour"):
        op.execute(f"ALTER TABLE {table} DROP COLUMN drifted, DROP COLUMN mode")
    op.execute(
        "ALTER TABLE request_log DROP COLUMN contract_drift, DROP COLUMN served_by, "
        "DROP COLUMN mode"
    )
