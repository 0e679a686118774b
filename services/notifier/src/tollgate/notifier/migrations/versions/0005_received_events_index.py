"""Index of the retention job on the intake's de-duplication memory (received_events by
receipt time), built CONCURRENTLY like those of 0004: the table may be large.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_received_events_received_at",
            "received_events",
            ["received_at"],
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(
            "ix_received_events_received_at",
            table_name="received_events",
            postgresql_concurrently=True,
            if_exists=True,
        )
