"""api_changelog.public_changes: the part of each entry's changes customers may see,
decided at import against the documents and routes each change came from (issue #14; the
public changelog filtered against the current document showed removed internal
operations).

Existing entries get none (`[]`): the document an older entry's changes came from is not
kept, so nothing proves any of them public; the public changelog leaves them out, the
operators' changelog keeps showing them whole.

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "api_changelog",
        sa.Column(
            "public_changes",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            server_default=sa.text("'[]'::jsonb"),
        ),
    )


def downgrade() -> None:
    op.drop_column("api_changelog", "public_changes")
