"""Keyword regexes run on RE2: a catastrophic-backtracking pattern cannot stall the
router, patterns that need backtracking are refused at creation, and a stored rule
RE2 cannot compile never matches instead of breaking routing."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

import httpx

from tollgate.contracts.ids import uuid7
from tollgate.kit.db import SessionMaker
from tollgate.kit.testing.tokens import TokenMint
from tollgate.notifier.models import SmsKeywordRule, SmsMessage
from tollgate.notifier.sms import patterns
from tollgate.notifier.sms.service import InboundSms, receive, route_pending

from ..factories import FakeClock, api_client, database, migrated, settings_for


async def routed(sessions: SessionMaker, now: datetime, body: str) -> SmsMessage:
    """Receive `body` from a new sender to an unassigned number, route it, return it."""
    sender = f"+1555{uuid.uuid4().int % 10**7:07d}"
    inbound = InboundSms("generic", uuid.uuid4().hex, sender, "+15559990000", body)
    async with sessions() as session, session.begin():
        message_id, _ = await receive(session, inbound, now)
        assert await route_pending(session, now=now) == 1
    async with sessions() as session:
        message = await session.get(SmsMessage, message_id)
    assert message is not None
    return message


async def add_rule(
    client: httpx.AsyncClient, headers: dict[str, str], org: uuid.UUID, pattern: str
) -> httpx.Response:
    return await client.post(
        "/v1/admin/sms/keyword-rules",
        json={"org_id": str(org), "kind": "regex", "pattern": pattern},
        headers=headers,
    )


async def test_catastrophic_pattern_falls_through(database_factory: Callable[[str], str]) -> None:
    url = await migrated(database_factory("notifier"))
    mint, clock, org = TokenMint(), FakeClock(), uuid.uuid4()
    admin = mint.headers(admin=True)
    async with api_client(settings_for(url), mint, clock) as (client, _), database(url) as sessions:
        created = await add_rule(client, admin, org, "(a+)+$")
        assert created.status_code == 201, created.text
        # Exponential for a backtracking engine; RE2 answers "no match" in linear time.
        evil = await routed(sessions, clock.now(), "a" * 40 + "!")
        assert (evil.routed_by, evil.org_id) == ("admin_inbox", None)
        matching = await routed(sessions, clock.now(), "a" * 40)
        assert (matching.routed_by, matching.org_id) == ("keyword", org)
        assert str(matching.rule_id) == created.json()["id"]


async def test_patterns_that_need_backtracking_are_refused(
    database_factory: Callable[[str], str],
) -> None:
    url = await migrated(database_factory("notifier"))
    mint, org = TokenMint(), uuid.uuid4()
    admin = mint.headers(admin=True)
    async with api_client(settings_for(url), mint) as (client, _):
        for pattern in (r"(\w+) \1", r"order(?=\d)", r"(?<!no )order", "(", "a{1001}"):
            refused = await add_rule(client, admin, org, pattern)
            assert refused.status_code == 422, pattern
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert "Invalid regex" in refused.json()["detail"]
        case_insensitive = await add_rule(client, admin, org, r"(?i)\border\s+#\d+")
        assert case_insensitive.status_code == 201
        assert case_insensitive.json()["pattern"] == r"(?i)\border\s+#\d+"
        spaced = await add_rule(client, admin, org, " stop ")
        assert spaced.json()["pattern"] == " stop "  # a regex is stored as it was checked


async def test_stored_rule_re2_cannot_compile_never_matches(
    database_factory: Callable[[str], str],
) -> None:
    url = await migrated(database_factory("notifier"))
    clock, org = FakeClock(), uuid.uuid4()
    async with database(url) as sessions:
        async with sessions() as session, session.begin():
            # As a rule made before patterns were checked with RE2 could be.
            session.add(
                SmsKeywordRule(
                    id=uuid7(),
                    org_id=org,
                    kind="regex",
                    pattern=r"(\w+) \1",
                    priority=1,
                    created_at=clock.now(),
                )
            )
        message = await routed(sessions, clock.now(), "hello hello")
        assert message.routed_by == "admin_inbox"


def test_searches_is_a_plain_search() -> None:
    assert patterns.searches(r"order\s+#\d+", "where is order #42?")
    assert not patterns.searches(r"^order", "where is order #42?")
    assert patterns.searches("你好", "hi 你好")
    assert not patterns.searches(r"(a)\1", "aa")  # not compilable: never matches
