"""A new org's owner is its notification contact until someone sets the list, and the
exhausted notice billing sends at the org's creation reaches the owner even when it is
taken in before accounts' `OrgCreated` (other topic, no ordering between them): through
the intake rules on real PostgreSQL, then the email worker, as sent mail files."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from tollgate.contracts import topics
from tollgate.contracts.envelope import CloudEvent, new_event
from tollgate.contracts.events.accounts import OrgCreated
from tollgate.contracts.events.billing import BalanceMode, BalanceState, BalanceStatus
from tollgate.kit.db import SessionMaker
from tollgate.kit.sealing import Sealer
from tollgate.notifier.email import repository as contacts_repo
from tollgate.notifier.email import service as email
from tollgate.notifier.email.backends import FileBackend
from tollgate.notifier.email.worker import EmailWorker
from tollgate.notifier.intake import service as intake
from tollgate.notifier.models import EmailMessage

from ..events import credits_low, topped_up
from ..factories import SEALING_KEY, FakeClock, database, migrated
from .test_new_org_notices import opened_exhausted

OWNER = "founder@acme.example"


def org_created(org_id: uuid.UUID, owner: str = OWNER, locale: str = "zh-CN") -> CloudEvent[Any]:
    """The event accounts emits with a new org (its outbox, keyed by the org)."""
    created = OrgCreated(
        org_id=org_id,
        org_name="Acme",
        owner_id=uuid.uuid4(),
        owner_email=owner,
        owner_locale=locale,
        created_at=datetime.now(UTC),
    )
    return new_event(created, source="tollgate/accounts/test", subject=str(org_id))


async def deliver(
    sessions: SessionMaker,
    clock: FakeClock,
    topic: str,
    *events: CloudEvent[Any],
    balances: email.BalanceStates | None = None,
) -> None:
    """One intake batch, as the consumer takes it in."""
    async with sessions() as session, session.begin():
        taken = await intake.take_in(session, topic, list(events))
        await intake.queue_notifications(session, taken.new, clock.now(), balances)


async def contacts_of(sessions: SessionMaker, org: uuid.UUID) -> list[tuple[str, str]]:
    async with sessions() as session:
        return [(c.email, c.locale) for c in await contacts_repo.contacts_of_org(session, org)]


async def queued(sessions: SessionMaker) -> list[tuple[str, str]]:
    """(recipient, kind) of every mail queued."""
    async with sessions() as session:
        rows = await session.execute(select(EmailMessage.to_address, EmailMessage.kind))
        return sorted((row.to_address, row.kind) for row in rows)


async def sent_mails(sessions: SessionMaker, clock: FakeClock, tmp_path: Path) -> list[str]:
    """Run the email worker once; the text part of every mail it sent."""
    worker = EmailWorker(
        sessions=sessions,
        backend=FileBackend(str(tmp_path)),
        sealer=Sealer(SEALING_KEY),
        clock=clock,
        sender="t@example.com",
        console_url="http://localhost:8085",
        max_attempts=3,
    )
    await worker.run_once()

    def read() -> list[str]:
        return sorted(p.read_text(encoding="utf-8") for p in tmp_path.glob("*.txt"))

    return await asyncio.to_thread(read)


class Balances:
    """The replayed balances topic, as the notifier's `OrgBalances` answers it."""

    def __init__(self, *states: BalanceState) -> None:
        self.states = {s.org_id: s for s in states}

    def of(self, org_id: uuid.UUID) -> BalanceState | None:
        return self.states.get(org_id)


async def test_the_exhausted_notice_taken_in_before_the_org_reaches_its_owner_once(
    database_factory: Any, tmp_path: Path
) -> None:
    url = await migrated(database_factory("notifier"))
    clock = FakeClock()
    org, other = uuid.uuid4(), uuid.uuid4()
    exhausted, created = opened_exhausted(org), org_created(org)
    async with database(url) as sessions:
        # Billing's notice first: the org has nobody to mail yet.
        await deliver(sessions, clock, topics.BILLING_EVENTS.name, exhausted)
        await deliver(sessions, clock, topics.BILLING_EVENTS.name, opened_exhausted(other))
        assert await queued(sessions) == []
        await deliver(sessions, clock, topics.ACCOUNTS_EVENTS.name, created)
        assert await contacts_of(sessions, org) == [(OWNER, "zh-CN")]
        # Kafka redelivers both; the owner later edits the list (keeping itself).
        await deliver(sessions, clock, topics.ACCOUNTS_EVENTS.name, created)
        await deliver(sessions, clock, topics.BILLING_EVENTS.name, exhausted)
        async with sessions() as session, session.begin():
            await email.replace_contacts(
                session,
                org,
                [email.Contact(OWNER, "zh-CN"), email.Contact("ops@acme.example", "en")],
                clock.now(),
            )
        assert await queued(sessions) == [(OWNER, "credits_exhausted")]
        mails = await sent_mails(sessions, clock, tmp_path)
        # The other org, whose creation was not seen, still has no contacts and no mail.
        assert await contacts_of(sessions, other) == []
    [mail] = mails
    assert f"To: {OWNER}\n" in mail
    assert "您的 Tollgate 额度已用完" in mail
    assert "余额为 0 额度" in mail


async def test_the_notice_taken_in_after_the_org_is_mailed_to_the_owner_once(
    database_factory: Any,
) -> None:
    url = await migrated(database_factory("notifier"))
    clock = FakeClock()
    org = uuid.uuid4()
    exhausted = opened_exhausted(org)
    async with database(url) as sessions:
        await deliver(sessions, clock, topics.ACCOUNTS_EVENTS.name, org_created(org, locale="en"))
        assert await queued(sessions) == []
        for _ in range(2):  # a redelivery
            await deliver(sessions, clock, topics.BILLING_EVENTS.name, exhausted)
        assert await queued(sessions) == [(OWNER, "credits_exhausted")]


async def test_an_org_that_set_its_contacts_keeps_them(database_factory: Any) -> None:
    url = await migrated(database_factory("notifier"))
    clock = FakeClock()
    org, emptied = uuid.uuid4(), uuid.uuid4()
    async with database(url) as sessions:
        async with sessions() as session, session.begin():
            await email.replace_contacts(
                session, org, [email.Contact("billing@acme.example", "en")], clock.now()
            )
            await email.replace_contacts(session, emptied, [], clock.now())
        await deliver(
            sessions, clock, topics.ACCOUNTS_EVENTS.name, org_created(org), org_created(emptied)
        )
        await deliver(sessions, clock, topics.BILLING_EVENTS.name, opened_exhausted(org))
        assert await contacts_of(sessions, org) == [("billing@acme.example", "en")]
        assert await contacts_of(sessions, emptied) == []  # "mail nobody" is a choice too
        assert await queued(sessions) == [("billing@acme.example", "credits_exhausted")]


async def test_contacts_first_set_by_hand_get_a_low_notice_that_still_holds(
    database_factory: Any,
) -> None:
    url = await migrated(database_factory("notifier"))
    clock = FakeClock()
    low_org, refilled, moved_on = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    later = datetime.now(UTC) + timedelta(minutes=1)
    balances = Balances(
        BalanceState(
            org_id=moved_on,
            balance=500,
            status=BalanceStatus.OK,
            mode=BalanceMode.PREPAID,
            low_threshold=100,
            version=9,
            as_of=later,
        )
    )
    async with database(url) as sessions:
        await deliver(
            sessions,
            clock,
            topics.BILLING_EVENTS.name,
            credits_low(low_org),
            credits_low(refilled),
            topped_up(refilled),
            credits_low(moved_on),
        )
        for _ in range(2):  # the second PUT is not the first setting
            for org in (low_org, refilled, moved_on):
                async with sessions() as session, session.begin():
                    await email.replace_contacts(
                        session,
                        org,
                        [email.Contact(f"{org}@acme.example", "en")],
                        clock.now(),
                        balances=balances,
                    )
        assert await queued(sessions) == [(f"{low_org}@acme.example", "credits_low")]


async def test_a_notice_and_the_org_taken_in_at_once_do_not_miss_each_other(
    database_factory: Any,
) -> None:
    """Two replicas: one takes in billing's notice, the other the org's creation, in
    overlapping transactions; the later one waits for the earlier's commit."""
    url = await migrated(database_factory("notifier"))
    clock = FakeClock()
    org = uuid.uuid4()
    async with database(url) as sessions:
        async with sessions() as first, first.begin():
            taken = await intake.take_in(first, topics.BILLING_EVENTS.name, [opened_exhausted(org)])
            await intake.queue_notifications(first, taken.new, clock.now())
            seeding = asyncio.create_task(
                deliver(sessions, clock, topics.ACCOUNTS_EVENTS.name, org_created(org))
            )
            await asyncio.sleep(0.3)
            assert not seeding.done()  # waiting on the org's lock
        await seeding
        assert await queued(sessions) == [(OWNER, "credits_exhausted")]
