"""Before resending a doubtful batch, the publisher reads the request topic for the
events already there: on a real broker, reading what arrived since the batch, never
the whole topic."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tollgate.contracts import topics
from tollgate.gateway.config import Settings
from tollgate.gateway.events import publisher as publisher_module
from tollgate.gateway.events.journal import Journal
from tollgate.gateway.events.publisher import REJECTED, EventPublisher
from tollgate.gateway.events.spool import Spool
from tollgate.kit.kafka import ensure_topics, topic_name

from .topic import end_offsets, event_ids, produce, wait_event_ids

OLD_RECORDS = 20_000


def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records the doubtful check's consumer fetched, one entry per fetch."""
    reads: list[int] = []
    real = AIOKafkaConsumer.getmany

    async def getmany(self: AIOKafkaConsumer, *args: Any, **kwargs: Any) -> Any:
        batches = await real(self, *args, **kwargs)
        reads.append(sum(len(found) for found in batches.values()))
        return batches

    monkeypatch.setattr(AIOKafkaConsumer, "getmany", getmany)
    return reads


async def test_a_doubtful_batch_is_checked_against_what_arrived_since_not_the_whole_topic(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: a worker with no acknowledged offsets (a new slot, a first batch that
    # failed) read the topic from its beginning within 30 s, every retry: on a topic
    # of a few million records the check never ended and the worker spooled for good.
    settings = Settings(
        spool_dir=tmp_path, kafka_bootstrap_servers=kafka_bootstrap, kafka_topic_prefix=topic_prefix
    )
    await ensure_topics(settings, [topics.GATEWAY_REQUESTS])
    topic = topic_name(topics.GATEWAY_REQUESTS, settings)
    old = [orjson.dumps({"id": f"old-{n}", "time": "x"}) for n in range(OLD_RECORDS)]
    await produce(kafka_bootstrap, topic, old)
    # The margin for clock steps is a minute; a test cannot wait that long. (Tansu
    # stamps records with their append time, Kafka by default with the producer's.)
    monkeypatch.setattr(publisher_module, "_CLOCK_MARGIN_MS", 500)
    await asyncio.sleep(1.0)

    publisher = EventPublisher(settings)  # a new spool: no acknowledged offsets
    for n in range(10):
        publisher.publish("org-1", REJECTED, {"request_id": f"req-{n}", "time": time.time()}, "")
    records = [record for _seq, record in publisher._queue]
    # Half the batch reached the broker though its answer never came.
    await produce(kafka_bootstrap, topic, [value for _k, value, _t in records[:5]])

    reads = count_reads(monkeypatch)
    missing = await publisher._not_yet_on_topic(records, acked={})

    assert [orjson.loads(value)["id"] for _k, value, _t in missing] == [
        f"req-{n}" for n in range(5, 10)
    ]
    assert sum(reads) < 1_000, f"read {sum(reads)} records of {OLD_RECORDS + 5}"
    await publisher.close(grace_s=0.1)


async def test_acknowledged_offsets_from_an_older_life_of_the_topic_skip_nothing(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    # acked.json outlived its topic (recreated, or a broker that lost everything): its
    # offsets lie past the end and must not be taken as "nothing before here".
    settings = Settings(
        spool_dir=tmp_path, kafka_bootstrap_servers=kafka_bootstrap, kafka_topic_prefix=topic_prefix
    )
    await ensure_topics(settings, [topics.GATEWAY_REQUESTS])
    topic = topic_name(topics.GATEWAY_REQUESTS, settings)
    publisher = EventPublisher(settings)
    for n in range(4):
        publisher.publish("org-1", REJECTED, {"request_id": f"req-{n}", "time": time.time()}, "")
    records = [record for _seq, record in publisher._queue]
    await produce(kafka_bootstrap, topic, [value for _k, value, _t in records[:2]])

    stale = dict.fromkeys(range(topics.GATEWAY_REQUESTS.partitions), 1_000_000)
    missing = await publisher._not_yet_on_topic(records, stale)

    assert [orjson.loads(value)["id"] for _k, value, _t in missing] == ["req-2", "req-3"]
    await publisher.close(grace_s=0.1)


async def test_a_predecessors_doubtful_segments_are_checked_from_its_offsets(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: the events a killed predecessor journaled are drained first; producing
    # them moved this process's acknowledged offsets past where the predecessor's
    # older doubtful batch had landed, so that batch was checked from there, its
    # events on the topic were not found, and they were sent twice.
    monkeypatch.setattr(publisher_module, "_SETTLE_S", 0.1)
    spool_dir = tmp_path / "spool"
    settings = Settings(
        spool_dir=spool_dir,
        kafka_bootstrap_servers=kafka_bootstrap,
        kafka_topic_prefix=topic_prefix,
        kafka_enable_idempotence=False,  # Tansu
    )
    await ensure_topics(settings, [topics.GATEWAY_REQUESTS])
    topic = topic_name(topics.GATEWAY_REQUESTS, settings)
    encoder = EventPublisher(Settings(spool_dir=tmp_path / "encoder"))
    for n in range(9):
        encoder.publish("org-1", REJECTED, {"request_id": f"req-{n}", "time": time.time()}, "")
    records = [record for _seq, record in encoder._queue]
    await encoder.close()

    # The predecessor: its last acknowledged offsets, a doubtful batch of six events of
    # which three reached the topic after them, and three events journaled, unsettled.
    ends = await end_offsets(kafka_bootstrap, topic)
    (spool_dir / "acked.json").parent.mkdir(parents=True)
    (spool_dir / "acked.json").write_bytes(
        orjson.dumps({"topic": topic, "next_offsets": {str(p): o for p, o in ends.items()}})
    )
    spool = Spool(spool_dir, 1 << 20)
    spool.write_doubtful(time.time_ns(), records[:6])
    spool.close()
    await produce(kafka_bootstrap, topic, [value for _k, value, _t in records[:3]], b"org-1")
    journal = Journal(spool_dir, 1)
    for seq, record in enumerate(records[6:], start=1):
        journal.append(seq, record)
    journal.close(remove=False)

    async def other_gateways() -> None:  # traffic of the org's other gateways
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=False)
        try:
            await producer.start()
            for n in range(1_000):
                for _ in range(20):
                    await producer.send(topic, orjson.dumps({"id": f"other-{n}"}), key=b"org-1")
                await producer.flush()
                await asyncio.sleep(0.02)
        finally:
            await producer.stop()

    publisher = EventPublisher(settings)
    traffic = asyncio.create_task(other_gateways())
    await publisher.start()
    try:
        for _ in range(100):
            ours = [i for i in await event_ids(kafka_bootstrap, topic) if i.startswith("req-")]
            if len(ours) >= 9 and publisher._spool.empty:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(1)  # a duplicate would land by now
        ours = [i for i in await event_ids(kafka_bootstrap, topic) if i.startswith("req-")]
    finally:
        traffic.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await traffic  # its producer is stopped before the test's loop closes
        await publisher.close(grace_s=2)
    assert sorted(ours) == sorted(f"req-{n}" for n in range(9))


async def test_acknowledged_offsets_follow_a_log_that_was_reset(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    # Before: the offsets only ever went up, so after a broker lost its topics (or one
    # was recreated) they kept the old log's values; once the new log grew past them,
    # a doubtful check started there and missed the batch below (sent twice).
    settings = Settings(
        spool_dir=tmp_path,
        kafka_bootstrap_servers=kafka_bootstrap,
        kafka_topic_prefix=topic_prefix,
        kafka_enable_idempotence=False,  # Tansu
        events_linger_ms=5,
    )
    await ensure_topics(settings, [topics.GATEWAY_REQUESTS])
    publisher = EventPublisher(settings)
    publisher._acked = dict.fromkeys(range(topics.GATEWAY_REQUESTS.partitions), 10_000)
    topic = topic_name(topics.GATEWAY_REQUESTS, settings)
    await publisher.start()
    try:
        for n in range(5):
            data = {"request_id": f"req-{n}", "time": time.time()}
            publisher.publish("org-1", REJECTED, data, "")
        await wait_event_ids(kafka_bootstrap, topic, 5, within=10)
        await asyncio.sleep(0.2)
    finally:
        await publisher.close(grace_s=1)
    written = {p: offset for p, offset in publisher._acked.items() if offset != 10_000}
    assert list(written.values()) == [5]  # one org's partition, holding its 5 events
