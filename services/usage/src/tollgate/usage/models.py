"""Tables of the usage service (its own database; migrations in `migrations/`).

- `consumer_positions`: the next Kafka offset to take in, per consumer group, topic
  and partition, written in the same transaction as everything a batch changes. It is
  the source of truth for "already counted": a redelivered record has an offset below
  it and is skipped.
- `request_log`: one row per request (completed or rejected), partitioned by day on
  `time`; retention drops whole partitions.
- `usage_minute` (partitioned by day) and `usage_hour`: aggregates per time bucket and
  (org, key, API, route, method, status, rejection reason), with the key's `mode`
  (live/test: it follows the key) and a count of answers with contract drift, a mergeable latency
  histogram (see `histogram`). Absent ids (a rejection without a resolved key) are the
  nil UUID, so the primary key needs no NULL handling. Day views are derived from
  `usage_hour`.
- `usage_org_minute` / `usage_org_hour`: the same summed over keys (`mode` in the primary
  key), written in the same transaction; what analytics read when no key is involved.
- `usage_key_hour` / `usage_key_day`: per (org, key, hour or UTC day) totals without
  histograms or other dimensions, for ranking keys over long ranges.
- `api_keys`: what usage knows of each key from `tollgate.accounts.keys.v1`: its org
  (tenant checks on `/keys/{id}`) and its quota limits.
- `quota_usage` / `quota_alerts`: admitted requests per key and day/month, and the
  thresholds already announced (one `UsageThresholdCrossed` each, ever).
- `api_deprecations`: the (API, route, Sunset date) whose deprecation was announced (one
  `ApiDeprecationAnnounced` per org that called the API, or, with a route,
  `RouteDeprecationAnnounced` per org that called the route, once each, ever).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    Identity,
    Integer,
    SmallInteger,
    Text,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tollgate.kit.outbox import outbox_table

NIL = uuid.UUID(int=0)
"""Stands for "none" in aggregate keys (no key, API or route was resolved)."""

# Count and sum columns are bigint: rollup sums saturate at `kit.db.BIGINT_MAX` instead of
# failing. One event may carry a size up to it (the contract's bound), so two of them in
# one bucket would otherwise overflow, and a batch Postgres refuses is refused on every
# retry, stopping its partition. Answers saturate there too (see `analytics`).


class Base(DeclarativeBase):
    """Declarative base of the usage tables."""


class ConsumerPosition(Base):
    """Next offset to take in per group/topic/partition (exactly-once bookkeeping)."""

    __tablename__ = "consumer_positions"

    group_id: Mapped[str] = mapped_column(Text, primary_key=True)
    topic: Mapped[str] = mapped_column(Text, primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_offset: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class RequestLogEntry(Base):
    """One request through the gateway, as it was reported (partitioned by day)."""

    __tablename__ = "request_log"
    __table_args__ = ({"postgresql_partition_by": "RANGE (time)"},)

    request_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    org_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    key_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    api_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    route_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    method: Mapped[str] = mapped_column(Text)
    path: Mapped[str] = mapped_column(Text)
    status: Mapped[int] = mapped_column(SmallInteger)
    outcome: Mapped[str] = mapped_column(Text, comment="completed | rejected")
    reason: Mapped[str | None] = mapped_column(Text, comment="rejection reason")
    latency_ms: Mapped[int] = mapped_column(Integer)
    upstream_latency_ms: Mapped[int | None] = mapped_column(Integer)
    request_bytes: Mapped[int | None] = mapped_column(BigInteger)
    response_bytes: Mapped[int | None] = mapped_column(BigInteger)
    client_ip: Mapped[str] = mapped_column(Text)
    cost: Mapped[int] = mapped_column(BigInteger)
    gateway_instance: Mapped[str] = mapped_column(Text)
    mode: Mapped[str] = mapped_column(Text, server_default="live", comment="live | test")
    served_by: Mapped[str | None] = mapped_column(Text, comment="upstream | sandbox | mock")
    contract_drift: Mapped[list[str] | None] = mapped_column(
        JSONB, comment="violations of the API's document by the answer (test mode)"
    )


class _Aggregate:
    """Columns shared by the minute and hour aggregates."""

    org_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    bucket: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    key_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    api_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    route_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    method: Mapped[str] = mapped_column(Text, primary_key=True)
    status: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    reason: Mapped[str] = mapped_column(Text, primary_key=True, comment="'' when completed")
    requests: Mapped[int] = mapped_column(BigInteger)
    bytes_in: Mapped[int] = mapped_column(BigInteger)
    bytes_out: Mapped[int] = mapped_column(BigInteger)
    credits: Mapped[int] = mapped_column(BigInteger)
    latency_ms_sum: Mapped[int] = mapped_column(BigInteger)
    latency_hist: Mapped[dict[str, int]] = mapped_column(JSONB)
    mode: Mapped[str] = mapped_column(Text, server_default="live", comment="live | test")
    drifted: Mapped[int] = mapped_column(BigInteger, server_default="0")


class UsageMinute(_Aggregate, Base):
    """Per-minute aggregates (partitioned by day on `bucket`)."""

    __tablename__ = "usage_minute"
    __table_args__ = ({"postgresql_partition_by": "RANGE (bucket)"},)


class UsageHour(_Aggregate, Base):
    """Per-hour aggregates, written with the minute ones; day views sum them."""

    __tablename__ = "usage_hour"


class _OrgAggregate:
    """Columns of the org-level rollups: the aggregates without the key (mode in the key)."""

    org_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    bucket: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    mode: Mapped[str] = mapped_column(Text, primary_key=True, comment="live | test")
    api_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    route_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    method: Mapped[str] = mapped_column(Text, primary_key=True)
    status: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    reason: Mapped[str] = mapped_column(Text, primary_key=True, comment="'' when completed")
    requests: Mapped[int] = mapped_column(BigInteger)
    bytes_in: Mapped[int] = mapped_column(BigInteger)
    bytes_out: Mapped[int] = mapped_column(BigInteger)
    credits: Mapped[int] = mapped_column(BigInteger)
    latency_ms_sum: Mapped[int] = mapped_column(BigInteger)
    latency_hist: Mapped[dict[str, int]] = mapped_column(JSONB)
    drifted: Mapped[int] = mapped_column(BigInteger)


class UsageOrgMinute(_OrgAggregate, Base):
    """`usage_minute` summed over keys: what org-wide analytics read."""

    __tablename__ = "usage_org_minute"


class UsageOrgHour(_OrgAggregate, Base):
    """`usage_hour` summed over keys: what org-wide analytics read."""

    __tablename__ = "usage_org_hour"


class _KeyRollup:
    """Columns of the per-key rollups: measures already split by outcome, no histogram."""

    org_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    bucket: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    key_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    mode: Mapped[str] = mapped_column(Text, comment="live | test")
    requests: Mapped[int] = mapped_column(BigInteger)
    rejected: Mapped[int] = mapped_column(BigInteger)
    errors: Mapped[int] = mapped_column(BigInteger)
    client_errors: Mapped[int] = mapped_column(BigInteger)
    server_errors: Mapped[int] = mapped_column(BigInteger)
    bytes_in: Mapped[int] = mapped_column(BigInteger)
    bytes_out: Mapped[int] = mapped_column(BigInteger)
    credits: Mapped[int] = mapped_column(BigInteger)
    latency_ms_sum: Mapped[int] = mapped_column(BigInteger)
    drifted: Mapped[int] = mapped_column(BigInteger)


class UsageKeyHour(_KeyRollup, Base):
    """`usage_hour` per (org, key, hour): what ranking keys reads at a range's edges."""

    __tablename__ = "usage_key_hour"


class UsageKeyDay(_KeyRollup, Base):
    """`usage_hour` per (org, key, UTC day): what ranking keys reads for whole days."""

    __tablename__ = "usage_key_day"


class ApiKey(Base):
    """A key as announced on `tollgate.accounts.keys.v1` (owner and quota limits)."""

    __tablename__ = "api_keys"

    key_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    org_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    per_day: Mapped[int | None] = mapped_column(BigInteger)
    per_month: Mapped[int | None] = mapped_column(BigInteger)
    version: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class QuotaUsage(Base):
    """Admitted requests of a key in a day or month (UTC)."""

    __tablename__ = "quota_usage"

    key_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    period: Mapped[str] = mapped_column(Text, primary_key=True, comment="day | month")
    period_start: Mapped[date] = mapped_column(Date, primary_key=True)
    used: Mapped[int] = mapped_column(BigInteger)


class QuotaAlert(Base):
    """A threshold announced once for a key and period (never again)."""

    __tablename__ = "quota_alerts"

    key_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    period: Mapped[str] = mapped_column(Text, primary_key=True)
    period_start: Mapped[date] = mapped_column(Date, primary_key=True)
    threshold_percent: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    org_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    limit: Mapped[int] = mapped_column(BigInteger)
    used: Mapped[int] = mapped_column(BigInteger)
    crossed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApiDeprecation(Base):
    """A deprecation announced once for an API (or one of its routes) and Sunset date (a
    null date included)."""

    __tablename__ = "api_deprecations"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    api_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    route_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, comment="null: the whole API was deprecated"
    )
    sunset_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    api_version: Mapped[int] = mapped_column(BigInteger, comment="registry version announced")
    orgs_notified: Mapped[int] = mapped_column(Integer)
    announced_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


outbox = outbox_table(Base.metadata)
