"""Replays and follows the state topics into the registry.

No consumer group: every gateway replica reads every partition of
`tollgate.accounts.keys.v1`, `tollgate.accounts.apis.v1`,
`tollgate.billing.balances.v1` and `tollgate.billing.plans.v1` from the earliest
offset. It is caught up (ready)
once, for every partition, its position has reached the high watermark reported by
the broker's fetch responses (`consumer.highwater(tp)`; `end_offsets()` may land a
batch early on some brokers). It then keeps following, so a revoked key or an
exhausted balance reaches the request path one fetch round trip after it was
published. A record that does not decode is logged and skipped: one bad record
must not stop a replica from serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord, TopicPartition
from prometheus_client import Counter, Gauge
from pydantic import ValidationError

from tollgate.contracts import topics
from tollgate.contracts.decoding import decode_as
from tollgate.contracts.events.accounts import ApiUpserted, KeyUpserted
from tollgate.contracts.events.billing import BalanceState, PlanState
from tollgate.gateway.config import Settings
from tollgate.gateway.registry.store import Registry
from tollgate.kit.kafka import topic_name

log = logging.getLogger(__name__)

STATE_RECORDS = Counter(
    "tollgate_gateway_state_records_total",
    "State records applied from the replayed topics",
    ["topic", "outcome"],
)
STATE_KEYS = Gauge("tollgate_gateway_state_keys", "API keys held in memory")

STATE_TOPICS = (
    topics.ACCOUNTS_KEYS,
    topics.ACCOUNTS_APIS,
    topics.BILLING_BALANCES,
    topics.BILLING_PLANS,
)


class StateFollower:
    """Owns the state consumer; `caught_up` turns true once and stays true."""

    def __init__(self, settings: Settings, registry: Registry) -> None:
        self._settings = settings
        self._registry = registry
        self._names = {
            topic_name(topics.ACCOUNTS_KEYS, settings): "keys",
            topic_name(topics.ACCOUNTS_APIS, settings): "apis",
            topic_name(topics.BILLING_BALANCES, settings): "balances",
            topic_name(topics.BILLING_PLANS, settings): "plans",
        }
        self._appliers: dict[str, Callable[[ConsumerRecord[bytes, bytes]], None]] = {
            "keys": self._apply_key,
            "apis": self._apply_api,
            "balances": self._apply_balance,
            "plans": self._apply_plan,
        }
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: list[TopicPartition] = []
        self.caught_up = False
        self.caught_up_event = asyncio.Event()

    async def run(self) -> None:
        """Replay from the beginning, then follow until cancelled."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            client_id=f"tollgate-gateway-state-{self._settings.instance_id}",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        self._consumer = consumer
        await consumer.start()
        try:
            self._partitions = await self._discover(consumer)
            consumer.assign(self._partitions)
            await consumer.seek_to_beginning(*self._partitions)
            while True:
                batches = await consumer.getmany(timeout_ms=200, max_records=20_000)
                for tp, records in batches.items():
                    apply = self._appliers[self._names[tp.topic]]
                    for record in records:
                        apply(record)
                STATE_KEYS.set(self._registry.key_count)
                if not self.caught_up and await self._reached_highwater(consumer):
                    self.caught_up = True
                    self.caught_up_event.set()
                    log.info("state replayed", extra={"keys": self._registry.key_count})
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def _discover(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        while True:
            await consumer.topics()  # refreshes metadata
            found: list[TopicPartition] = []
            missing = []
            for name in self._names:
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

    def _apply_key(self, record: ConsumerRecord[bytes, bytes]) -> None:
        key_id = _record_key(record)
        if key_id is None:
            return
        try:
            event = None if record.value is None else decode_as(record.value, KeyUpserted).data
        except ValidationError:
            _skip(record, "keys")
            return
        self._registry.apply_key(key_id, event)
        STATE_RECORDS.labels("keys", "applied").inc()

    def _apply_api(self, record: ConsumerRecord[bytes, bytes]) -> None:
        api_id = _record_key(record)
        if api_id is None:
            return
        try:
            event = None if record.value is None else decode_as(record.value, ApiUpserted).data
        except ValidationError:
            _skip(record, "apis")
            return
        self._registry.apply_api(api_id, event)
        STATE_RECORDS.labels("apis", "applied").inc()

    def _apply_balance(self, record: ConsumerRecord[bytes, bytes]) -> None:
        org_id = _record_key(record)
        if org_id is None:
            return
        try:
            event = None if record.value is None else decode_as(record.value, BalanceState).data
        except ValidationError:
            _skip(record, "balances")
            return
        self._registry.apply_balance(org_id, event)
        STATE_RECORDS.labels("balances", "applied").inc()

    def _apply_plan(self, record: ConsumerRecord[bytes, bytes]) -> None:
        org_id = _record_key(record)
        if org_id is None:
            return
        try:
            event = None if record.value is None else decode_as(record.value, PlanState).data
        except ValidationError:
            _skip(record, "plans")
            return
        self._registry.apply_plan(org_id, event)
        STATE_RECORDS.labels("plans", "applied").inc()


def _record_key(record: ConsumerRecord[bytes, bytes]) -> str | None:
    if record.key is None:
        _skip(record, "unkeyed")
        return None
    key: bytes = record.key
    return key.decode("utf-8", "replace")


def _skip(record: ConsumerRecord[bytes, bytes], what: str) -> None:
    STATE_RECORDS.labels(what, "skipped").inc()
    log.error(
        "skipped an undecodable state record",
        extra={"topic": record.topic, "partition": record.partition, "offset": record.offset},
    )
