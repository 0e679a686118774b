"""audit_log.service and audit_log.event_id: records of billing, usage and the notifier
consumed from `tollgate.audit.records.v1`, idempotent on the event id.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "audit_log",
        sa.Column("service", sa.String(length=20), nullable=False, server_default="accounts"),
    )
    op.add_column("audit_log", sa.Column("event_id", sa.String(length=64), nullable=True))
    op.create_unique_constraint("uq_audit_log_event_id", "audit_log", ["event_id"])


def downgrade() -> None:
    op.drop_constraint("uq_audit_log_event_id", "audit_log", type_="unique")
    op.drop_column("audit_log", "event_id")
    op.drop_column("audit_log", "service")
