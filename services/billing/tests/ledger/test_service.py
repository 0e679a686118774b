"""Debits and credits against a real Postgres: exact, idempotent, announced once."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tollgate.billing.ledger import service as ledger
from tollgate.kit.db import create_engine, session_maker

from ..factories import ledger_total, migrated, outbox_types, request_event, settings_for


async def test_redelivered_batch_debits_once(database_factory: Callable[[str], str]) -> None:
    url = await migrated(database_factory("billing"))
    settings = settings_for(url, default_low_threshold=10)
    engine = create_engine(url)
    sessions = session_maker(engine)
    org = uuid.uuid4()
    try:
        async with sessions() as session, session.begin():
            await ledger.add_credits(
                session,
                org,
                settings,
                kind="top_up",
                amount=100,
                actor="admin:t",
                reason="opening",
                idempotency_key="k1",
            )
        batch = [request_event(org, cost=3) for _ in range(10)]
        async with sessions() as session, session.begin():
            first = await ledger.debit_for_requests(session, batch, settings)
        # Kafka redelivers after a crash, and the gateway re-published a few, shuffled.
        again = batch + random.sample(batch, 4)
        random.shuffle(again)
        async with sessions() as session, session.begin():
            second = await ledger.debit_for_requests(session, again, settings)
        assert (first.debited, first.credits, first.redelivered) == (10, 30, 0)
        assert (second.debited, second.credits, second.redelivered) == (0, 0, 14)
        async with sessions() as session:
            balance = await session.scalar(
                text("SELECT balance FROM accounts WHERE org_id = :o"), {"o": org}
            )
            assert balance == 70 == await ledger_total(session, org)
    finally:
        await engine.dispose()


async def test_debits_aggregate_per_org_and_api_with_exact_balance_after(
    database_factory: Callable[[str], str],
) -> None:
    url = await migrated(database_factory("billing"))
    settings = settings_for(url)
    engine = create_engine(url)
    sessions = session_maker(engine)
    orgs = [uuid.uuid4() for _ in range(3)]
    apis = [uuid.uuid4() for _ in range(2)]
    events = [
        request_event(random.choice(orgs), cost=random.randint(0, 9), api_id=random.choice(apis))
        for _ in range(500)
    ]
    try:
        async with sessions() as session, session.begin():
            outcome = await ledger.debit_for_requests(session, events, settings)
        assert outcome.credits == sum(e.cost for e in events)
        async with engine.connect() as conn:
            for org in orgs:
                expected = sum(e.cost for e in events if e.org_id == org)
                rows = (
                    await conn.execute(
                        text(
                            "SELECT amount, balance_after, request_count FROM ledger_entries "
                            "WHERE org_id = :o ORDER BY seq"
                        ),
                        {"o": org},
                    )
                ).all()
                assert len(rows) <= len(apis)
                assert -sum(r.amount for r in rows) == expected
                assert sum(r.request_count for r in rows) == sum(
                    1 for e in events if e.org_id == org and e.cost > 0
                )
                running = 0
                for row in rows:
                    running += row.amount
                    assert row.balance_after == running
                balance = await conn.scalar(
                    text("SELECT balance FROM accounts WHERE org_id = :o"), {"o": org}
                )
                assert balance == -expected
    finally:
        await engine.dispose()


async def test_crossings_are_announced_once_and_top_up_unblocks(
    database_factory: Callable[[str], str],
) -> None:
    url = await migrated(database_factory("billing"))
    settings = settings_for(url, default_low_threshold=50)
    engine = create_engine(url)
    sessions = session_maker(engine)
    org = uuid.uuid4()

    async def spend(cost: int, times: int) -> None:
        for _ in range(times):
            async with sessions() as session, session.begin():
                await ledger.debit_for_requests(session, [request_event(org, cost=cost)], settings)

    try:
        async with sessions() as session, session.begin():
            await ledger.add_credits(
                session,
                org,
                settings,
                kind="top_up",
                amount=100,
                actor="admin:t",
                reason="opening",
                idempotency_key="open",
            )
        await spend(10, 4)  # 60: still ok
        await spend(10, 3)  # 30: low, once
        await spend(10, 5)  # -20: exhausted, once
        async with sessions() as session, session.begin():
            await ledger.add_credits(
                session,
                org,
                settings,
                kind="top_up",
                amount=500,
                actor="admin:t",
                reason="more",
                idempotency_key="more",
            )
        events = await outbox_types(engine, "tollgate.billing.events.v1")
        assert events == [
            "tollgate.billing.credits.topped_up.v1",
            "tollgate.billing.credits.low.v1",
            "tollgate.billing.credits.exhausted.v1",
            "tollgate.billing.credits.topped_up.v1",
        ]
        async with engine.connect() as conn:
            states = (
                await conn.execute(
                    text(
                        "SELECT convert_from(value, 'UTF8')::json->'data' AS d FROM outbox "
                        "WHERE topic = 'tollgate.billing.balances.v1' ORDER BY id"
                    )
                )
            ).all()
        statuses = [(s.d["status"], s.d["version"]) for s in states]
        # Opening top-up (ok), low, exhausted, top-up (ok again): one state per change.
        assert statuses == [("ok", 1), ("low", 2), ("exhausted", 3), ("ok", 4)]
        assert states[-1].d["balance"] == 480
    finally:
        await engine.dispose()


async def test_reserve_declares_exhaustion_before_zero(
    database_factory: Callable[[str], str],
) -> None:
    url = await migrated(database_factory("billing"))
    settings = settings_for(url, default_low_threshold=0, default_reserve=25)
    engine = create_engine(url)
    sessions = session_maker(engine)
    org = uuid.uuid4()
    try:
        async with sessions() as session, session.begin():
            await ledger.add_credits(
                session,
                org,
                settings,
                kind="top_up",
                amount=100,
                actor="admin:t",
                reason="opening",
                idempotency_key="open",
            )
            await ledger.debit_for_requests(session, [request_event(org, cost=75)], settings)
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text("SELECT balance, status FROM accounts WHERE org_id = :o"), {"o": org}
                )
            ).one()
        assert (row.balance, row.status) == (25, "exhausted")
    finally:
        await engine.dispose()


async def test_ledger_is_append_only(database_factory: Callable[[str], str]) -> None:
    url = await migrated(database_factory("billing"))
    settings = settings_for(url)
    engine = create_engine(url)
    sessions = session_maker(engine)
    try:
        async with sessions() as session, session.begin():
            await ledger.add_credits(
                session,
                uuid.uuid4(),
                settings,
                kind="top_up",
                amount=5,
                actor="admin:t",
                reason="x",
                idempotency_key="x",
            )
        for statement in ("UPDATE ledger_entries SET amount = 500", "DELETE FROM ledger_entries"):
            with pytest.raises(DBAPIError, match="append-only"):
                async with engine.begin() as conn:
                    await conn.execute(text(statement))
    finally:
        await engine.dispose()
