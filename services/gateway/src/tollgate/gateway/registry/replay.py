"""Replays and follows the state topics into the registry.

No consumer group: every gateway replica reads every partition of
`tollgate.accounts.keys.v1`, `tollgate.accounts.apis.v1`,
`tollgate.billing.balances.v1` and `tollgate.billing.plans.v1` from the earliest
offset with the kit's `StateFollower` (the same replay every service runs for users
and memberships). It is caught up (ready) once, for every partition, its position has
reached the high watermark reported by the broker's fetch responses; it then keeps
following, so a revoked key or an exhausted balance reaches the request path one fetch
round trip after it was published, and a lost broker connection starts the replay over
(appliers keep the highest version per key). A record that does not decode is logged,
counted and skipped: one bad record must not stop a replica from serving.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from aiokafka.structs import ConsumerRecord
from prometheus_client import Counter, Gauge
from pydantic import ValidationError

from tollgate.contracts import topics
from tollgate.contracts.decoding import decode_as
from tollgate.contracts.envelope import EventData
from tollgate.contracts.events.accounts import ApiUpserted, KeyUpserted
from tollgate.contracts.events.billing import BalanceState, PlanState
from tollgate.gateway.config import Settings
from tollgate.gateway.registry.store import Registry
from tollgate.kit.replay import Apply, StateFollower, record_key

log = logging.getLogger(__name__)

STATE_RECORDS = Counter(
    "tollgate_gateway_state_records_total",
    "State records applied from the replayed topics",
    ["topic", "outcome"],
)
STATE_KEYS = Gauge("tollgate_gateway_state_keys", "API keys held in memory")

E = TypeVar("E", bound=EventData)


def state_follower(settings: Settings, registry: Registry) -> StateFollower:
    """The follower that keeps `registry` current from the four state topics."""
    return StateFollower(
        settings,
        client="gateway-state",
        appliers={
            topics.ACCOUNTS_KEYS: applier("keys", KeyUpserted, registry.apply_key),
            topics.ACCOUNTS_APIS: applier("apis", ApiUpserted, registry.apply_api),
            topics.BILLING_BALANCES: applier("balances", BalanceState, registry.apply_balance),
            topics.BILLING_PLANS: applier("plans", PlanState, registry.apply_plan),
        },
        on_sync=lambda _synced_at: STATE_KEYS.set(registry.key_count),
    )


def applier(what: str, event_type: type[E], apply: Callable[[str, E | None], None]) -> Apply:
    """Decodes a record of one state topic and hands it (None: a tombstone) to `apply`
    under its key; an unkeyed or undecodable record is skipped."""

    def apply_record(record: ConsumerRecord[bytes, bytes]) -> None:
        key = record_key(record)
        if key is None:
            _skip(record, "unkeyed")
            return
        try:
            event = None if record.value is None else decode_as(record.value, event_type).data
        except ValidationError:
            _skip(record, what)
            return
        apply(key, event)
        STATE_RECORDS.labels(what, "applied").inc()

    return apply_record


def _skip(record: ConsumerRecord[bytes, bytes], what: str) -> None:
    STATE_RECORDS.labels(what, "skipped").inc()
    log.error(
        "skipped an undecodable state record",
        extra={"topic": record.topic, "partition": record.partition, "offset": record.offset},
    )
