"""An org's plan paid by a provider subscription: its ids and the grace period.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "org_plans",
        sa.Column(
            "subscription_id",
            sa.String(255),
            nullable=True,
            unique=True,
            comment="the payment provider's subscription paying for it",
        ),
    )
    op.add_column("org_plans", sa.Column("customer_id", sa.String(255), nullable=True))
    op.add_column(
        "org_plans",
        sa.Column(
            "grace_until",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="past_due: suspended at this instant unless paid",
        ),
    )


def downgrade() -> None:
    op.drop_column("org_plans", "grace_until")
    op.drop_column("org_plans", "customer_id")
    op.drop_column("org_plans", "subscription_id")
