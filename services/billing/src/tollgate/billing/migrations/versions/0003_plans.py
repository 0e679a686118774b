"""Plans (rate cards) and each org's plan.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "plans",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("monthly_price", sa.BigInteger(), nullable=False, comment="minor currency units"),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("included_requests", sa.BigInteger(), nullable=True, comment="null: unlimited"),
        sa.Column("past_quota", sa.String(16), nullable=False),
        sa.Column(
            "overage_price", sa.BigInteger(), nullable=False, comment="credits per call past quota"
        ),
        sa.Column("rate_limits", postgresql.JSONB(), nullable=False),
        sa.Column("trial_days", sa.Integer(), nullable=False),
        sa.Column("archived", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint("monthly_price >= 0", name="ck_plans_monthly_price"),
        sa.CheckConstraint(
            "included_requests IS NULL OR included_requests >= 0", name="ck_plans_included"
        ),
        sa.CheckConstraint("overage_price >= 0", name="ck_plans_overage_price"),
        sa.CheckConstraint("trial_days >= 0", name="ck_plans_trial_days"),
        sa.CheckConstraint(
            "past_quota IN ('reject_402', 'reject_429', 'overage')", name="ck_plans_past_quota"
        ),
    )
    op.create_index(
        "uq_plans_name_live",
        "plans",
        ["name"],
        unique=True,
        postgresql_where=sa.text("NOT archived"),
    )
    op.create_table(
        "org_plans",
        sa.Column("org_id", sa.Uuid(), primary_key=True),
        sa.Column("plan_id", sa.Uuid(), sa.ForeignKey("plans.id"), nullable=False),
        sa.Column(
            "next_plan_id",
            sa.Uuid(),
            sa.ForeignKey("plans.id"),
            nullable=True,
            comment="a downgrade that takes effect at period_end",
        ),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("trial_ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("trial_used", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column(
            "version", sa.BigInteger(), nullable=False, comment="of the last PlanState enqueued"
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint(
            "status IN ('active', 'trialing', 'past_due', 'suspended')",
            name="ck_org_plans_status",
        ),
    )
    op.create_index("ix_org_plans_plan", "org_plans", ["plan_id"])
    op.create_index("ix_org_plans_period_end", "org_plans", ["period_end"])


def downgrade() -> None:
    op.drop_table("org_plans")
    op.drop_table("plans")
