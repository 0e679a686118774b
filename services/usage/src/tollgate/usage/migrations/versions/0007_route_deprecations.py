"""Route deprecations announced: `api_deprecations.route_id` (null for the whole API),
one row per (API, route, Sunset date) announced, so a deprecated route's callers are
told once per Sunset date as an API's are.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE api_deprecations
            ADD COLUMN route_id uuid,
            DROP CONSTRAINT api_deprecations_once,
            ADD CONSTRAINT api_deprecations_once
                UNIQUE NULLS NOT DISTINCT (api_id, route_id, sunset_at)
        """
    )
    op.execute(
        "COMMENT ON COLUMN api_deprecations.route_id IS 'null: the whole API was deprecated'"
    )


def downgrade() -> None:
    op.execute("DELETE FROM api_deprecations WHERE route_id IS NOT NULL")
    op.execute(
        """
        ALTER TABLE api_deprecations
            DROP CONSTRAINT api_deprecations_once,
            DROP COLUMN route_id,
            ADD CONSTRAINT api_deprecations_once UNIQUE NULLS NOT DISTINCT (api_id, sunset_at)
        """
    )
