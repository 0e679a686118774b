"""api_changelog: the operation changes of each OpenAPI import, breaking ones counted
(the developer portal's changelog per API and `tollgate.accounts.api.changed.v1`).

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_changelog",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("api_id", sa.UUID(), nullable=False),
        sa.Column("api_version", sa.String(length=50), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changes", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("breaking", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["api_id"], ["apis.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_api_changelog_api_id", "api_changelog", ["api_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_api_changelog_api_id", table_name="api_changelog")
    op.drop_table("api_changelog")
