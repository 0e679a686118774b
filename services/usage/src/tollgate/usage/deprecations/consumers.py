"""Kafka transport of the API registry: `tollgate.accounts.apis.v1` (compacted).

Its own group (`usage-apis`), read from the beginning. Each batch is one transaction:
deprecations of APIs and routes are announced (and recorded) together, and offsets are
committed only after it commits, so a crash redelivers the batch and the record makes it
harmless.
Tombstones (deleted APIs) and poison records are skipped.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage

from tollgate.contracts import topics
from tollgate.contracts.events.accounts import ApiUpserted
from tollgate.kit.kafka import Sessions, batch_records, consumer_options, readable
from tollgate.usage.config import Settings
from tollgate.usage.deprecations.service import (
    announce_deprecation,
    announce_route_deprecations,
)

log = logging.getLogger(__name__)

GROUP_ID = "usage-apis"


def api_consumers(settings: Settings) -> KafkaRouter:
    """The API registry subscriber (group `usage-apis`), under contract topic names."""
    router = KafkaRouter()

    @router.subscriber(
        topics.ACCOUNTS_APIS.name,
        group_id=GROUP_ID,
        batch=True,
        max_records=100,
        **consumer_options(settings),
    )
    async def on_apis(body: list[bytes], message: KafkaMessage, sessions: Sessions) -> None:
        async with sessions() as session, session.begin():
            for record in batch_records(message):
                if record.value is None:
                    continue
                event = readable(record, group=GROUP_ID)  # poison: logged, counted, None
                if event is None or not isinstance(event.data, ApiUpserted):
                    continue
                now = datetime.now(UTC)
                notices = await announce_deprecation(session, event.data, now)
                if notices:
                    log.info(
                        "api deprecation announced",
                        extra={"api_id": str(event.data.api_id), "orgs": len(notices)},
                    )
                routes = await announce_route_deprecations(session, event.data, now)
                if routes:
                    log.info(
                        "route deprecations announced",
                        extra={"api_id": str(event.data.api_id), "notices": len(routes)},
                    )

    return router
