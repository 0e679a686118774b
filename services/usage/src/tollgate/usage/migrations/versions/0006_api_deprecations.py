"""API deprecations announced: `api_deprecations`, one row per (API, Sunset date) whose
deprecation was announced to the orgs that called the API (a null Sunset date is a
value of its own: `NULLS NOT DISTINCT`). The row goes in with the notices, in one
transaction, so a redelivered or republished API state never announces twice.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE api_deprecations (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            api_id uuid NOT NULL,
            sunset_at timestamptz,
            api_version bigint NOT NULL,
            orgs_notified integer NOT NULL,
            announced_at timestamptz NOT NULL,
            CONSTRAINT api_deprecations_once UNIQUE NULLS NOT DISTINCT (api_id, sunset_at)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE api_deprecations")
