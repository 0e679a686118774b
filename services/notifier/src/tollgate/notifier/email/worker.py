"""The email worker: claims due mails from Postgres, renders and sends them.

Runs inside the service process. A mail is leased (FOR UPDATE SKIP LOCKED + lease
time) in one short transaction, sent outside any transaction, and its outcome
recorded in another; a crash in between re-sends it after the lease, and the
backend's idempotency key (the mail id) keeps Resend from sending it twice.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import timedelta

from prometheus_client import Counter

from tollgate.kit.db import SessionMaker
from tollgate.kit.jobs import every
from tollgate.kit.sealing import Sealer, SealError
from tollgate.notifier.clock import Clock
from tollgate.notifier.email import repository
from tollgate.notifier.email.backends import EmailBackend, SendResult
from tollgate.notifier.email.service import after_send, compose
from tollgate.notifier.models import EmailMessage

log = logging.getLogger(__name__)

EMAILS = Counter("tollgate_notifier_emails_total", "email send outcomes", ["outcome"])
LEASE = timedelta(seconds=60)


class EmailWorker:
    """Drains the email queue."""

    def __init__(
        self,
        *,
        sessions: SessionMaker,
        backend: EmailBackend,
        sealer: Sealer,
        clock: Clock,
        sender: str,
        console_url: str,
        max_attempts: int,
        poll_seconds: float = 0.5,
        batch: int = 10,
        rng: random.Random | None = None,
    ) -> None:
        self._sessions = sessions
        self._backend = backend
        self._sealer = sealer
        self._clock = clock
        self._sender = sender
        self._console_url = console_url
        self._max_attempts = max_attempts
        self._poll = poll_seconds
        self._batch = batch
        self._rng = rng or random.Random()

    async def run(self) -> None:
        """Work until cancelled: again at once after a claim, else at the next poll."""

        async def step() -> bool:
            return await self.run_once() > 0

        await every(self._poll, step, name="email worker")

    async def run_once(self) -> int:
        """Send every mail due now (one claim); return how many were tried."""
        now = self._clock.now()
        async with self._sessions() as session, session.begin():
            claimed = await repository.claim_due(
                session, now=now, lease_until=now + LEASE, limit=self._batch
            )
        await asyncio.gather(*(self._send_one(message) for message in claimed))
        return len(claimed)

    async def _send_one(self, message: EmailMessage) -> None:
        try:
            mail = compose(message, self._sealer, self._console_url)
        except SealError:
            result = SendResult(sent=False, error="token could not be unsealed")
        else:
            result = await self._backend.send(
                sender=self._sender,
                to=message.to_address,
                mail=mail,
                idempotency_key=str(message.id),
            )
        now = self._clock.now()
        attempts = message.attempts + 1
        step = after_send(result, attempts, self._max_attempts, now, self._rng)
        async with self._sessions() as session, session.begin():
            await repository.update_email(
                session,
                message.id,
                state=step.state,
                attempts=attempts,
                next_attempt_at=step.next_attempt_at or message.next_attempt_at,
                leased_until=None,
                last_error=step.error,
                provider_id=result.provider_id,
                finished_at=None if step.state == "pending" else now,
            )
        EMAILS.labels(step.state).inc()
        if step.state == "failed":
            log.warning(
                "email failed permanently",
                extra={"email_id": str(message.id), "kind": message.kind, "error": step.error},
            )
