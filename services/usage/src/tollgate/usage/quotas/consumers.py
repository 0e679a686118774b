"""Kafka transport of the key registry: `tollgate.accounts.keys.v1` (compacted).

Its own group (`usage-keys`), read from the beginning, so a fresh database learns
every key's owner and limits. Idempotent by `version` (stale or repeated states are
ignored); a tombstone forgets the key.
"""

from __future__ import annotations

import logging
import uuid

from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage

from tollgate.contracts import topics
from tollgate.contracts.events.accounts import KeyUpserted
from tollgate.kit.kafka import Sessions, batch_records, consumer_options, readable
from tollgate.usage.config import Settings
from tollgate.usage.quotas.service import apply_key_state, forget_key

log = logging.getLogger(__name__)

GROUP_ID = "usage-keys"


def key_consumers(settings: Settings) -> KafkaRouter:
    """The key registry subscriber (group `usage-keys`), under contract topic names."""
    router = KafkaRouter()

    @router.subscriber(
        topics.ACCOUNTS_KEYS.name,
        group_id=GROUP_ID,
        batch=True,
        max_records=500,
        **consumer_options(settings),
    )
    async def on_keys(body: list[bytes], message: KafkaMessage, sessions: Sessions) -> None:
        async with sessions() as session, session.begin():
            for record in batch_records(message):
                if record.value is None:
                    try:
                        key_id = uuid.UUID((record.key or b"").decode())
                    except ValueError:
                        log.warning("tombstone without a key id", extra={"offset": record.offset})
                        continue
                    await forget_key(session, key_id)
                    continue
                event = readable(record, group=GROUP_ID)  # poison: logged, counted, None
                if event is None or not isinstance(event.data, KeyUpserted):
                    continue
                await apply_key_state(session, event.data)

    return router
