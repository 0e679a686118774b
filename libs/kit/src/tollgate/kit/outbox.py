"""Transactional outbox: events written in the same transaction as the change that
caused them, then published to Kafka in order by a relay.

A service calls `enqueue(session, table, topic, key, event)` inside its transaction
(`event=None` writes a tombstone for compacted topics). `OutboxRelay` publishes
pending rows in id order and marks them sent. Only one relay per database publishes
at a time (a Postgres advisory lock), so two replicas never interleave and a key's
events stay in order. Publishing is at-least-once: a crash between the broker's ack
and the commit re-sends the batch, which consumers absorb by event id.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from datetime import timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from alembic import op
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.contracts.envelope import CloudEvent, encode
from tollgate.contracts.topics import Topic
from tollgate.kit.db import SessionMaker
from tollgate.kit.kafka import topic_name
from tollgate.kit.settings import ServiceSettings
from tollgate.kit.telemetry import current_traceparent

log = logging.getLogger(__name__)

OUTBOX_TABLE = "outbox"


def _columns() -> list[Any]:
    return [
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("topic", String(255), nullable=False, comment="contract topic name, unprefixed"),
        Column("key", String(255), nullable=True),
        Column("value", LargeBinary, nullable=True, comment="encoded CloudEvent; NULL=tombstone"),
        Column("headers", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True), nullable=True),
    ]


def outbox_table(metadata: MetaData) -> Table:
    """The outbox table on a service's metadata."""
    return Table(
        OUTBOX_TABLE,
        metadata,
        *_columns(),
        Index("ix_outbox_pending", "id", postgresql_where=text("published_at IS NULL")),
    )


def create_outbox_table() -> None:
    """Alembic `upgrade()` step creating the outbox table."""
    op.create_table(OUTBOX_TABLE, *_columns())
    op.create_index(
        "ix_outbox_pending", OUTBOX_TABLE, ["id"], postgresql_where=text("published_at IS NULL")
    )


async def enqueue(
    session: AsyncSession,
    table: Table,
    topic: Topic,
    key: str | None,
    event: CloudEvent[Any] | None,
) -> None:
    """Add an event (or a tombstone when `event` is None) to the caller's transaction."""
    headers: dict[str, str] = {}
    traceparent = current_traceparent()
    if traceparent:
        headers["traceparent"] = traceparent
    await session.execute(
        insert(table).values(
            topic=topic.name,
            key=key,
            value=encode(event) if event is not None else None,
            headers=headers,
        )
    )


class OutboxRelay:
    """Publishes a database's outbox to Kafka, in order, at least once."""

    def __init__(
        self,
        *,
        sessions: SessionMaker,
        table: Table,
        producer: AIOKafkaProducer,
        settings: ServiceSettings,
        batch_size: int = 500,
        idle_sleep: float = 0.05,
        keep_published: timedelta = timedelta(days=1),
    ) -> None:
        self._sessions = sessions
        self._table = table
        self._producer = producer
        self._settings = settings
        self._batch_size = batch_size
        self._idle_sleep = idle_sleep
        self._keep_published = keep_published
        self._lock_key = zlib.crc32(f"tollgate-outbox:{table.name}".encode())
        self.published = 0

    async def relay_once(self) -> int:
        """Publish one batch of pending rows; return how many were published (0 when
        idle or when another relay holds the lock)."""
        table = self._table
        async with self._sessions() as session, session.begin():
            got_lock = await session.scalar(select(func.pg_try_advisory_xact_lock(self._lock_key)))
            if not got_lock:
                return 0
            rows = (
                await session.execute(
                    select(table.c.id, table.c.topic, table.c.key, table.c.value, table.c.headers)
                    .where(table.c.published_at.is_(None))
                    .order_by(table.c.id)
                    .limit(self._batch_size)
                )
            ).all()
            if not rows:
                return 0
            futures = [
                await self._producer.send(
                    topic_name(row.topic, self._settings),
                    value=row.value,
                    key=row.key.encode() if row.key is not None else None,
                    headers=[(k, str(v).encode()) for k, v in row.headers.items()],
                )
                for row in rows
            ]
            await asyncio.gather(*futures)
            await session.execute(
                update(table)
                .where(table.c.id.in_([row.id for row in rows]))
                .values(published_at=func.now())
            )
        self.published += len(rows)
        return len(rows)

    async def purge_published(self) -> None:
        """Delete rows published longer ago than the retention."""
        table = self._table
        async with self._sessions() as session, session.begin():
            await session.execute(
                table.delete().where(table.c.published_at < func.now() - self._keep_published)
            )

    async def run(self) -> None:
        """Relay until cancelled; broker or database errors are retried with backoff."""
        backoff = 0.1
        rounds = 0
        while True:
            try:
                published = await self.relay_once()
                backoff = 0.1
                rounds += 1
                if rounds % 10_000 == 0:
                    await self.purge_published()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("outbox relay failed; retrying", exc_info=True)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if published < self._batch_size:
                await asyncio.sleep(self._idle_sleep)
