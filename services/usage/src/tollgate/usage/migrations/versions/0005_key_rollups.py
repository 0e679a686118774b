"""Per-key rollups for "top keys": `usage_key_hour` and `usage_key_day`, one narrow row
per (org, key, hour or UTC day) with the measures already split by outcome (no
histogram, no API/route/status dimension). With thousands of keys, ranking keys over a
week from `usage_hour` read every wide (key, API, route, method, status) hour row; whole
days now come from `usage_key_day` (one row per key-day) and only the edges from
`usage_key_hour` and `usage_minute`.

`usage_org_rollup_rebuild()` now also recomputes these from `usage_hour`.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = """
    org_id uuid NOT NULL,
    bucket timestamptz NOT NULL,
    key_id uuid NOT NULL,
    mode text NOT NULL,
    requests bigint NOT NULL,
    rejected bigint NOT NULL,
    errors bigint NOT NULL,
    client_errors bigint NOT NULL,
    server_errors bigint NOT NULL,
    bytes_in bigint NOT NULL,
    bytes_out bigint NOT NULL,
    credits bigint NOT NULL,
    latency_ms_sum bigint NOT NULL,
    drifted bigint NOT NULL,
    PRIMARY KEY (org_id, bucket, key_id)
"""

_MEASURES = """
    sum(requests),
    coalesce(sum(requests) FILTER (WHERE reason <> ''), 0),
    coalesce(sum(requests) FILTER (WHERE reason = '' AND status >= 400), 0),
    coalesce(sum(requests) FILTER (WHERE reason = '' AND status >= 400 AND status < 500), 0),
    coalesce(sum(requests) FILTER (WHERE reason = '' AND status >= 500), 0),
    sum(bytes_in), sum(bytes_out), sum(credits),
    coalesce(sum(latency_ms_sum) FILTER (WHERE reason = ''), 0),
    sum(drifted)
"""

_INSERT = """
    INSERT INTO {table} (org_id, bucket, key_id, mode, requests, rejected, errors,
        client_errors, server_errors, bytes_in, bytes_out, credits, latency_ms_sum, drifted)
    SELECT org_id, {bucket}, key_id, min(mode), {measures}
    FROM usage_hour GROUP BY 1, 2, 3
"""

_ORG_REBUILD_BODY = """
    FOREACH pair SLICE 1 IN ARRAY ARRAY[
        ARRAY['usage_org_minute', 'usage_minute'], ARRAY['usage_org_hour', 'usage_hour']
    ] LOOP
        EXECUTE format('TRUNCATE %I', pair[1]);
        EXECUTE format($sql$
            INSERT INTO %I (org_id, bucket, mode, api_id, route_id, method, status, reason,
                requests, bytes_in, bytes_out, credits, latency_ms_sum, latency_hist, drifted)
            SELECT t.org_id, t.bucket, t.mode, t.api_id, t.route_id, t.method, t.status,
                t.reason, t.requests, t.bytes_in, t.bytes_out, t.credits, t.latency_ms_sum,
                coalesce(h.hist, '{}'::jsonb), t.drifted
            FROM (
                SELECT org_id, bucket, mode, api_id, route_id, method, status, reason,
                    sum(requests) AS requests, sum(bytes_in) AS bytes_in,
                    sum(bytes_out) AS bytes_out, sum(credits) AS credits,
                    sum(latency_ms_sum) AS latency_ms_sum, sum(drifted) AS drifted
                FROM %I GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
            ) AS t
            LEFT JOIN (
                SELECT org_id, bucket, mode, api_id, route_id, method, status, reason,
                    jsonb_object_agg(k, n) AS hist
                FROM (
                    SELECT org_id, bucket, mode, api_id, route_id, method, status, reason,
                        e.key AS k, sum(e.value::bigint) AS n
                    FROM %I, jsonb_each_text(latency_hist) AS e
                    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
                ) AS b
                GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
            ) AS h USING (org_id, bucket, mode, api_id, route_id, method, status, reason)
        $sql$, pair[1], pair[2], pair[2]);
    END LOOP;
"""


def upgrade() -> None:
    for table in ("usage_key_hour", "usage_key_day"):
        op.execute(f"CREATE TABLE {table} ({_COLUMNS})")
        op.execute(f"CREATE INDEX ix_{table}_bucket ON {table} (bucket)")
    hour = _INSERT.format(table="usage_key_hour", bucket="bucket", measures=_MEASURES)
    day = _INSERT.format(
        table="usage_key_day", bucket="date_trunc('day', bucket, 'UTC')", measures=_MEASURES
    )
    op.execute(
        f"""
        CREATE OR REPLACE FUNCTION usage_org_rollup_rebuild() RETURNS void
        LANGUAGE plpgsql AS $fn$
        DECLARE
            pair text[];
        BEGIN
            {_ORG_REBUILD_BODY}
            TRUNCATE usage_key_hour, usage_key_day;
            {hour};
            {day};
        END
        $fn$
        """
    )
    op.execute("TRUNCATE usage_key_hour, usage_key_day")
    op.execute(hour)
    op.execute(day)


def downgrade() -> None:
    op.execute(
        f"""
        CREATE OR REPLACE FUNCTION usage_org_rollup_rebuild() RETURNS void
        LANGUAGE plpgsql AS $fn$
        DECLARE
            pair text[];
        BEGIN
            {_ORG_REBUILD_BODY}
        END
        $fn$
        """
    )
    op.execute("DROP TABLE usage_key_day")
    op.execute("DROP TABLE usage_key_hour")
