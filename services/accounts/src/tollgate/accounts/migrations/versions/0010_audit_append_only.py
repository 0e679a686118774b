"""audit_log is append-only: a trigger refuses every UPDATE, TRUNCATE and DELETE, except
the retention purge's DELETE of entries older than the cut-off it declares in its own
transaction (`SET LOCAL tollgate.audit_purge_before`); an index on `at` for that purge.

The guard is against the application and its operators' mistakes (a stray UPDATE, a
DELETE without WHERE), not against a database superuser, who can drop the trigger.

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
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.execute(
        """
        CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            purge_before timestamptz :=
                NULLIF(current_setting('tollgate.audit_purge_before', true), '')::timestamptz;
        BEGIN
            IF TG_OP = 'DELETE' AND purge_before IS NOT NULL THEN
                IF OLD.at < purge_before THEN
                    RETURN OLD;
                END IF;
            END IF;
            RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END;
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
    )
    op.execute(
        "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER audit_log_no_truncate ON audit_log")
    op.execute("DROP TRIGGER audit_log_append_only ON audit_log")
    op.execute("DROP FUNCTION audit_log_append_only()")
    op.drop_index("ix_audit_log_at", table_name="audit_log")
