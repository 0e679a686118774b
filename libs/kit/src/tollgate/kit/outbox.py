"""Transactional outbox: events written in the same transaction as the change that
caused them, then published to Kafka in order by a relay.

A service calls `emit(session, data)` (or `emit_many` for a batch, one INSERT) inside
its transaction: the topic comes from the contract registry, the key from the payload
(`kafka_key`), the CloudEvents `source` from the topic's owner and the instance id the
runtime put on the session maker (`bind_instance`). `emit_tombstone(session, topic,
key)` deletes a key on a compacted topic. There is no other way into the outbox.
`OutboxRelay` publishes pending rows in id order and marks them sent. Only one relay
per database publishes at a time (a Postgres advisory lock), so two replicas never
interleave and a key's events stay in order. Publishing is at-least-once: a crash
between the broker's ack and the commit re-sends the batch, which consumers absorb by
event id.

Size: an encoded event may have `MAX_EVENT_BYTES`. `emit` refuses a bigger one with a
422 problem (`event-too-large`), so the change that would cause it is not made: Kafka
would never take it, and a relay that publishes in order would hold every later event
back behind it (a key revocation among them). A row the producer refuses all the same
for its size (written before this check) is set aside: logged as an error, counted in
`tollgate_outbox_unpublishable_total` and marked published, so the events after it
still go out. A broker must take records of 1 MiB (Kafka's default
`max.message.bytes`); one configured smaller refuses whole batches, which are retried.

Latency: a transaction that wrote to the outbox wakes this process's relays when it
commits, so an event leaves within one relay round of the commit rather than up to
`idle_sleep` later (what a role change or revocation takes to reach every service
starts here). Rows committed by other processes (another replica, a CLI) are still
found by the `idle_sleep` poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import zlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError
from prometheus_client import Counter
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
from sqlalchemy import event as orm_event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from tollgate.contracts.envelope import CloudEvent, EventData, encode, new_event
from tollgate.contracts.topics import Topic, topic_for
from tollgate.kit.db import SessionMaker
from tollgate.kit.jobs import every
from tollgate.kit.kafka import topic_name
from tollgate.kit.problems import Unprocessable
from tollgate.kit.settings import ServiceSettings
from tollgate.kit.telemetry import current_traceparent

log = logging.getLogger(__name__)

D = TypeVar("D", bound=EventData)

OUTBOX_TABLE = "outbox"
INSTANCE_INFO_KEY = "tollgate.instance_id"
"""`Session.info` entry naming the replica in the `source` of emitted events."""

MAX_EVENT_BYTES = 1_000_000
"""The largest encoded event the outbox takes: Kafka's default limit of a record (a
producer request's and a topic's `max.message.bytes`, about 1 MiB) less room for its
key and headers."""

UNPUBLISHABLE = Counter(
    "tollgate_outbox_unpublishable",
    "Outbox rows the producer refused for their size, set aside so later events still go out",
)

_RELAY_WAKES: dict[asyncio.Event, asyncio.AbstractEventLoop] = {}
"""The wake-up event of each running relay of this process, with its event loop (a
relay removes its own on the way out; a plain dict: its single operations are atomic
across threads, and a weak one's removal callbacks ran at garbage collection, in
whatever thread, and raised there)."""


def _wake_relays(_session: Session) -> None:
    """`after_commit` of a session that wrote to the outbox: every relay looks now."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    for wake, loop in list(_RELAY_WAKES.items()):
        if loop is running:
            wake.set()
        elif loop.is_closed():
            _RELAY_WAKES.pop(wake, None)  # its relay never got to unregister
        else:
            with contextlib.suppress(RuntimeError):  # closed since the check
                loop.call_soon_threadsafe(wake.set)


def _wake_relays_on_commit(session: AsyncSession) -> None:
    sync = session.sync_session
    if not orm_event.contains(sync, "after_commit", _wake_relays):
        orm_event.listen(sync, "after_commit", _wake_relays)


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
    from alembic import op  # only migrations need alembic: not imported by a running service

    op.create_table(OUTBOX_TABLE, *_columns())
    op.create_index(
        "ix_outbox_pending", OUTBOX_TABLE, ["id"], postgresql_where=text("published_at IS NULL")
    )


def bind_instance(sessions: SessionMaker, instance_id: str) -> None:
    """Name this replica in the `source` of every event emitted through `sessions`."""
    sessions.configure(info={INSTANCE_INFO_KEY: instance_id})


def event_source(session: AsyncSession, topic: Topic) -> str:
    """`tollgate/<owner>/<instance>`: the owner is the service in the topic's name
    (`tollgate.<owner>.<what>.v1`), the instance what `bind_instance` set (else this
    process, as `ServiceSettings.instance_id` defaults to)."""
    instance = session.info.get(INSTANCE_INFO_KEY) or f"{socket.gethostname()}-{os.getpid()}"
    return f"tollgate/{topic.name.split('.')[1]}/{instance}"


async def emit(
    session: AsyncSession,
    data: D,
    *,
    subject: str | None = None,
    time: datetime | None = None,
) -> CloudEvent[D]:
    """Add `data` to the caller's transaction on its contract topic, keyed as the
    contract says, and return the envelope written."""
    topic = topic_for(type(data))
    event = new_event(data, source=event_source(session, topic), subject=subject, time=time)
    await _write(session, topic, data.kafka_key(), _publishable(encode(event)))
    return event


def _publishable(value: bytes) -> bytes:
    """`value`, or the 422 problem of an event Kafka would never take."""
    if len(value) > MAX_EVENT_BYTES:
        raise Unprocessable(
            "event-too-large",
            f"This change cannot be published: its event would be {len(value):,} bytes, "
            f"over the {MAX_EVENT_BYTES:,} an event may have. Make it smaller.",
        )
    return value


async def emit_many(
    session: AsyncSession, items: Sequence[tuple[EventData, str | None]]
) -> list[CloudEvent[Any]]:
    """`emit` for several (data, subject) pairs in one INSERT (a batch worker's
    round); returns the envelopes in the order given."""
    events: list[CloudEvent[Any]] = []
    rows = []
    headers = _headers()
    for data, subject in items:
        topic = topic_for(type(data))
        event = new_event(data, source=event_source(session, topic), subject=subject)
        events.append(event)
        rows.append(
            {
                "topic": topic.name,
                "key": data.kafka_key(),
                "value": _publishable(encode(event)),
                "headers": headers,
            }
        )
    if rows:
        await session.execute(insert(_WRITE_TABLE).values(rows))
        _wake_relays_on_commit(session)
    return events


async def emit_tombstone(session: AsyncSession, topic: Topic, key: str) -> None:
    """Add a tombstone (deletion of `key` on a compacted topic) to the transaction."""
    await _write(session, topic, key, None)


_WRITE_TABLE = outbox_table(MetaData())
"""Every service's outbox has this layout and name; inserts need no service metadata."""


def _headers() -> dict[str, str]:
    traceparent = current_traceparent()
    return {"traceparent": traceparent} if traceparent else {}


async def _write(session: AsyncSession, topic: Topic, key: str | None, value: bytes | None) -> None:
    await session.execute(
        insert(_WRITE_TABLE).values(topic=topic.name, key=key, value=value, headers=_headers())
    )
    _wake_relays_on_commit(session)


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
        self._wake = asyncio.Event()
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
            sent: list[asyncio.Future[Any]] = []
            refused: list[Any] = []
            for row in rows:
                try:
                    future = await self._producer.send(
                        topic_name(row.topic, self._settings),
                        value=row.value,
                        key=row.key.encode() if row.key is not None else None,
                        headers=[(k, str(v).encode()) for k, v in row.headers.items()],
                    )
                except MessageSizeTooLargeError:
                    refused.append(row)
                else:
                    sent.append(future)
            # A refusal by the broker fails every record of its batch, the small ones
            # beside the big one too: it is retried like any failure, never set aside.
            await asyncio.gather(*sent)
            for row in refused:
                UNPUBLISHABLE.inc()
                log.error(
                    "outbox row refused by the producer for its size, set aside",
                    extra={
                        "outbox_id": row.id,
                        "topic": row.topic,
                        "key": row.key,
                        "bytes": len(row.value or b""),
                    },
                )
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
        """Relay until cancelled: again at once after a full batch or when a transaction
        of this process that wrote to the outbox commits, else after `idle_sleep`;
        broker or database errors are retried with back-off (up to 5 s)."""
        rounds = 0
        _RELAY_WAKES[self._wake] = asyncio.get_running_loop()

        async def step() -> bool:
            nonlocal rounds
            published = await self.relay_once()
            rounds += 1
            if rounds % 10_000 == 0:
                await self.purge_published()
            return published >= self._batch_size

        try:
            await every(
                self._idle_sleep, step, name="outbox relay", wake=self._wake, max_backoff=5.0
            )
        finally:
            _RELAY_WAKES.pop(self._wake, None)
