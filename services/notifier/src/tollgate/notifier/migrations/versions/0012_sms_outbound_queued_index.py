"""The operator's log of every org's outbound SMS, newest first, read from an index on
`(queued_at, id)` (its keyset order) instead of sorting the whole table per page.
Built CONCURRENTLY like those of 0004: `sms_outbound` is never purged, and sends and
status reports go on meanwhile.

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_sms_outbound_queued",
            "sms_outbound",
            ["queued_at", "id"],
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(
            "ix_sms_outbound_queued",
            table_name="sms_outbound",
            postgresql_concurrently=True,
            if_exists=True,
        )
