"""The outbox relay publishes every committed event once, in order per key, with
tombstones intact, even with two relays racing over the same table; a commit that
wrote to the outbox wakes the relay at once; an event Kafka would refuse for its size
is refused at `emit`, or set aside by the relay, never holding later events back."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer
from sqlalchemy import MetaData, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tollgate.contracts import topics
from tollgate.contracts.decoding import decode_as
from tollgate.contracts.events.accounts import UserRegistered
from tollgate.kit.db import create_engine, session_maker
from tollgate.kit.kafka import ensure_topics, make_producer, topic_name
from tollgate.kit.outbox import (
    MAX_EVENT_BYTES,
    UNPUBLISHABLE,
    OutboxRelay,
    emit,
    emit_tombstone,
    outbox_table,
)
from tollgate.kit.problems import Problem
from tollgate.kit.settings import ServiceSettings
from tollgate.kit.testing.polling import eventually


def registered(user_id: uuid.UUID) -> UserRegistered:
    return UserRegistered(
        user_id=user_id, email="a@example.com", locale="en", registered_at=datetime.now(UTC)
    )


async def read_topic(settings: ServiceSettings, expected: int) -> list[tuple[str, bytes | None]]:
    consumer = AIOKafkaConsumer(
        topic_name(topics.ACCOUNTS_EVENTS, settings),
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[tuple[str, bytes | None]] = []
    try:

        async def fetch() -> int:
            batch = await consumer.getmany(timeout_ms=200)
            for part in batch.values():
                records.extend((r.key.decode(), r.value) for r in part)
            return len(records)

        await eventually(fetch, lambda n: n >= expected, within=20, interval=0)
        await asyncio.sleep(0.5)
        await fetch()  # anything beyond the expected count would be a duplicate
    finally:
        await consumer.stop()
    return records


async def outbox_on(
    database_url: str, kafka_bootstrap: str, topic_prefix: str
) -> tuple[ServiceSettings, Table, AsyncEngine]:
    """Settings for the test broker (its topic made), and an outbox table made in the
    database at `database_url`; the caller disposes of the engine."""
    settings = ServiceSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        kafka_topic_prefix=topic_prefix,
        kafka_enable_idempotence=False,
    )
    await ensure_topics(settings, [topics.ACCOUNTS_EVENTS])
    metadata = MetaData()
    table = outbox_table(metadata)
    engine = create_engine(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return settings, table, engine


async def test_two_relays_publish_each_event_once_in_key_order(
    database_factory: Callable[[str], str], kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings, table, engine = await outbox_on(
        database_factory("kit_outbox"), kafka_bootstrap, topic_prefix
    )
    sessions = session_maker(engine)

    users = [uuid.uuid4() for _ in range(5)]
    written: dict[str, list[str]] = {str(u): [] for u in users}
    for round_ in range(60):
        async with sessions() as session, session.begin():
            for user in users:
                event = await emit(session, registered(user), subject=f"{round_}")
                written[str(user)].append(event.id)
    async with sessions() as session, session.begin():
        await emit_tombstone(session, topics.ACCOUNTS_EVENTS, str(users[0]))

    producers = [make_producer(settings, client=f"relay{i}") for i in range(2)]
    for producer in producers:
        await producer.start()
    relays = [
        OutboxRelay(sessions=sessions, table=table, producer=p, settings=settings, batch_size=37)
        for p in producers
    ]
    tasks = [asyncio.create_task(relay.run()) for relay in relays]
    try:
        records = await read_topic(settings, expected=301)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for producer in producers:
            await producer.stop()

    assert len(records) == 301
    assert sum(relay.published for relay in relays) == 301
    seen: dict[str, list[str]] = {str(u): [] for u in users}
    for key, value in records:
        if value is not None:
            seen[key].append(decode_as(value, UserRegistered).id)
    assert seen == written  # every event once, each key's events in commit order
    assert records[-1] == (str(users[0]), None) or (str(users[0]), None) in records
    async with sessions() as session:
        pending = await session.scalar(
            select(func.count()).select_from(table).where(table.c.published_at.is_(None))
        )
    assert pending == 0
    await engine.dispose()


async def test_a_commit_wakes_the_relay_instead_of_waiting_for_its_poll(
    database_factory: Callable[[str], str], kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings, table, engine = await outbox_on(
        database_factory("kit_outbox_wake"), kafka_bootstrap, topic_prefix
    )
    sessions = session_maker(engine)
    producer = make_producer(settings, client="relay-wake")
    await producer.start()
    # A poll far longer than the test: only the commit's wake-up can publish in time.
    relay = OutboxRelay(
        sessions=sessions, table=table, producer=producer, settings=settings, idle_sleep=60
    )
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(0.5)  # the relay's first round found nothing and waits
        for _ in range(3):
            async with sessions() as session, session.begin():
                await emit(session, registered(uuid.uuid4()), subject="wake")
            await asyncio.sleep(0.2)

        async def published() -> int:
            return relay.published

        assert await eventually(published, lambda n: n == 3, within=5) == 3
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await producer.stop()
        await engine.dispose()


async def test_an_event_kafka_would_refuse_holds_nothing_back(
    database_factory: Callable[[str], str], kafka_bootstrap: str, topic_prefix: str
) -> None:
    # Before: an event over Kafka's 1 MiB was written all the same; the relay failed on
    # it and retried it first for ever, and every later event (a key revocation among
    # them) stayed in the outbox.
    settings, table, engine = await outbox_on(
        database_factory("kit_outbox_large"), kafka_bootstrap, topic_prefix
    )
    sessions = session_maker(engine)
    first, last = uuid.uuid4(), uuid.uuid4()
    # The change that would make such an event is refused, and nothing of it is written.
    with pytest.raises(Problem) as refused:
        async with sessions() as session, session.begin():
            await emit(session, registered(uuid.uuid4()), subject="x" * (MAX_EVENT_BYTES + 1))
    assert (refused.value.status, refused.value.slug) == (422, "event-too-large")
    # One written before the check, which the producer refuses, is set aside.
    async with sessions() as session, session.begin():
        await emit(session, registered(first))
        await session.execute(
            insert(table).values(
                topic=topics.ACCOUNTS_EVENTS.name, key="big", value=b"x" * 1_100_000
            )
        )
        await emit(session, registered(last))
    unpublishable = UNPUBLISHABLE._value.get()
    producer = make_producer(settings, client="relay-large")
    await producer.start()
    relay = OutboxRelay(sessions=sessions, table=table, producer=producer, settings=settings)
    task = asyncio.create_task(relay.run())
    try:
        records = await read_topic(settings, expected=2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await producer.stop()
    async with sessions() as session:
        pending = await session.scalar(
            select(func.count()).select_from(table).where(table.c.published_at.is_(None))
        )
    await engine.dispose()
    # Both, each once (two keys: two partitions, so no order between them).
    assert sorted(key for key, _ in records) == sorted([str(first), str(last)])
    assert UNPUBLISHABLE._value.get() == unpublishable + 1
    assert pending == 0
