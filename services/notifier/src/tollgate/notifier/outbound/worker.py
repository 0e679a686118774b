"""The send queue: hands queued SMS to their provider, off the request path.

Each round claims due messages (`FOR UPDATE SKIP LOCKED`, a lease of
`sms_send_lease_seconds`, the attempt counted and the provider chosen in one UPDATE,
then committed), calls the provider outside any transaction, and records the round's
outcomes in one transaction of a few statements whatever the round's size (lock,
batched updates and history rows, one outbox INSERT): accepted → `sent` with the provider's
message id; a transient error (network, timeout, 429, 5xx) → back to pending after a
back-off (2 s, 10 s, 1 min, 5 min, 30 min, or the provider's `Retry-After`) until
`sms_send_max_attempts`; a permanent error or the last attempt → `failed` and refunded.

A message keeps the provider it was first claimed for, and every call carries the
message id as the provider's idempotency token. A process killed between the
provider's answer and the record leaves the message in flight; once its lease
expires another round sends it again with the same token, so a provider that honours
the token (the generic adapter's `Idempotency-Key`, the fake Twilio of the tests)
answers with the first message instead of sending a second. Throughput per provider
is capped at its `rate_per_second` in each process (token bucket).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from prometheus_client import Counter

from tollgate.contracts.events.notifier import SmsStatus
from tollgate.kit.db import SessionMaker
from tollgate.kit.jobs import every
from tollgate.kit.sealing import Sealer
from tollgate.notifier.clock import Clock
from tollgate.notifier.config import Settings
from tollgate.notifier.models import SmsOutbound, SmsProvider
from tollgate.notifier.outbound import repository, service
from tollgate.notifier.outbound.providers import (
    Accepted,
    HttpJsonProvider,
    OutgoingSms,
    ProviderError,
    TwilioProvider,
    client_for,
    stored_credentials,
)

log = logging.getLogger(__name__)

BACKOFF_SECONDS = (2, 10, 60, 300, 1800)
MAX_RETRY_AFTER_S = 86_400  # a provider's Retry-After, as webhooks and email cap it

SMS_SENDS = Counter(
    "tollgate_notifier_sms_sends_total", "provider send calls by outcome", ["outcome"]
)


class _Bucket:
    """Token bucket: `rate` sends per second, bursts up to one second's worth."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.tokens = float(rate)
        self.at = time.monotonic()

    def take(self, wanted: int) -> int:
        now = time.monotonic()
        self.tokens = min(float(self.rate), self.tokens + (now - self.at) * self.rate)
        self.at = now
        granted = min(wanted, int(self.tokens))
        self.tokens -= granted
        return granted


@dataclass
class _Adapter:
    fingerprint: str
    client: TwilioProvider | HttpJsonProvider
    bucket: _Bucket
    row: SmsProvider


def callback_url(settings: Settings, provider: SmsProvider) -> str | None:
    """Where the provider reports delivery; None without a public URL."""
    base = settings.sms_public_url.rstrip("/")
    if not base:
        return None
    return f"{base}/v1/sms/status/{provider.kind}/{provider.id}"


class SmsSendWorker:
    """Sends queued SMS until cancelled; `wake()` shortens the wait after a send."""

    def __init__(
        self, *, sessions: SessionMaker, sealer: Sealer, clock: Clock, settings: Settings
    ) -> None:
        self._sessions = sessions
        self._sealer = sealer
        self._clock = clock
        self._settings = settings
        self._adapters: dict[uuid.UUID, _Adapter] = {}
        self._unreadable: set[str] = set()  # fingerprints of providers sitting out
        self._wakeup = asyncio.Event()

    def wake(self) -> None:
        self._wakeup.set()

    async def close(self) -> None:
        for adapter in self._adapters.values():
            await adapter.client.close()
        self._adapters.clear()

    async def _load_adapters(self) -> list[_Adapter]:
        async with self._sessions() as session:
            rows = [p for p in await repository.providers(session) if p.enabled]
        active = []
        for row in rows:
            fingerprint = json.dumps([row.kind, row.config, row.credentials_sealed], sort_keys=True)
            if fingerprint in self._unreadable:
                continue
            adapter = self._adapters.get(row.id)
            if adapter is None or adapter.fingerprint != fingerprint:
                if adapter is not None:
                    await adapter.client.close()
                credentials = stored_credentials(self._sealer, row.credentials_sealed)
                if credentials is None:
                    # Sealed with a key no longer configured: this provider sits out until
                    # its credentials are entered again; the others go on sending.
                    self._adapters.pop(row.id, None)
                    self._unreadable.add(fingerprint)
                    log.error(
                        "sms provider skipped: its credentials cannot be unsealed",
                        extra={"provider": row.name},
                    )
                    continue
                adapter = _Adapter(
                    fingerprint,
                    client_for(row.kind, row.config, credentials),
                    _Bucket(row.rate_per_second),
                    row,
                )
                self._adapters[row.id] = adapter
            adapter.row = row
            adapter.bucket.rate = row.rate_per_second
            active.append(adapter)
        return active

    async def run_once(self) -> int:
        """One round: claim, send, record; returns how many were sent or settled."""
        adapters = await self._load_adapters()
        if not adapters:
            return 0
        preferred = adapters[0]
        by_id = {a.row.id: a for a in adapters}
        wanted = preferred.bucket.take(self._settings.sms_send_concurrency)
        if wanted == 0:
            return 0
        now = self._clock.now()
        lease = now + timedelta(seconds=self._settings.sms_send_lease_seconds)
        async with self._sessions() as session, session.begin():
            claimed = await repository.claim_due(
                session,
                now,
                wanted,
                lease,
                active=list(by_id),
                preferred=(preferred.row.id, preferred.row.name),
            )
        if len(claimed) < wanted:
            preferred.bucket.tokens += wanted - len(claimed)  # unused sends go back
        if not claimed:
            return 0
        outcomes = await asyncio.gather(
            *(self._send(by_id[m.provider_id], m) for m in claimed if m.provider_id in by_id)
        )
        await self._record(list(zip(claimed, outcomes, strict=True)))
        return len(claimed)

    async def _send(self, adapter: _Adapter, message: SmsOutbound) -> Accepted | ProviderError:
        sms = OutgoingSms(
            message_id=str(message.id),
            to=message.to_number,
            from_=message.from_number,
            text=message.body,
            reference=message.client_reference,
            status_callback_url=callback_url(self._settings, adapter.row),
        )
        try:
            accepted = await adapter.client.send(sms)
        except ProviderError as exc:
            error = exc
        except Exception as exc:  # an answer the client could not read: one message's
            log.exception("sms provider answer not understood")  # problem, not the round's
            error = ProviderError("unreadable", type(exc).__name__, transient=True)
        else:
            SMS_SENDS.labels("accepted").inc()
            return accepted
        SMS_SENDS.labels("transient" if error.transient else "refused").inc()
        log.warning(
            "sms send failed",
            extra={
                "message_id": str(message.id),
                "provider": adapter.row.name,
                "code": error.code,
                "transient": error.transient,
            },
        )
        return error

    async def _record(self, outcomes: list[tuple[SmsOutbound, Accepted | ProviderError]]) -> None:
        """Record a round's outcomes in one transaction and a few statements (one commit
        for the round; if it fails, the leases expire and the messages go again with the
        same token)."""
        now = self._clock.now()
        async with self._sessions() as session, session.begin():
            locked = await repository.lock_messages(session, [m.id for m, _ in outcomes])
            taken = await repository.provider_ids_taken(
                session,
                [
                    (m.provider_id, o.provider_message_id[:128])
                    for m, o in outcomes
                    if isinstance(o, Accepted) and m.provider_id is not None
                ],
            )
            changes = []
            for claimed, outcome in outcomes:
                message = locked.get(claimed.id)
                if message is None or message.send_state == "done":
                    continue
                change = self._outcome(message, outcome, now, taken)
                if change is not None:
                    changes.append(change)
            await service.advance_many(session, changes, now)

    def _outcome(
        self,
        message: SmsOutbound,
        outcome: Accepted | ProviderError,
        now: datetime,
        taken: set[tuple[uuid.UUID | None, str]],
    ) -> service.StatusChange | None:
        """The status a send outcome reaches; None for a transient error with attempts
        left (the message goes back to pending after its back-off). `taken`: provider
        message ids already recorded (this round's are added)."""
        if isinstance(outcome, Accepted):
            provider_id = (message.provider_id, outcome.provider_message_id[:128])
            if provider_id in taken:
                # Sent, but under an id the provider gave another message (a provider
                # set up to answer a constant): its reports cannot be told apart. Kept
                # as sent, never sent again.
                log.error(
                    "sms provider answered a message id it gave another message",
                    extra={"message_id": str(message.id), "provider_id": str(message.provider_id)},
                )
            else:
                taken.add(provider_id)
                message.provider_message_id = provider_id[1]
            message.send_state = "done"
            message.leased_until = None
            return service.StatusChange(message, SmsStatus.SENT)
        last = message.attempts >= self._settings.sms_send_max_attempts
        if outcome.transient and not last:
            delay = min(
                outcome.retry_after_seconds
                or BACKOFF_SECONDS[min(message.attempts, len(BACKOFF_SECONDS)) - 1],
                MAX_RETRY_AFTER_S,
            )
            message.send_state = "pending"
            message.leased_until = None
            message.next_attempt_at = now + timedelta(seconds=delay)
            message.error_code = outcome.code
            message.error_message = outcome.message
            return None
        return service.StatusChange(
            message, SmsStatus.FAILED, error_code=outcome.code, error_message=outcome.message
        )

    async def run(self) -> None:
        """Work until cancelled: again at once after a busy round, else at the next
        poll or `wake()`."""

        async def step() -> bool:
            return await self.run_once() > 0

        try:
            await every(
                self._settings.sms_send_poll_seconds, step, name="sms sender", wake=self._wakeup
            )
        finally:
            await self.close()
