"""An event written to one service's outbox reaches another service's consumer,
decoded, exactly once, through `kill -9` of the consumer and of the producer."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tollgate.contracts.events.accounts import UserRegistered
from tollgate.kit.db import session_maker
from tollgate.kit.outbox import bind_instance, emit
from tollgate.kit.testing.polling import eventually
from tollgate.notifier.models import ReceivedEvent

from .services import service_process

pytestmark = pytest.mark.system


async def write_user_registered(engine: AsyncEngine, count: int) -> set[str]:
    """Commit `count` user-registered events into the accounts outbox, in small
    transactions, as the accounts service would."""
    sessions = session_maker(engine)
    bind_instance(sessions, "test")
    ids: set[str] = set()
    for start in range(0, count, 50):
        async with sessions() as session, session.begin():
            for _ in range(min(50, count - start)):
                user_id = uuid.uuid4()
                event = await emit(
                    session,
                    UserRegistered(
                        user_id=user_id,
                        email=f"{user_id.hex[:8]}@example.com",
                        locale="en",
                        registered_at=datetime.now(UTC),
                    ),
                    subject=str(user_id),
                )
                ids.add(event.id)
    return ids


async def received(engine: AsyncEngine) -> dict[str, str]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(ReceivedEvent.event_id, ReceivedEvent.type))).all()
    return {row.event_id: row.type for row in rows}


async def wait_for(engine: AsyncEngine, expected: set[str], within: float) -> dict[str, str]:
    """What the notifier has received once it has all of `expected`, or at the deadline."""
    return await eventually(
        lambda: received(engine), lambda seen: expected <= seen.keys(), within=within
    )


async def backends_waiting_on_lock(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        count = await conn.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    return int(count or 0)


@contextlib.asynccontextmanager
async def consumer_stalled_in_transaction(
    engine: AsyncEngine, accounts_engine: AsyncEngine, count: int
) -> AsyncIterator[set[str]]:
    """Hold a lock on the notifier's table, publish `count` events and wait until the
    notifier's consumer is blocked inside its transaction (batch fetched, nothing
    committed). The lock is released when the block exits."""
    async with engine.connect() as conn:
        transaction = await conn.begin()
        await conn.execute(text("LOCK TABLE received_events IN EXCLUSIVE MODE"))
        ids = await write_user_registered(accounts_engine, count)
        waiting = await eventually(
            lambda: backends_waiting_on_lock(engine), lambda n: n > 0, within=20
        )
        assert waiting, "the consumer never reached its database write"
        try:
            yield ids
        finally:
            await transaction.rollback()


async def test_outbox_event_reaches_consumer_through_crashes(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_prefix: str,
    database_factory: Callable[[str], str],
) -> None:
    accounts_db = database_factory("accounts")
    notifier_db = database_factory("notifier")
    accounts = service_process(
        "accounts",
        tmp_path,
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        database_url=accounts_db,
    )
    notifier = service_process(
        "notifier",
        tmp_path,
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        database_url=notifier_db,
    )
    accounts_engine = create_async_engine(accounts_db)
    notifier_engine = create_async_engine(notifier_db)
    try:
        accounts.start()
        notifier.start()

        # One event, end to end, decoded into the right type.
        expected = await write_user_registered(accounts_engine, 1)
        seen = await wait_for(notifier_engine, expected, within=15)
        assert {seen[i] for i in expected} == {UserRegistered.event_type}

        # Crash 1: the consumer dies with a batch in hand, before its database commit.
        async with consumer_stalled_in_transaction(notifier_engine, accounts_engine, 200) as ids:
            notifier.kill9()
        expected |= ids
        notifier.start()
        seen = await wait_for(notifier_engine, expected, within=30)
        assert not expected - seen.keys(), "events lost after a crash before commit"

        # Crash 2: the relay dies after the broker acked a batch but before marking its
        # rows sent, so it publishes them again; the consumer must take them in once.
        async with accounts_engine.begin() as conn:
            resent = await conn.scalar(
                text(
                    "WITH batch AS (SELECT id FROM outbox WHERE published_at IS NOT NULL "
                    "ORDER BY id DESC LIMIT 200) "
                    "UPDATE outbox SET published_at = NULL WHERE id IN (SELECT id FROM batch) "
                    "RETURNING 1"
                ).columns()
            )
        assert resent is not None

        # Crash 3: the producer dies while its relay is publishing a stream.
        writer = asyncio.create_task(write_user_registered(accounts_engine, 2000))
        await asyncio.sleep(0.3)
        accounts.kill9()
        accounts.start()
        expected |= await writer

        seen = await wait_for(notifier_engine, expected, within=60)
        assert not expected - seen.keys(), f"{len(expected - seen.keys())} events lost"
        async with notifier_engine.connect() as conn:
            rows = await conn.scalar(select(func.count()).select_from(ReceivedEvent))
        assert rows == len(expected)
        skipped = sum(int(n) for n in re.findall(r'"redelivered_skipped":(\d+)', notifier.logs()))
        # The 200 re-sent ones, plus whatever the killed relay had published unmarked.
        assert skipped >= 200, "re-sent events were not recognised"
        print(
            f"\n{len(expected)} events through a consumer crash, 200 re-sent events and a "
            f"producer crash: 0 lost, 0 duplicated, {skipped} redeliveries skipped"
        )
    finally:
        accounts.stop()
        notifier.stop()
        await accounts_engine.dispose()
        await notifier_engine.dispose()
