"""Accounts: `sms_charged`, the net of the SMS charges and refunds in each balance,
published with it so the notifier knows which of its charges billing has applied.
Existing accounts are filled in from their ledger.

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "accounts",
        sa.Column(
            "sms_charged",
            sa.BigInteger(),
            server_default=sa.text("0"),
            nullable=False,
            comment="SMS charges applied less SMS refunds applied, over the org's life",
        ),
    )
    op.execute(
        """
        UPDATE accounts AS a SET sms_charged = s.net
        FROM (
            SELECT org_id, -SUM(amount) AS net FROM ledger_entries
            WHERE idempotency_key LIKE 'sms-charge:%' OR idempotency_key LIKE 'sms-refund:%'
            GROUP BY org_id
        ) AS s
        WHERE a.org_id = s.org_id
        """
    )


def downgrade() -> None:
    op.drop_column("accounts", "sms_charged")
