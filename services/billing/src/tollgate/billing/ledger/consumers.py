"""Kafka transport of the ledger: request events in, debits out.

One transaction per batch: the debits, the debited request ids, the new balances and
any balance events (outbox) commit together. Kafka offsets are committed only after
that transaction, and while a backlog is worked off at most every
`offset_commit_interval_seconds` (after every batch once caught up): one broker round
trip saved per batch. A crash before the offset commit redelivers what was consumed
since the last one, and `debit_for_requests` skips every request already charged;
those skips are logged as `redelivered_skipped`. A failed batch rewinds its
partitions (nack). Rejected requests are never charged. Decoding, skipping poison
records and the commit cadence are the kit's (`readable`, `OffsetCommits`).

A second group, `billing-orgs`, reads `tollgate.accounts.users.v1` and opens the
account of every org it sees for the first time (an org was created), publishing its
first balance state at once (`balances.open_accounts`); idempotent, since an org
billing knows is left alone.
"""

from __future__ import annotations

import logging
import uuid

from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import Counter

from tollgate.billing.balances.service import open_accounts
from tollgate.billing.config import Settings
from tollgate.billing.ledger.service import debit_for_requests
from tollgate.contracts import topics
from tollgate.contracts.events.gateway import RequestCompleted
from tollgate.contracts.events.identity import UserState
from tollgate.kit.db import SessionMaker
from tollgate.kit.kafka import (
    OffsetCommits,
    Sessions,
    batch_records,
    consumer_options,
    readable,
)

log = logging.getLogger(__name__)

GROUP_ID = "billing"
ORGS_GROUP_ID = "billing-orgs"

REQUESTS_DEBITED = Counter(
    "tollgate_billing_requests_debited_total", "priced requests charged to a balance"
)
CREDITS_DEBITED = Counter("tollgate_billing_credits_debited_total", "credits debited")
REDELIVERIES_SKIPPED = Counter(
    "tollgate_billing_redeliveries_skipped_total", "request events charged before and skipped"
)


def ledger_consumers(settings: Settings) -> KafkaRouter:
    """The request-stream (group `billing`) and new-org (group `billing-orgs`)
    subscribers, under contract topic names."""
    router = KafkaRouter()
    commits = OffsetCommits(
        interval_seconds=settings.offset_commit_interval_seconds,
        batch_max=settings.consume_batch_max,
    )

    @router.subscriber(
        topics.GATEWAY_REQUESTS.name,
        group_id=GROUP_ID,
        batch=True,
        max_records=settings.consume_batch_max,
        **consumer_options(settings, manual_commits=True),
    )
    async def on_requests(body: list[bytes], message: KafkaMessage, sessions: Sessions) -> None:
        await commits.after(message, lambda: debit_batch(message, sessions, settings))

    @router.subscriber(
        topics.ACCOUNTS_USERS.name,
        group_id=ORGS_GROUP_ID,
        batch=True,
        max_records=1000,
        **consumer_options(settings),
    )
    async def on_users(body: list[bytes], message: KafkaMessage, sessions: Sessions) -> None:
        await open_new_accounts(message, sessions, settings)

    return router


async def debit_batch(message: KafkaMessage, sessions: SessionMaker, settings: Settings) -> None:
    """Debit the batch's completed requests in one transaction (redeliveries skipped)."""
    completed: list[RequestCompleted] = []
    for record in batch_records(message):
        event = readable(record, group=GROUP_ID)
        if event is not None and isinstance(event.data, RequestCompleted):
            completed.append(event.data)
    if not completed:
        return
    async with sessions() as session, session.begin():
        outcome = await debit_for_requests(session, completed, settings)
    REQUESTS_DEBITED.inc(outcome.debited)
    CREDITS_DEBITED.inc(outcome.credits)
    if outcome.redelivered:
        REDELIVERIES_SKIPPED.inc(outcome.redelivered)
        log.info(
            "redelivered requests skipped",
            extra={"redelivered_skipped": outcome.redelivered},
        )


async def open_new_accounts(
    message: KafkaMessage, sessions: SessionMaker, settings: Settings
) -> None:
    """Open the account of every org in the batch's user states billing does not know."""
    org_ids: set[uuid.UUID] = set()
    for record in batch_records(message):
        event = readable(record, group=ORGS_GROUP_ID)
        if event is not None and isinstance(event.data, UserState):
            org_ids.update(m.org_id for m in event.data.memberships)
    if not org_ids:
        return
    async with sessions() as session, session.begin():
        opened = await open_accounts(session, org_ids, settings)
    if opened:
        log.info("accounts opened for new orgs", extra={"orgs": len(opened)})
