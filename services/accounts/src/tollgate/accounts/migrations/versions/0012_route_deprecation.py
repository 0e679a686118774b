"""Operation-level deprecation: `api_routes.deprecated`, `deprecated_at` (the
`Deprecation` date the gateway sends) and `sunset_at` (`Sunset`; the gateway answers 410
from then on).

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "api_routes",
        sa.Column("deprecated", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("api_routes", sa.Column("deprecated_at", sa.DateTime(timezone=True)))
    op.add_column("api_routes", sa.Column("sunset_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("api_routes", "sunset_at")
    op.drop_column("api_routes", "deprecated_at")
    op.drop_column("api_routes", "deprecated")
