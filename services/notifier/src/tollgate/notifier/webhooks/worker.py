"""The webhook delivery worker, running inside the notifier process.

Loop: lease due deliveries (FOR UPDATE SKIP LOCKED, per-org cap, one short
transaction), send each outside any transaction, record each outcome in its own
transaction. A `kill -9` between send and record leaves the lease to expire and the
delivery is sent again with the same `webhook-id` (receivers deduplicate on it):
at least once, never lost.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import timedelta

from prometheus_client import Counter, Histogram

from tollgate.kit.db import SessionMaker
from tollgate.kit.jobs import every
from tollgate.kit.sealing import Sealer, SealError
from tollgate.notifier.clock import Clock
from tollgate.notifier.webhooks import repository, service
from tollgate.notifier.webhooks.repository import ClaimedDelivery
from tollgate.notifier.webhooks.sender import AttemptOutcome, WebhookSender

log = logging.getLogger(__name__)

ATTEMPTS = Counter(
    "tollgate_notifier_webhook_attempts_total", "webhook delivery attempts", ["outcome"]
)
ATTEMPT_SECONDS = Histogram(
    "tollgate_notifier_webhook_attempt_seconds", "duration of webhook delivery attempts"
)

UNSEALABLE = AttemptOutcome(
    succeeded=False,
    status=None,
    duration_ms=0,
    response_body="",
    error="not sent: the endpoint's signing secret cannot be read; rotate the secret",
    retry_after_seconds=None,
)
"""The attempt of a delivery whose endpoint secret was sealed with a key the operator
no longer configures."""


class DeliveryWorker:
    """Drains the webhook delivery queue with bounded concurrency."""

    def __init__(
        self,
        *,
        sessions: SessionMaker,
        sender: WebhookSender,
        sealer: Sealer,
        clock: Clock,
        concurrency: int,
        org_concurrency: int,
        timeout_seconds: float,
        disable_after: timedelta,
        poll_seconds: float = 0.5,
        rng: random.Random | None = None,
    ) -> None:
        self._sessions = sessions
        self._sender = sender
        self._sealer = sealer
        self._clock = clock
        self._concurrency = concurrency
        self._org_concurrency = org_concurrency
        # Long enough that a live attempt (bounded by the timeout) never loses its lease.
        self._lease = timedelta(seconds=2 * timeout_seconds + 5)
        self._disable_after = disable_after
        self._poll = poll_seconds
        self._rng = rng or random.Random()

    async def run(self) -> None:
        """Work until cancelled: claim into free slots; while deliveries are in flight,
        wait for the first to finish (at most a poll); idle, wait a poll."""
        tasks: set[asyncio.Task[None]] = set()

        async def step() -> bool:
            nonlocal tasks
            tasks = {t for t in tasks if not t.done()}
            free = self._concurrency - len(tasks)
            claimed = await self._claim(free) if free > 0 else []
            for item in claimed:
                tasks.add(asyncio.create_task(self._deliver(item)))
            if tasks and (not claimed or len(tasks) >= self._concurrency):
                await asyncio.wait(tasks, timeout=self._poll, return_when=asyncio.FIRST_COMPLETED)
                return True
            return bool(claimed)

        try:
            await every(self._poll, step, name="webhook deliveries")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def run_once(self) -> int:
        """Deliver what is due now (one claim), wait for it; return how many."""
        claimed = await self._claim(self._concurrency)
        await asyncio.gather(*(self._deliver(item) for item in claimed))
        return len(claimed)

    async def _claim(self, limit: int) -> list[ClaimedDelivery]:
        now = self._clock.now()
        async with self._sessions() as session, session.begin():
            return await repository.claim_due(
                session,
                now=now,
                lease_until=now + self._lease,
                limit=limit,
                org_cap=self._org_concurrency,
            )

    async def _deliver(self, item: ClaimedDelivery) -> None:
        try:
            now = self._clock.now()
            if not item.endpoint_enabled:  # disabled after the delivery was queued
                async with self._sessions() as session, session.begin():
                    await repository.update_delivery(
                        session,
                        item.delivery_id,
                        state="failed",
                        last_error="endpoint disabled",
                        leased_until=None,
                        finished_at=now,
                    )
                return
            try:
                secrets = service.signing_secrets(
                    self._sealer,
                    item.secret_sealed,
                    item.previous_secret_sealed,
                    item.previous_secret_expires_at,
                    now,
                )
            except SealError:
                # Not sent (unsigned, it would be refused), but an attempt like any
                # failed one: logged for the customer, retried on the schedule.
                outcome = UNSEALABLE
            else:
                outcome = await self._sender.send(
                    url=item.url,
                    message_id=item.message_id,
                    timestamp=int(now.timestamp()),
                    body=item.body,
                    secrets=secrets,
                )
            ATTEMPT_SECONDS.observe(outcome.duration_ms / 1000)
            async with self._sessions() as session, session.begin():
                recorded = await service.record_outcome(
                    session,
                    item,
                    outcome,
                    now=self._clock.now(),
                    rng=self._rng,
                    disable_after=self._disable_after,
                )
            ATTEMPTS.labels("success" if outcome.succeeded else "failure").inc()
            if recorded.endpoint_disabled:
                log.warning(
                    "webhook endpoint disabled",
                    extra={"endpoint_id": str(item.endpoint_id), "org_id": str(item.org_id)},
                )
        except asyncio.CancelledError:
            raise
        except Exception:
            # The lease expires and the delivery is tried again.
            log.exception("webhook delivery failed", extra={"delivery_id": item.delivery_id})
