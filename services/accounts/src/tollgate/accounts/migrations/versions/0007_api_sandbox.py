"""API registry sandbox settings: `apis.sandbox_url` (where `tg_test_` keys go),
`apis.sandbox` (mock and validation settings) and `api_routes.sandbox` (a route's
overrides, null: the API's).

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("apis", sa.Column("sandbox_url", sa.String(length=2048), nullable=True))
    op.add_column(
        "apis",
        sa.Column(
            "sandbox",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            server_default=sa.text("'{}'::jsonb"),
        ),
    )
    op.add_column(
        "api_routes",
        sa.Column("sandbox", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("api_routes", "sandbox")
    op.drop_column("apis", "sandbox")
    op.drop_column("apis", "sandbox_url")
