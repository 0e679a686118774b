"""Self-tests of the pytest harness: each dependency it hands out really answers."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tollgate.kit.testing import BrokerControl, Harness, unique_name

# Tansu lets a new member into a group only after the previous member's session has
# expired (~2 x session timeout even after a clean LeaveGroup), so keep it short here.
CONSUMER_TIMINGS = {"session_timeout_ms": 1500, "heartbeat_interval_ms": 500}


async def _create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name=name, num_partitions=partitions, replication_factor=1)]
        )
    finally:
        await admin.close()


async def _caught_up(consumer: AIOKafkaConsumer) -> bool:
    """True once every assigned partition's position has reached its high watermark."""
    assignment = consumer.assignment()
    if not assignment:
        return False
    for tp in assignment:
        highwater = consumer.highwater(tp)
        if highwater is None or await consumer.position(tp) < highwater:
            return False
    return True


async def test_kafka_group_consumes_everything_once(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}harness"
    group = unique_name("harness-group")
    await _create_topic(kafka_bootstrap, topic, partitions=3)

    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=False
    )
    await producer.start()
    try:
        for i in range(30):
            await producer.send_and_wait(topic, f"value-{i}".encode(), key=f"k{i % 7}".encode())
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **CONSUMER_TIMINGS,
    )
    await consumer.start()
    seen: list[bytes] = []
    partitions: set[int] = set()
    try:
        async with asyncio.timeout(12):
            while len(seen) < 30:
                batches = await consumer.getmany(timeout_ms=500)
                for tp, records in batches.items():
                    partitions.add(tp.partition)
                    seen.extend(r.value for r in records if r.value is not None)
        await consumer.commit()
    finally:
        await consumer.stop()
    assert sorted(seen) == sorted(f"value-{i}".encode() for i in range(30))
    assert len(partitions) > 1, "keys should spread over the 3 partitions"

    again = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **CONSUMER_TIMINGS,
    )
    await again.start()
    extra: list[bytes] = []
    try:
        async with asyncio.timeout(12):
            while True:
                batches = await again.getmany(timeout_ms=300)
                extra.extend(r.value for rs in batches.values() for r in rs if r.value)
                if await _caught_up(again):
                    break
        assert {tp.partition for tp in again.assignment()} == {0, 1, 2}
        for partition in range(3):
            tp = TopicPartition(topic, partition)
            assert await again.position(tp) == again.highwater(tp)
    finally:
        await again.stop()
    assert extra == []


async def test_paused_broker_does_not_answer(
    kafka_broker: BrokerControl, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}pause"
    await _create_topic(kafka_broker.bootstrap, topic, partitions=1)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_broker.bootstrap,
        acks="all",
        enable_idempotence=False,
        request_timeout_ms=1000,
    )
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"before")
        with kafka_broker.paused():
            assert kafka_broker.is_paused
            with pytest.raises((TimeoutError, KafkaError)):
                await asyncio.wait_for(producer.send_and_wait(topic, b"while-paused"), 1.0)
        assert not kafka_broker.is_paused
        async with asyncio.timeout(10):
            metadata = await producer.send_and_wait(topic, b"after")
        assert metadata.offset >= 1
    finally:
        await producer.stop()


async def test_databases_are_fresh_and_isolated(
    database_factory: Callable[[str], str],
) -> None:
    first, second = database_factory("harness"), database_factory("harness")
    assert first.startswith("postgresql+asyncpg://")
    assert re.search(r"/test_harness_[0-9a-f]{8}$", first)
    assert first != second

    engine_a = create_async_engine(first)
    engine_b = create_async_engine(second)
    try:
        async with engine_a.begin() as conn:
            assert (await conn.execute(text("select 1"))).scalar_one() == 1
            await conn.execute(text("create table harness_probe (id int primary key)"))
            await conn.execute(text("insert into harness_probe values (1)"))
        async with engine_a.connect() as conn:
            count = await conn.execute(text("select count(*) from harness_probe"))
            assert count.scalar_one() == 1
        async with engine_b.connect() as conn:
            found = await conn.execute(text("select to_regclass('public.harness_probe')"))
            assert found.scalar_one() is None
    finally:
        await engine_a.dispose()
        await engine_b.dispose()


async def test_copies_of_a_template_carry_its_schema_and_never_share_rows(
    tollgate_harness: Harness,
) -> None:
    """What a service's tests get from `database_maker(migrations=...)`: each database a
    separate copy of the session's migrated template (here a hand-made one)."""
    template_url = tollgate_harness.create_database("template_probe")
    engine = create_async_engine(template_url)
    async with engine.begin() as conn:
        await conn.execute(text("create table probe (id int primary key)"))
        await conn.execute(text("insert into probe values (1)"))
    await engine.dispose()  # nobody may be connected to a template while it is copied
    tollgate_harness._templates["probe.package"] = template_url.rsplit("/", 1)[1]

    make = tollgate_harness.database_maker(migrations="probe.package")
    first, second = make("copy"), make("copy")
    assert re.search(r"/test_copy_[0-9a-f]{8}$", first)
    engine_a, engine_b = create_async_engine(first), create_async_engine(second)
    try:
        async with engine_a.begin() as conn:
            await conn.execute(text("insert into probe values (2)"))
        async with engine_b.connect() as conn:
            rows = await conn.execute(text("select id from probe order by id"))
            assert rows.scalars().all() == [1]
        async with engine_a.connect() as conn:
            rows = await conn.execute(text("select id from probe order by id"))
            assert rows.scalars().all() == [1, 2]
    finally:
        await engine_a.dispose()
        await engine_b.dispose()


def test_postgres_admin_url_is_server_level(postgres_admin_url: str) -> None:
    assert postgres_admin_url.startswith("postgresql+asyncpg://")
    assert postgres_admin_url.endswith("/postgres")


async def test_redis_round_trip(redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    key = unique_name("harness")
    try:
        await client.set(key, b"hello", ex=60)
        assert await client.get(key) == b"hello"
        await client.delete(key)
    finally:
        await client.aclose()


def test_topic_prefix_is_unique_per_test(topic_prefix: str) -> None:
    assert re.fullmatch(r"t[0-9a-f]{8}\.", topic_prefix)


def test_unique_name() -> None:
    assert re.fullmatch(r"billing_[0-9a-f]{8}", unique_name("billing"))
    assert re.fullmatch(r"[0-9a-f]{8}", unique_name(""))
    assert unique_name("x") != unique_name("x")


def test_explicit_env_wins_and_is_normalised() -> None:
    harness = Harness(
        env={
            "TEST_KAFKA_BOOTSTRAP": "kafka.example:9092",
            "TEST_DATABASE_URL": "postgresql://app:secret@db.example:6543/postgres",
            "TEST_REDIS_URL": "redis://cache.example:6380/2",
        }
    )
    try:
        assert harness.header() == (
            "tollgate harness: kafka=env kafka.example:9092, "
            "postgres=env db.example:6543, redis=env cache.example:6380"
        )
        assert harness.postgres_admin_url() == (
            "postgresql+asyncpg://app:secret@db.example:6543/postgres"
        )
        assert harness.kafka_bootstrap() == "kafka.example:9092"
        assert harness.redis_url() == "redis://cache.example:6380/2"
        assert not harness.broker_control().owned
    finally:
        harness.close()


def test_pause_is_skipped_for_a_broker_the_harness_does_not_own() -> None:
    control = BrokerControl("kafka.example:9092")
    with pytest.raises(pytest.skip.Exception, match="not owned"):
        control.pause()
