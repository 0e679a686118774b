"""Indexes of the retention job: finished deliveries and emails by finish time,
webhook messages by creation time, routed SMS by receipt time.

Built CONCURRENTLY (outside the migration's transaction) because these are the
tables that grew without bound before retention existed: writes go on meanwhile.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("ix_webhook_deliveries_finished", "webhook_deliveries", "finished_at", "state <> 'pending'"),
    ("ix_webhook_messages_created", "webhook_messages", "created_at", None),
    ("ix_email_messages_finished", "email_messages", "finished_at", "state <> 'pending'"),
    ("ix_sms_messages_routed", "sms_messages", "received_at", "routed"),
)


def upgrade() -> None:
    with op.get_context().autocommit_block():
        for name, table, column, where in INDEXES:
            op.create_index(
                name,
                table,
                [column],
                unique=False,
                postgresql_where=sa.text(where) if where else None,
                postgresql_concurrently=True,
                if_not_exists=True,
            )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name, table, _column, _where in reversed(INDEXES):
            op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)
