"""Requests counted in the current period of an org on an overage plan.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "org_plans",
        sa.Column(
            "period_requests",
            sa.BigInteger(),
            nullable=False,
            server_default=sa.text("0"),
            comment="overage plans: requests charged this period",
        ),
    )


def downgrade() -> None:
    op.drop_column("org_plans", "period_requests")
