"""Auto top-up charges: status `processing`, a payment Stripe has not settled yet (a
bank debit); its webhook settles it.

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint("ck_auto_top_up_charges_status", "auto_top_up_charges", type_="check")
    op.create_check_constraint(
        "ck_auto_top_up_charges_status",
        "auto_top_up_charges",
        "status IN ('queued', 'processing', 'succeeded', 'failed')",
    )


def downgrade() -> None:
    op.execute("UPDATE auto_top_up_charges SET status = 'queued' WHERE status = 'processing'")
    op.drop_constraint("ck_auto_top_up_charges_status", "auto_top_up_charges", type_="check")
    op.create_check_constraint(
        "ck_auto_top_up_charges_status",
        "auto_top_up_charges",
        "status IN ('queued', 'succeeded', 'failed')",
    )
