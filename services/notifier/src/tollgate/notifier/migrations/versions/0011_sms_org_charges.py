"""Each org's running total of SMS charges less refunds (`sms_org_charges`), compared
with billing's in `BalanceState` to know which charges billing has not applied yet.
Filled in from `sms_outbound` (never purged), as billing fills in its total from its
ledger: the two differ only by the charges and refunds still on their way.

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sms_org_charges",
        sa.Column("org_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("charged", sa.BigInteger(), nullable=False),
    )
    op.execute(
        """
        INSERT INTO sms_org_charges (org_id, charged)
        SELECT org_id, SUM(amount) FROM sms_outbound
        WHERE amount > 0 AND NOT refunded
        GROUP BY org_id
        """
    )


def downgrade() -> None:
    op.drop_table("sms_org_charges")
