"""What a customer notice turns into, end to end in process (real PostgreSQL): an org
with an English and a Chinese contact and a subscribed webhook endpoint, another org
with its own, the events taken in (each test says how, redelivery included), then the
email and webhook workers run once. The tests check the mails and webhooks sent."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from tollgate.kit.db import SessionMaker
from tollgate.kit.sealing import Sealer
from tollgate.notifier.email import service as email
from tollgate.notifier.email.backends import FileBackend
from tollgate.notifier.email.worker import EmailWorker
from tollgate.notifier.models import EmailMessage, WebhookDelivery

from ..factories import (
    SEALING_KEY,
    Captured,
    FakeClock,
    database,
    delivery_worker,
    make_endpoint,
    migrated,
    receiver,
)

EN, ZH, OTHER = "billing@acme.example", "cw@acme.example", "ops@other.example"


@dataclass
class Sent:
    mails: list[str]
    """Each mail's text part, headers included."""
    htmls: list[str]
    webhooks: list[Captured]
    secret: str
    endpoint_id: uuid.UUID

    def one(self, to: str, needle: str) -> str:
        """The one mail to `to` containing `needle`."""
        found = [m for m in self.mails if f"To: {to}\n" in m and needle in m]
        assert len(found) == 1, (to, needle, self.mails)
        return found[0]

    def leak_nothing(self) -> None:
        """No mail to the other org; no webhook shows the secret or the endpoint id."""
        assert not any(OTHER in m for m in self.mails)
        assert all(self.secret.encode() not in c.body for c in self.webhooks)
        assert all(str(self.endpoint_id) not in c.body.decode() for c in self.webhooks)


async def counts(sessions: SessionMaker) -> tuple[int, int]:
    """Emails and webhook deliveries queued so far."""
    async with sessions() as session:
        mails = await session.scalar(select(func.count()).select_from(EmailMessage))
        deliveries = await session.scalar(select(func.count()).select_from(WebhookDelivery))
    return int(mails or 0), int(deliveries or 0)


async def notices_sent(
    database_url: str,
    tmp_path: Path,
    *,
    org: uuid.UUID,
    event_types: Sequence[str],
    events: int,
    take_in: Callable[[SessionMaker, FakeClock], Awaitable[None]],
) -> Sent:
    """`take_in` feeds the notifier `events` events of `org` (twice: a redelivery);
    each must become one mail per contact and one webhook, nothing for another org."""
    url = await migrated(database_url)
    clock = FakeClock()
    other = uuid.uuid4()
    async with database(url) as sessions, receiver() as rec:
        async with sessions() as session, session.begin():
            contacts = [email.Contact(EN, "en"), email.Contact(ZH, "zh-CN")]
            await email.replace_contacts(session, org, contacts, clock.now())
            await email.replace_contacts(session, other, [email.Contact(OTHER, "en")], clock.now())
        endpoint, secret = await make_endpoint(
            sessions, org, rec.url, event_types=list(event_types), now=clock.now()
        )
        await make_endpoint(
            sessions, other, rec.url, event_types=list(event_types), now=clock.now()
        )
        await take_in(sessions, clock)
        assert await counts(sessions) == (2 * events, events)

        mailer = EmailWorker(
            sessions=sessions,
            backend=FileBackend(str(tmp_path)),
            sealer=Sealer(SEALING_KEY),
            clock=clock,
            sender="t@example.com",
            console_url="http://localhost:8085",
            max_attempts=3,
        )
        assert await mailer.run_once() == 2 * events
        worker, sender = delivery_worker(sessions, clock)
        try:
            assert await worker.run_once() == events
        finally:
            await sender.close()
        webhooks = list(rec.captured)

    def read(suffix: str) -> list[str]:
        return sorted(p.read_text(encoding="utf-8") for p in tmp_path.glob(f"*{suffix}"))

    mails, htmls = await asyncio.gather(
        asyncio.to_thread(read, ".txt"), asyncio.to_thread(read, ".html")
    )
    return Sent(mails, htmls, webhooks, secret, endpoint.id)
