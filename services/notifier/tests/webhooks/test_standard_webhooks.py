"""Every delivery verifies with the reference `standardwebhooks` package, and every
kind of tampering is rejected by it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tollgate.kit.sealing import Sealer
from tollgate.notifier.intake.service import queue_notifications
from tollgate.notifier.webhooks import repository, service
from tollgate.notifier.webhooks.signing import new_secret, signature

from ..events import topped_up
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


async def test_thousand_deliveries_verify_and_tampering_is_rejected(
    database_factory: Callable[[str], str],
) -> None:
    url = await migrated(database_factory("notifier"))
    org = uuid.uuid4()
    async with database(url) as sessions, receiver() as rec:
        _, secret = await make_endpoint(sessions, org, rec.url)
        events = [topped_up(org, amount=i + 1) for i in range(1000)]
        async with sessions() as session, session.begin():
            queued = await queue_notifications(session, events, datetime.now(UTC))
        assert queued.webhook_deliveries == 1000

        # The receiver shares this event loop with 64 sends: on a loaded machine an
        # answer can take seconds, and a send that times out is (rightly) sent again.
        worker, sender = delivery_worker(
            sessions, _Wall(), concurrency=64, org_concurrency=64, timeout_seconds=30
        )
        try:
            while await worker.run_once():
                pass
        finally:
            await sender.close()

        assert len(rec.captured) == 1000
        assert len(set(rec.ids())) == 1000
        verifier = Webhook(secret)
        amounts = set()
        for request in rec.captured:
            payload = verifier.verify(request.body, request.headers)
            assert payload["type"] == "tollgate.billing.credits.topped_up.v1"
            amounts.add(payload["data"]["amount"])
        assert amounts == set(range(1, 1001))

        sample = rec.captured[0]
        headers = dict(sample.headers)
        body = sample.body

        def rejected(body: bytes, headers: dict[str, str], secret: str = secret) -> bool:
            try:
                Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                return True
            return False

        assert not rejected(body, headers)
        assert rejected(body, {**headers, "webhook-id": headers["webhook-id"] + "x"})
        assert rejected(
            body, {**headers, "webhook-timestamp": str(int(headers["webhook-timestamp"]) + 1)}
        )
        assert rejected(body.replace(b'"amount":', b'"amount":9'), headers)
        assert rejected(body, headers, secret=new_secret())

        def signed_at(offset: int) -> dict[str, str]:
            ts = int(time.time()) + offset
            return {
                **headers,
                "webhook-timestamp": str(ts),
                "webhook-signature": signature(secret, headers["webhook-id"], ts, body.decode()),
            }

        assert not rejected(body, signed_at(-290))  # control: in tolerance, same signer
        assert rejected(body, signed_at(-301))
        assert rejected(body, signed_at(301))


class _Wall:
    def now(self) -> datetime:
        return datetime.now(UTC)


async def test_rotation_signs_with_both_secrets_for_24_hours(
    database_factory: Callable[[str], str],
) -> None:
    url = await migrated(database_factory("notifier"))
    org = uuid.uuid4()
    clock = FakeClock()
    async with database(url) as sessions, receiver() as rec:
        endpoint, old = await make_endpoint(sessions, org, rec.url, now=clock.now())
        async with sessions() as session, session.begin():
            row = await repository.endpoint_of_org(session, org, endpoint.id)
            assert row is not None
            new = await service.rotate_secret(session, Sealer(SEALING_KEY), row, clock.now())
        worker, sender = delivery_worker(sessions, clock)
        try:
            for _ in range(2):  # one message inside the grace period, one after it
                async with sessions() as session, session.begin():
                    await queue_notifications(session, [topped_up(org)], clock.now())
                await worker.run_once()
                clock.advance(hours=25)
        finally:
            await sender.close()
    first, second = rec.captured
    assert len(first.headers["webhook-signature"].split(" ")) == 2
    assert _signed_by(old, first)
    assert _signed_by(new, first)
    assert len(second.headers["webhook-signature"].split(" ")) == 1
    assert _signed_by(new, second)
    assert not _signed_by(old, second)


def _signed_by(secret: str, request: Captured) -> bool:
    """Whether the reference implementation's signature with `secret` was sent (the
    fake clock's timestamps are outside the library's verify tolerance)."""
    at = datetime.fromtimestamp(int(request.headers["webhook-timestamp"]), UTC)
    expected = Webhook(secret).sign(request.headers["webhook-id"], at, request.body.decode())
    return expected in request.headers["webhook-signature"].split(" ")
