"""Org plans: `subscription_ended_at`, when the subscription paying for the plan ended.
It bills no more, so the owner may choose another plan, but its id is kept: a late
`invoice.paid` of it (the failed invoice paid after all) still finds the org. No row
is marked ended here: until now an ended subscription and a live one past its grace
looked the same, and taking a live one as ended would let its org walk off (or
subscribe twice) while Stripe goes on billing it.

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
        "org_plans",
        sa.Column(
            "subscription_ended_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="the subscription ended (it bills no more; its late events still apply)",
        ),
    )


def downgrade() -> None:
    op.drop_column("org_plans", "subscription_ended_at")
