"""Replaying compacted state topics into memory, then following them live.

The shape every Tollgate reader of state topics shares (the gateway's keys, APIs and
balances; every service's users and memberships): no consumer group, every partition
of each topic assigned to this process and read from the earliest offset. The reader
is caught up once, for every partition, its position has reached the high watermark
the broker reported in its fetch responses (`consumer.highwater(tp)`; `end_offsets()`
may land a batch early on some brokers, Tansu among them). It keeps following, so a
change reaches memory one fetch round trip after it was published.

`StateFollower` only moves records; what a record means is the caller's `apply`
function per topic, which must not raise for a bad record (log and skip it: one bad
record must never stop a replica from serving). A lost connection is retried with
back-off and the replay starts over from the beginning (the state is idempotent:
appliers keep the highest version per key).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord, TopicPartition

from tollgate.contracts.topics import Topic
from tollgate.kit.kafka import topic_name
from tollgate.kit.settings import ServiceSettings

log = logging.getLogger(__name__)

Apply = Callable[[ConsumerRecord[bytes, bytes]], None]
"""Applies one record of a state topic to memory; never raises for a bad record."""


class StateFollower:
    """Replays and follows state topics; `caught_up` turns true once and stays true.

    `synced_at` is the monotonic time at which the last fetch round that ended at the
    high watermark of every partition started: everything published before that
    instant has been applied. `on_sync(synced_at)` is called after each such round.
    """

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        client: str,
        appliers: Mapping[Topic, Apply],
        fetch_max_wait_ms: int = 100,
        on_sync: Callable[[float], None] | None = None,
    ) -> None:
        self._settings = settings
        self._client = client
        self._appliers = {topic_name(t, settings): apply for t, apply in appliers.items()}
        self._fetch_max_wait_ms = fetch_max_wait_ms
        self._on_sync = on_sync
        self._partitions: list[TopicPartition] = []
        self.caught_up = False
        self.caught_up_event = asyncio.Event()
        self.synced_at = 0.0

    async def ready(self) -> bool:
        """Readiness check: the replay has reached the high watermark once."""
        return self.caught_up

    async def run(self) -> None:
        """Replay and follow until cancelled; reconnect with back-off on failures."""
        delay = 0.5
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("state follower failed; retrying", extra={"client": self._client})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _follow(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            client_id=f"tollgate-{self._client}-{self._settings.instance_id}",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self._fetch_max_wait_ms,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await consumer.start()
        try:
            self._partitions = await self._discover(consumer)
            consumer.assign(self._partitions)
            await consumer.seek_to_beginning(*self._partitions)
            while True:
                round_started = time.monotonic()
                batches = await consumer.getmany(timeout_ms=200, max_records=20_000)
                for tp, records in batches.items():
                    apply = self._appliers[tp.topic]
                    for record in records:
                        apply(record)
                if await self._reached_highwater(consumer):
                    self.synced_at = round_started
                    if self._on_sync is not None:
                        self._on_sync(round_started)
                    if not self.caught_up:
                        self.caught_up = True
                        self.caught_up_event.set()
                        log.info("state replayed", extra={"client": self._client})
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def _discover(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        while True:
            await consumer.topics()  # refreshes metadata
            found: list[TopicPartition] = []
            missing = []
            for name in self._appliers:
                partitions = consumer.partitions_for_topic(name)
                if not partitions:
                    missing.append(name)
                    continue
                found.extend(TopicPartition(name, p) for p in sorted(partitions))
            if not missing:
                return found
            log.warning("state topics missing; waiting", extra={"topics": missing})
            await asyncio.sleep(1.0)

    async def _reached_highwater(self, consumer: AIOKafkaConsumer) -> bool:
        for tp in self._partitions:
            highwater = consumer.highwater(tp)
            if highwater is None or await consumer.position(tp) < highwater:
                return False
        return True


def record_key(record: ConsumerRecord[bytes, bytes]) -> str | None:
    """The record's key as text; None for an unkeyed record (which a state topic must
    not have: the caller skips it)."""
    if record.key is None:
        return None
    key: bytes = record.key
    return key.decode("utf-8", "replace")
