"""Plans: an overage price is at most the contracts' CREDITS_MAX (10^12 credits per
call). Billing accepted up to 10^15 before; `PlanState` now refuses more, so a plan
stored above it failed every publish of its orgs' state: the period rollover (500 orgs
a transaction, every org's quota reset), assignments and edits, for good. Such prices
are lowered to the bound (a call priced past 10^12 credits was never affordable either)
and the bound is a check constraint. Run `python -m tollgate.billing republish` after
upgrading if a gateway skipped a stored plan state of such a plan.

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CREDITS_MAX = 10**12  # tollgate.contracts.envelope.CREDITS_MAX when this was written


def upgrade() -> None:
    op.execute(
        f"UPDATE plans SET overage_price = {CREDITS_MAX} WHERE overage_price > {CREDITS_MAX}"
    )
    op.create_check_constraint(
        "ck_plans_overage_price_max", "plans", f"overage_price <= {CREDITS_MAX}"
    )


def downgrade() -> None:
    op.drop_constraint("ck_plans_overage_price_max", "plans", type_="check")
