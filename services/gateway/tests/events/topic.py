"""The request topic on the test broker: write records to it, read its event ids."""

from __future__ import annotations

import asyncio
import time

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition


async def produce(
    bootstrap: str, topic: str, values: list[bytes], key: bytes | None = None
) -> None:
    """Send `values` (with `key`, or spread over seven org keys) and wait for them."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    try:
        await producer.start()  # inside: a start cut short is stopped too
        for n, value in enumerate(values):
            await producer.send(topic, value, key=key or b"org-%d" % (n % 7))
        await producer.flush()
    finally:
        await producer.stop()


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """Each partition's end offset."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        await consumer.topics()
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return {tp.partition: end for tp, end in (await consumer.end_offsets(partitions)).items()}
    finally:
        await consumer.stop()


async def event_ids(bootstrap: str, topic: str) -> list[str]:
    """The id of every record on `topic`, read to the high watermark."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        await consumer.topics()
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ids: list[str] = []
        while True:
            batches = await consumer.getmany(timeout_ms=300, max_records=10_000)
            for records in batches.values():
                ids.extend(orjson.loads(r.value)["id"] for r in records if r.value is not None)
            positions = [await consumer.position(tp) for tp in partitions]
            highs = [consumer.highwater(tp) for tp in partitions]
            if all(h is not None and p >= h for p, h in zip(positions, highs, strict=True)):
                return ids
    finally:
        await consumer.stop()


async def wait_event_ids(bootstrap: str, topic: str, count: int, within: float) -> list[str]:
    """The ids on `topic` once there are at least `count` (or at the deadline)."""
    deadline = time.monotonic() + within
    while True:
        ids = await event_ids(bootstrap, topic)
        if len(ids) >= count or time.monotonic() > deadline:
            return ids
        await asyncio.sleep(0.3)
