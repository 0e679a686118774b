"""What routes SMS to an org, as operators change it and members read it: editing a
keyword rule (its pattern, org and priority; reordering changes which rule routes a
message), the org's read-only view of its numbers and rules (another org's member:
404), and the before/after the audit records of these writes carry."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import select

from tollgate.kit.db import SessionMaker
from tollgate.kit.testing.tokens import TokenMint
from tollgate.notifier.models import SmsMessage
from tollgate.notifier.sms.service import InboundSms, receive, route_pending

from ..factories import FakeClock, api_client, database, migrated, settings_for
from ..test_audit_changes import audit_records

RULES = "/v1/admin/sms/keyword-rules"


async def _routed_to(sessions: SessionMaker, clock: FakeClock, sid: str, body: str) -> Any:
    """The org an inbound message `body` (to a number nobody owns) is routed to."""
    # A new sender each time: no conversation history decides instead of the rules.
    sender = f"+1555{uuid.uuid4().int % 10**7:07d}"
    sms = InboundSms("generic", sid, sender, "+15559999999", body)
    async with sessions() as session, session.begin():
        await receive(session, sms, clock.now())
        await route_pending(session, now=clock.now())
    async with sessions() as session:
        row = (
            await session.scalars(select(SmsMessage).where(SmsMessage.provider_message_id == sid))
        ).one()
    return row.org_id


async def _rule(client: httpx.AsyncClient, admin: dict[str, str], **body: Any) -> dict[str, Any]:
    created = await client.post(RULES, json=body, headers=admin)
    assert created.status_code == 201, created.text
    answer: dict[str, Any] = created.json()
    return answer


async def test_an_operator_edits_and_reorders_keyword_rules(
    database_factory: Callable[[str], str],
) -> None:
    url = await migrated(database_factory("notifier"))
    mint, clock = TokenMint(), FakeClock()
    pizza, burger = uuid.uuid4(), uuid.uuid4()
    admin = mint.headers(admin=True)
    async with api_client(settings_for(url), mint, clock) as (client, _), database(url) as sessions:
        first = await _rule(
            client, admin, org_id=str(pizza), kind="first_word", pattern="ORDER", priority=10
        )
        second = await _rule(
            client, admin, org_id=str(burger), kind="regex", pattern=r"^order\b", priority=20
        )
        assert await _routed_to(sessions, clock, "m1", "order one") == pizza

        # Reordering: the burger rule now comes first.
        moved = await client.patch(f"{RULES}/{second['id']}", json={"priority": 5}, headers=admin)
        assert moved.status_code == 200, moved.text
        assert moved.json()["priority"] == 5
        listed = (await client.get(RULES, headers=admin)).json()["items"]
        assert [r["id"] for r in listed] == [second["id"], first["id"]]
        assert await _routed_to(sessions, clock, "m2", "order two") == burger

        # Another pattern and target org; the kind stays.
        edited = await client.patch(
            f"{RULES}/{first['id']}",
            json={"pattern": "  PIZZA ", "org_id": str(burger), "priority": 1},
            headers=admin,
        )
        assert edited.status_code == 200, edited.text
        assert (edited.json()["pattern"], edited.json()["kind"]) == ("PIZZA", "first_word")
        assert await _routed_to(sessions, clock, "m3", "pizza please") == burger

        for bad in (
            {"pattern": "two words"},  # a first word is one word
            {"kind": "regex", "pattern": r"(a)\1"},  # RE2 has no backreferences
        ):
            refused = await client.patch(f"{RULES}/{first['id']}", json=bad, headers=admin)
            assert refused.status_code == 422, bad
            assert refused.headers["content-type"] == "application/problem+json"
        for bad in ({"priority": "3"}, {"priority": -1}, {"pattern": None}, {"colour": "red"}):
            refused = await client.patch(f"{RULES}/{first['id']}", json=bad, headers=admin)
            assert refused.status_code == 422, bad
            assert refused.headers["content-type"] == "application/problem+json"
        unknown = await client.patch(f"{RULES}/{uuid.uuid4()}", json={"priority": 1}, headers=admin)
        assert unknown.status_code == 404
        # An owner of the rule's own org is not an operator.
        owner = mint.headers(orgs={burger: "owner"})
        assert (
            await client.patch(f"{RULES}/{first['id']}", json={"priority": 9}, headers=owner)
        ).status_code == 403
        rules = (await client.get(RULES, headers=admin)).json()["items"]
        assert {r["id"]: r["priority"] for r in rules} == {first["id"]: 1, second["id"]: 5}

    edits = [r for r in await audit_records(url) if r["action"] == "notifier.update_rule"]
    assert [(r["target_type"], r["target_id"]) for r in edits] == [
        ("rule", second["id"]),
        ("rule", first["id"]),
    ]
    assert edits[0]["diff"]["before"] == {"priority": 20}
    assert edits[0]["diff"]["after"] == {"priority": 5}
    assert edits[1]["diff"]["before"] == {
        "org_id": str(pizza),
        "pattern": "ORDER",
        "priority": 10,
    }
    assert edits[1]["diff"]["after"] == {
        "org_id": str(burger),
        "pattern": "PIZZA",
        "priority": 1,
    }


async def test_members_see_what_routes_sms_to_their_org_and_nothing_of_others(
    database_factory: Callable[[str], str],
) -> None:
    url = await migrated(database_factory("notifier"))
    mint, clock = TokenMint(), FakeClock()
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    admin = mint.headers(admin=True)
    async with api_client(settings_for(url), mint, clock) as (client, _):
        for number, org in (("+15550000001", mine), ("+15550000002", theirs)):
            assigned = await client.put(
                "/v1/admin/sms/numbers", json={"number": number, "org_id": str(org)}, headers=admin
            )
            assert assigned.status_code == 200
        late = await _rule(
            client, admin, org_id=str(mine), kind="first_word", pattern="LATE", priority=50
        )
        early = await _rule(
            client, admin, org_id=str(mine), kind="regex", pattern="^early", priority=5
        )
        await _rule(client, admin, org_id=str(theirs), kind="first_word", pattern="OTHER")

        viewer = mint.headers(orgs={mine: "viewer"})
        numbers = await client.get(f"/v1/orgs/{mine}/sms/numbers", headers=viewer)
        assert numbers.status_code == 200
        assert [n["number"] for n in numbers.json()["items"]] == ["+15550000001"]
        rules = await client.get(f"/v1/orgs/{mine}/sms/keyword-rules", headers=viewer)
        assert rules.status_code == 200
        assert [r["id"] for r in rules.json()["items"]] == [early["id"], late["id"]]
        paged = await client.get(f"/v1/orgs/{mine}/sms/keyword-rules?limit=1", headers=viewer)
        assert [r["id"] for r in paged.json()["items"]] == [early["id"]]
        assert paged.json()["next_cursor"]

        outsider = mint.headers(orgs={theirs: "owner"})
        for path in ("numbers", "keyword-rules"):
            other = await client.get(f"/v1/orgs/{mine}/sms/{path}", headers=outsider)
            assert other.status_code == 404, path
            assert "LATE" not in other.text
            assert "+15550000001" not in other.text
            assert (await client.get(f"/v1/orgs/{mine}/sms/{path}")).status_code == 401
        # Still read-only for members: the admin routes stay closed to them.
        assert (await client.get(RULES, headers=viewer)).status_code == 403


async def test_reassigning_a_number_records_the_org_before_and_after(
    database_factory: Callable[[str], str],
) -> None:
    url = await migrated(database_factory("notifier"))
    mint = TokenMint()
    first, second = uuid.uuid4(), uuid.uuid4()
    admin = mint.headers(admin=True)
    async with api_client(settings_for(url), mint, FakeClock()) as (client, _):
        for org in (first, second, second):
            assigned = await client.put(
                "/v1/admin/sms/numbers",
                json={"number": "+15550000001", "org_id": str(org)},
                headers=admin,
            )
            assert assigned.status_code == 200
    records = [r for r in await audit_records(url) if r["action"] == "notifier.assign_number"]
    assert [(r["diff"]["before"], r["diff"]["after"]) for r in records] == [
        ({"org_id": None}, {"org_id": str(first)}),
        ({"org_id": str(first)}, {"org_id": str(second)}),
        ({}, {}),  # assigned where it already was: nothing changed
    ]
