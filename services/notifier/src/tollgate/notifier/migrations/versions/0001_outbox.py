"""The transactional outbox.

Revision ID: 0001
Revises:
"""

from collections.abc import Sequence

from alembic import op

from tollgate.kit.outbox import OUTBOX_TABLE, create_outbox_table

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_outbox_table()


def downgrade() -> None:
    op.drop_table(OUTBOX_TABLE)
