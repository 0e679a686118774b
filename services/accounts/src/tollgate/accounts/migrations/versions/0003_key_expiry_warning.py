"""When the owner of an expiring key was warned (KeyExpiring sent once per expiry).

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "api_keys", sa.Column("expiry_warned_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index(
        "ix_api_keys_expires_at_unwarned",
        "api_keys",
        ["expires_at"],
        postgresql_where=sa.text(
            "expires_at IS NOT NULL AND expiry_warned_at IS NULL AND revoked_at IS NULL"
        ),
    )


def downgrade() -> None:
    op.drop_index("ix_api_keys_expires_at_unwarned", table_name="api_keys")
    op.drop_column("api_keys", "expiry_warned_at")
