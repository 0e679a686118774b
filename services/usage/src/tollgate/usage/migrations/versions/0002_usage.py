"""Request log, minute/hour aggregates, consumer positions, key quotas.

Revision ID: 0002
Revises: 0001

`request_log` and `usage_minute` are range-partitioned by day; partitions are created
ahead by the service (and on demand for late events) and dropped by retention.
`usage_hist_merge` adds two sparse latency histograms ({"bucket": count} jsonb).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_AGGREGATE_COLUMNS = """
    org_id uuid NOT NULL,
    bucket timestamptz NOT NULL,
    key_id uuid NOT NULL,
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
    PRIMARY KEY (org_id, bucket, key_id, api_id, route_id, method, status, reason)
"""


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION usage_hist_merge(a jsonb, b jsonb) RETURNS jsonb
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
            SELECT coalesce(jsonb_object_agg(k, n), '{}'::jsonb)
            FROM (
                SELECT k, sum(v::bigint) AS n
                FROM (
                    SELECT key AS k, value AS v FROM jsonb_each_text(a)
                    UNION ALL
                    SELECT key, value FROM jsonb_each_text(b)
                ) AS both_sides
                GROUP BY k
            ) AS merged
        $$
        """
    )
    op.execute(
        """
        CREATE TABLE consumer_positions (
            group_id text NOT NULL,
            topic text NOT NULL,
            partition integer NOT NULL,
            next_offset bigint NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (group_id, topic, partition)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE request_log (
            request_id uuid NOT NULL,
            time timestamptz NOT NULL,
            org_id uuid,
            key_id uuid,
            api_id uuid,
            route_id uuid,
            method text NOT NULL,
            path text NOT NULL,
            status smallint NOT NULL,
            outcome text NOT NULL CHECK (outcome IN ('completed', 'rejected')),
            reason text,
            latency_ms integer NOT NULL,
            upstream_latency_ms integer,
            request_bytes bigint,
            response_bytes bigint,
            client_ip text NOT NULL,
            cost bigint NOT NULL,
            gateway_instance text NOT NULL,
            PRIMARY KEY (request_id, time)
        ) PARTITION BY RANGE (time)
        """
    )
    op.execute(
        "CREATE INDEX ix_request_log_org_time ON request_log (org_id, time DESC, request_id DESC)"
    )
    op.execute(
        "CREATE INDEX ix_request_log_key_time ON request_log (key_id, time DESC, request_id DESC)"
    )
    op.execute(f"CREATE TABLE usage_minute ({_AGGREGATE_COLUMNS}) PARTITION BY RANGE (bucket)")
    op.execute(f"CREATE TABLE usage_hour ({_AGGREGATE_COLUMNS})")
    op.execute("CREATE INDEX ix_usage_hour_bucket ON usage_hour (bucket)")
    op.execute("CREATE INDEX ix_usage_hour_key ON usage_hour (key_id, bucket)")
    op.execute(
        """
        CREATE TABLE api_keys (
            key_id uuid PRIMARY KEY,
            org_id uuid NOT NULL,
            per_day bigint,
            per_month bigint,
            version bigint NOT NULL,
            updated_at timestamptz NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX ix_api_keys_org_id ON api_keys (org_id)")
    op.execute(
        """
        CREATE TABLE quota_usage (
            key_id uuid NOT NULL,
            period text NOT NULL CHECK (period IN ('day', 'month')),
            period_start date NOT NULL,
            used bigint NOT NULL,
            PRIMARY KEY (key_id, period, period_start)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE quota_alerts (
            key_id uuid NOT NULL,
            period text NOT NULL,
            period_start date NOT NULL,
            threshold_percent smallint NOT NULL,
            org_id uuid NOT NULL,
            "limit" bigint NOT NULL,
            used bigint NOT NULL,
            crossed_at timestamptz NOT NULL,
            PRIMARY KEY (key_id, period, period_start, threshold_percent)
        )
        """
    )


def downgrade() -> None:
    for table in (
        "quota_alerts",
        "quota_usage",
        "api_keys",
        "usage_hour",
        "usage_minute",
        "request_log",
        "consumer_positions",
    ):
        op.execute(f"DROP TABLE {table}")
    op.execute("DROP FUNCTION usage_hist_merge(jsonb, jsonb)")
