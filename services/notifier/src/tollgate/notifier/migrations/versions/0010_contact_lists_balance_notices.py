"""Notification contacts set at least once per org (`contact_lists`; orgs that already
have contacts count as set by the API), and each org's latest credits notice
(`balance_notices`), so contacts set after a low/exhausted notice still get it once.

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contact_lists",
        sa.Column("org_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.execute(
        "INSERT INTO contact_lists (org_id, origin, set_at) "
        "SELECT org_id, 'api', min(created_at) FROM notification_contacts GROUP BY org_id"
    )
    op.create_table(
        "balance_notices",
        sa.Column("org_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("context", JSONB(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("balance_notices")
    op.drop_table("contact_lists")
