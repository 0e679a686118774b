"""SQL of ingestion: consumer positions, request log rows, aggregate upserts.

Log rows go in with COPY (`insert_log_rows`); other rows travel as column arrays
through `unnest`, so a batch of thousands of events is a handful of statements.
Aggregate upserts add counts and merge histograms in place (`usage_hist_merge`); rows
are sent sorted by primary key so that concurrent transactions lock them in the same
order and cannot deadlock.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.kit.db import BIGINT_MAX
from tollgate.usage.histogram import merge, to_json
from tollgate.usage.models import NIL


async def lock_positions(
    session: AsyncSession, group_id: str, topic: str, partitions: Sequence[int]
) -> dict[int, int]:
    """The next offset to take in for each partition, locked until the transaction
    ends (a second consumer of the same partition waits, then sees our update)."""
    ordered = sorted(set(partitions))
    await session.execute(
        text(
            "INSERT INTO consumer_positions (group_id, topic, partition, next_offset) "
            "SELECT :group_id, :topic, p, 0 FROM unnest(CAST(:partitions AS integer[])) AS p "
            "ON CONFLICT DO NOTHING"
        ),
        {"group_id": group_id, "topic": topic, "partitions": ordered},
    )
    rows = await session.execute(
        text(
            "SELECT partition, next_offset FROM consumer_positions "
            "WHERE group_id = :group_id AND topic = :topic "
            "AND partition = ANY(CAST(:partitions AS integer[])) "
            "ORDER BY partition FOR UPDATE"
        ),
        {"group_id": group_id, "topic": topic, "partitions": ordered},
    )
    return {int(partition): int(offset) for partition, offset in rows}


async def save_positions(
    session: AsyncSession, group_id: str, topic: str, next_offsets: Mapping[int, int]
) -> None:
    """Move positions forward (never back) to `next_offsets`."""
    partitions = sorted(next_offsets)
    await session.execute(
        text(
            "UPDATE consumer_positions AS c SET next_offset = GREATEST(c.next_offset, v.o), "
            "updated_at = now() "
            "FROM unnest(CAST(:partitions AS integer[]), CAST(:offsets AS bigint[])) AS v(p, o) "
            "WHERE c.group_id = :group_id AND c.topic = :topic AND c.partition = v.p"
        ),
        {
            "group_id": group_id,
            "topic": topic,
            "partitions": partitions,
            "offsets": [next_offsets[p] for p in partitions],
        },
    )


async def reset_positions(
    session: AsyncSession, group_id: str, topic: str, partitions: Sequence[int]
) -> None:
    """Move positions back to 0: their log is gone (a new broker, a recreated topic)."""
    await session.execute(
        text(
            "UPDATE consumer_positions SET next_offset = 0, updated_at = now() "
            "WHERE group_id = :group_id AND topic = :topic "
            "AND partition = ANY(CAST(:partitions AS integer[]))"
        ),
        {"group_id": group_id, "topic": topic, "partitions": list(partitions)},
    )


async def positions(session: AsyncSession, group_id: str, topic: str) -> dict[int, int]:
    """Every stored position of a group on a topic (for operators and tests)."""
    rows = await session.execute(
        text(
            "SELECT partition, next_offset FROM consumer_positions "
            "WHERE group_id = :group_id AND topic = :topic"
        ),
        {"group_id": group_id, "topic": topic},
    )
    return {int(partition): int(offset) for partition, offset in rows}


LOG_COLUMNS = (
    "request_id",
    "time",
    "org_id",
    "key_id",
    "api_id",
    "route_id",
    "method",
    "path",
    "status",
    "outcome",
    "reason",
    "latency_ms",
    "upstream_latency_ms",
    "request_bytes",
    "response_bytes",
    "client_ip",
    "cost",
    "gateway_instance",
    "mode",
    "served_by",
    "contract_drift",
)

LogRow = tuple[
    uuid.UUID,
    datetime,
    uuid.UUID | None,
    uuid.UUID | None,
    uuid.UUID | None,
    uuid.UUID | None,
    str,
    str,
    int,
    str,
    str | None,
    int,
    int | None,
    int | None,
    int | None,
    str,
    int,
    str,
    str,
    str | None,
    str | None,
]
"""One request log row, values in `LOG_COLUMNS` order (`contract_drift` as JSON text)."""

_INSERT_LOG = text(
    f"""
    INSERT INTO request_log ({", ".join(LOG_COLUMNS)})
    SELECT * FROM unnest(
        CAST(:request_id AS uuid[]), CAST(:time AS timestamptz[]), CAST(:org_id AS uuid[]),
        CAST(:key_id AS uuid[]), CAST(:api_id AS uuid[]), CAST(:route_id AS uuid[]),
        CAST(:method AS text[]), CAST(:path AS text[]), CAST(:status AS smallint[]),
        CAST(:outcome AS text[]), CAST(:reason AS text[]), CAST(:latency_ms AS integer[]),
        CAST(:upstream_latency_ms AS integer[]), CAST(:request_bytes AS bigint[]),
        CAST(:response_bytes AS bigint[]), CAST(:client_ip AS text[]), CAST(:cost AS bigint[]),
        CAST(:gateway_instance AS text[]), CAST(:mode AS text[]), CAST(:served_by AS text[]),
        CAST(:contract_drift AS jsonb[])
    )
    ON CONFLICT (request_id, time) DO NOTHING
    RETURNING request_id, time
    """
)


async def insert_log_rows(
    session: AsyncSession, rows: Sequence[LogRow]
) -> list[tuple[uuid.UUID, datetime]]:
    """Insert request log rows; a request already logged is skipped. Returns the
    (request id, time) of every row actually inserted.

    The rows are first sent with COPY, in a savepoint: about half the cost of an
    INSERT, and a batch almost never holds a row already logged (redeliveries are
    skipped by position before this). When one does, COPY fails on the primary key,
    the savepoint is rolled back and the batch goes in again with `INSERT … ON
    CONFLICT DO NOTHING`, which skips the logged rows.
    """
    if not rows:
        return []
    connection = await session.connection()
    raw = (await connection.get_raw_connection()).driver_connection
    assert raw is not None
    try:
        # asyncpg nests this in the session's transaction as a savepoint.
        async with raw.transaction():
            await raw.copy_records_to_table("request_log", records=rows, columns=LOG_COLUMNS)
    except asyncpg.UniqueViolationError:
        values = zip(*rows, strict=True)
        columns = {name: list(column) for name, column in zip(LOG_COLUMNS, values, strict=True)}
        result = await session.execute(_INSERT_LOG, columns)
        return [(row[0], row[1]) for row in result]
    return [(row[0], row[1]) for row in rows]


AggregateKey = tuple[datetime, uuid.UUID, uuid.UUID, uuid.UUID, uuid.UUID, str, int, str, str]
"""(bucket, org, key, API, route, method, status, rejection reason or '', mode); the
mode follows the key, so it is no part of the tables' primary key."""


@dataclass
class AggregateValues:
    """What one aggregate row adds: counts, sums and a sparse latency histogram."""

    requests: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    credits: int = 0
    latency_ms_sum: int = 0
    latency_hist: dict[int, int] = field(default_factory=dict)
    drifted: int = 0

    def copy(self) -> AggregateValues:
        return replace(self, latency_hist=dict(self.latency_hist))

    def add(self, other: AggregateValues) -> None:
        """Count `other` in too."""
        self.requests += other.requests
        self.bytes_in += other.bytes_in
        self.bytes_out += other.bytes_out
        self.credits += other.credits
        self.latency_ms_sum += other.latency_ms_sum
        self.drifted += other.drifted
        self.latency_hist = merge((self.latency_hist, other.latency_hist))


_AGGREGATE_TABLES = ("usage_minute", "usage_hour")
_SUMS = ("requests", "bytes_in", "bytes_out", "credits", "latency_ms_sum", "drifted")


def _saturating_add(column: str) -> str:
    """`column = u.column + excluded.column`, saturating at `BIGINT_MAX` instead of failing
    (both sides are ≥ 0, so `BIGINT_MAX - excluded` never overflows)."""
    return (
        f"{column} = CASE WHEN u.{column} > {BIGINT_MAX} - excluded.{column} "
        f"THEN {BIGINT_MAX} ELSE u.{column} + excluded.{column} END"
    )


def _capped(value: int) -> int:
    """A batch's own sum as a bigint holds it (see `BIGINT_MAX`)."""
    return min(value, BIGINT_MAX)


_ORG_TABLES = ("usage_org_minute", "usage_org_hour")


def _upsert_sql(table: str) -> Any:
    keyed = table in _AGGREGATE_TABLES
    key = "key_id, " if keyed else ""
    key_array = "CAST(:key_id AS uuid[]), " if keyed else ""
    conflict = "key_id" if keyed else "mode"  # the org rollups have mode in their key
    return text(
        f"""
        INSERT INTO {table} AS u (
            org_id, bucket, {key}api_id, route_id, method, status, reason,
            requests, bytes_in, bytes_out, credits, latency_ms_sum, latency_hist, mode, drifted
        )
        SELECT org_id, bucket, {key}api_id, route_id, method, status, reason,
               requests, bytes_in, bytes_out, credits, latency_ms_sum, latency_hist::jsonb,
               mode, drifted
        FROM unnest(
            CAST(:org_id AS uuid[]), CAST(:bucket AS timestamptz[]), {key_array}
            CAST(:api_id AS uuid[]), CAST(:route_id AS uuid[]), CAST(:method AS text[]),
            CAST(:status AS smallint[]), CAST(:reason AS text[]), CAST(:requests AS bigint[]),
            CAST(:bytes_in AS bigint[]), CAST(:bytes_out AS bigint[]),
            CAST(:credits AS bigint[]), CAST(:latency_ms_sum AS bigint[]),
            CAST(:latency_hist AS text[]), CAST(:mode AS text[]), CAST(:drifted AS bigint[])
        ) AS v(org_id, bucket, {key}api_id, route_id, method, status, reason,
               requests, bytes_in, bytes_out, credits, latency_ms_sum, latency_hist, mode,
               drifted)
        ON CONFLICT (org_id, bucket, {conflict}, api_id, route_id, method, status, reason)
        DO UPDATE SET
            {", ".join(_saturating_add(name) for name in _SUMS)},
            latency_hist = usage_hist_merge(u.latency_hist, excluded.latency_hist)
        """
    )


_UPSERTS = {table: _upsert_sql(table) for table in (*_AGGREGATE_TABLES, *_ORG_TABLES)}


def by_org(
    aggregates: Mapping[AggregateKey, AggregateValues],
) -> dict[AggregateKey, AggregateValues]:
    """`aggregates` summed over keys (the key id set to nil): rows of the org rollups."""
    summed: dict[AggregateKey, AggregateValues] = {}
    for key, values in aggregates.items():
        bucket, org_id, _, api_id, route_id, method, status, reason, mode = key
        org_key: AggregateKey = (
            bucket,
            org_id,
            NIL,
            api_id,
            route_id,
            method,
            status,
            reason,
            mode,
        )
        total = summed.get(org_key)
        if total is None:
            summed[org_key] = values.copy()
        else:
            total.add(values)
    return summed


def _one_row_per_primary_key(
    aggregates: Mapping[AggregateKey, AggregateValues],
) -> Mapping[AggregateKey, AggregateValues]:
    """Rows of `usage_minute` / `usage_hour`, whose primary key has no mode (it follows
    the key): a key seen in both modes in one bucket (only the nil key of key-less
    rejections can be) is one row under the first mode in order ('live'); two rows with
    one primary key in an upsert would make Postgres refuse the whole batch."""
    if len({key[:8] for key in aggregates}) == len(aggregates):
        return aggregates  # the usual case: nothing to merge
    merged: dict[AggregateKey, AggregateValues] = {}
    first: dict[tuple[object, ...], AggregateKey] = {}
    for key in sorted(aggregates, key=lambda k: k[8]):
        values = aggregates[key]
        held = first.get(key[:8])
        if held is None:
            first[key[:8]] = key
            merged[key] = values.copy()
        else:
            merged[held].add(values)
    return merged


KEY_MEASURES = (
    "requests",
    "rejected",
    "errors",
    "client_errors",
    "server_errors",
    "bytes_in",
    "bytes_out",
    "credits",
    "latency_ms_sum",
    "drifted",
)
KeyRollupKey = tuple[uuid.UUID, datetime, uuid.UUID, str]
"""(org, bucket, key, mode) of `usage_key_hour` / `usage_key_day`."""


def by_key(
    hours: Mapping[AggregateKey, AggregateValues], *, days: bool
) -> dict[KeyRollupKey, list[int]]:
    """Hour aggregates summed per (org, hour or UTC day, key): the `KEY_MEASURES`. The
    mode is no part of these tables' primary key (it follows the key): a key seen in both
    modes in one batch (only the nil key of key-less rejections can be) is one row, under
    the first mode in order ('live'), as `usage_org_rollup_rebuild()` does."""
    summed: dict[tuple[uuid.UUID, datetime, uuid.UUID], list[int]] = {}
    modes: dict[tuple[uuid.UUID, datetime, uuid.UUID], str] = {}
    for key, v in hours.items():
        bucket, org_id, key_id, _, _, _, status, reason, mode = key
        if days:
            bucket = bucket.replace(hour=0)
        slot = (org_id, bucket, key_id)
        total = summed.get(slot)
        if total is None:
            total = summed[slot] = [0] * len(KEY_MEASURES)
            modes[slot] = mode
        elif mode < modes[slot]:
            modes[slot] = mode
        done = not reason
        error = done and status >= 400
        total[0] += v.requests
        total[1] += 0 if done else v.requests
        total[2] += v.requests if error else 0
        total[3] += v.requests if error and status < 500 else 0
        total[4] += v.requests if error and status >= 500 else 0
        total[5] += v.bytes_in
        total[6] += v.bytes_out
        total[7] += v.credits
        total[8] += v.latency_ms_sum if done else 0
        total[9] += v.drifted
    return {(*slot, modes[slot]): total for slot, total in summed.items()}


def _key_upsert_sql(table: str) -> Any:
    measures = ", ".join(KEY_MEASURES)
    arrays = ", ".join(f"CAST(:{name} AS bigint[])" for name in KEY_MEASURES)
    updates = ", ".join(_saturating_add(name) for name in KEY_MEASURES)
    return text(
        f"""
        INSERT INTO {table} AS u (org_id, bucket, key_id, mode, {measures})
        SELECT * FROM unnest(
            CAST(:org_id AS uuid[]), CAST(:bucket AS timestamptz[]), CAST(:key_id AS uuid[]),
            CAST(:mode AS text[]), {arrays}
        )
        ON CONFLICT (org_id, bucket, key_id) DO UPDATE SET {updates}
        """
    )


_KEY_UPSERTS = {table: _key_upsert_sql(table) for table in ("usage_key_hour", "usage_key_day")}


async def add_to_key_rollup(
    session: AsyncSession, table: str, rollup: Mapping[KeyRollupKey, list[int]]
) -> None:
    """Add `rollup` (see `by_key`) to `usage_key_hour` or `usage_key_day`."""
    if not rollup:
        return
    slots = sorted(rollup)  # primary key order: no deadlocks
    columns: dict[str, list[Any]] = {
        "org_id": [s[0] for s in slots],
        "bucket": [s[1] for s in slots],
        "key_id": [s[2] for s in slots],
        "mode": [s[3] for s in slots],
    }
    for n, name in enumerate(KEY_MEASURES):
        columns[name] = [_capped(rollup[s][n]) for s in slots]
    await session.execute(_KEY_UPSERTS[table], columns)


async def add_to_aggregates(
    session: AsyncSession,
    table: str,
    aggregates: Mapping[AggregateKey, AggregateValues],
) -> None:
    """Add `aggregates` to `table` (`usage_minute`, `usage_hour`, or with the key ids
    ignored, `usage_org_minute`, `usage_org_hour`: see `by_org`)."""
    if not aggregates:
        return
    if table in _AGGREGATE_TABLES:
        aggregates = _one_row_per_primary_key(aggregates)
    # Primary key order (org first), the same in every transaction: no deadlocks.
    if table in _ORG_TABLES:
        keys = sorted(aggregates, key=lambda k: (k[1], k[0], k[8], k[3], k[4], k[5], k[6], k[7]))
    else:
        keys = sorted(aggregates, key=lambda k: (k[1], k[0], k[2], k[3], k[4], k[5], k[6], k[7]))
    columns: dict[str, list[Any]] = {
        name: []
        for name in (
            "org_id",
            "bucket",
            "key_id",
            "api_id",
            "route_id",
            "method",
            "status",
            "reason",
            "requests",
            "bytes_in",
            "bytes_out",
            "credits",
            "latency_ms_sum",
            "latency_hist",
            "mode",
            "drifted",
        )
    }
    for key in keys:
        bucket, org_id, key_id, api_id, route_id, method, status, reason, mode = key
        values = aggregates[key]
        columns["org_id"].append(org_id)
        columns["bucket"].append(bucket)
        columns["key_id"].append(key_id)
        columns["api_id"].append(api_id)
        columns["route_id"].append(route_id)
        columns["method"].append(method)
        columns["status"].append(status)
        columns["reason"].append(reason)
        columns["requests"].append(_capped(values.requests))
        columns["bytes_in"].append(_capped(values.bytes_in))
        columns["bytes_out"].append(_capped(values.bytes_out))
        columns["credits"].append(_capped(values.credits))
        columns["latency_ms_sum"].append(_capped(values.latency_ms_sum))
        columns["latency_hist"].append(orjson.dumps(to_json(values.latency_hist)).decode())
        columns["mode"].append(mode)
        columns["drifted"].append(_capped(values.drifted))
    if table in _ORG_TABLES:
        del columns["key_id"]
    await session.execute(_UPSERTS[table], columns)
