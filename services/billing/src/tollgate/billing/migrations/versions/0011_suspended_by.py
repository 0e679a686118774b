"""Org plans: `suspended_by`, who suspended the org: an operator (only an operator
reinstates it; a paid invoice does not) or a payment (a paid invoice does). Existing
suspensions are taken as the payment's, as they were treated.

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "org_plans",
        sa.Column(
            "suspended_by",
            sa.String(16),
            nullable=True,
            comment="suspended: by an operator (only an operator reinstates) or for payment",
        ),
    )
    op.create_check_constraint(
        "ck_org_plans_suspended_by",
        "org_plans",
        "suspended_by IS NULL OR suspended_by IN ('operator', 'payment')",
    )
    op.execute("UPDATE org_plans SET suspended_by = 'payment' WHERE status = 'suspended'")


def downgrade() -> None:
    op.drop_constraint("ck_org_plans_suspended_by", "org_plans", type_="check")
    op.drop_column("org_plans", "suspended_by")
