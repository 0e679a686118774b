"""Org-level rollups: `usage_org_minute` and `usage_org_hour`, the minute/hour aggregates
without the key dimension, for every analytics read that neither filters nor groups by
key. With thousands of keys the keyed aggregates barely compress the log (a key rarely
sends twice in one minute, or with the same status in one hour); without the key an
org's hour is a handful of rows per (API, route, method, status, reason, mode).

Written by ingest in the same transaction as the keyed tables; `usage_org_rollup_rebuild()`
recomputes both from the keyed tables (run here for the data already there, and by
anything that loads the keyed tables in bulk).

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = """
    org_id uuid NOT NULL,
    bucket timestamptz NOT NULL,
    mode text NOT NULL,
    api_id uuid NOT NULL,
    route_id uuid NOT NULL,
    method text NOT NULL,
    status smallint NOT NULL,
    reason text NOT NULL,
    requests bigint NOT NULL,
    bytes_in bigint NOT NULL,
    bytes_out bigint NOT NULL,
    credits bigint NOT NULL,
    latency_ms_sum bigint NOT NULL,
    latency_hist jsonb NOT NULL,
    drifted bigint NOT NULL,
    PRIMARY KEY (org_id, bucket, mode, api_id, route_id, method, status, reason)
"""

_REBUILD = """
CREATE FUNCTION usage_org_rollup_rebuild() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    pair text[];
BEGIN
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
END
$$
"""


def upgrade() -> None:
    for table in ("usage_org_minute", "usage_org_hour"):
        op.execute(f"CREATE TABLE {table} ({_COLUMNS})")
        op.execute(f"CREATE INDEX ix_{table}_bucket ON {table} (bucket)")
    op.execute(_REBUILD)
    op.execute("SELECT usage_org_rollup_rebuild()")


def downgrade() -> None:
    op.execute("DROP FUNCTION usage_org_rollup_rebuild()")
    for table in ("usage_org_hour", "usage_org_minute"):
        op.execute(f"DROP TABLE {table}")
