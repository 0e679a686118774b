"""Webhook rules: endpoints and their secrets, which events become messages, and
what happens after each delivery attempt (retry schedule, disabling).

Never commits; the transport (HTTP handler, consumer, worker) owns the transaction.
Secrets are sealed at rest and returned only by `create_endpoint` and
`rotate_secret`. Times come from the caller (an injectable clock), so schedules
are testable without sleeping.
"""

from __future__ import annotations

import contextlib
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from yarl import URL

from tollgate.contracts.envelope import CloudEvent
from tollgate.contracts.ids import uuid7
from tollgate.kit.audit import AuditChange
from tollgate.kit.netpolicy import DestinationRefused, NetworkPolicy
from tollgate.kit.problems import Conflict, NotFound, Unprocessable
from tollgate.kit.sealing import Sealer, SealError
from tollgate.notifier.email import service as email
from tollgate.notifier.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tollgate.notifier.webhooks import repository
from tollgate.notifier.webhooks.catalog import (
    PLATFORM_WIDE,
    SUBSCRIBABLE,
    body_for_event,
    ping_body,
)
from tollgate.notifier.webhooks.repository import ClaimedDelivery
from tollgate.notifier.webhooks.sender import AttemptOutcome
from tollgate.notifier.webhooks.signing import new_secret
from tollgate.notifier.webhooks.ssrf import refuse_literal_host

RETRY_SCHEDULE = (0, 5, 300, 1800, 7200, 18_000, 36_000, 36_000)
"""Seconds before attempt n+1 (n = attempts so far): 0 s, 5 s, 5 min, 30 min, 2 h, 5 h,
10 h, 10 h. After the last one fails the delivery is failed (recoverable)."""
JITTER = 0.2
"""Each delay is stretched or shrunk by up to this fraction, so retries spread out."""
MAX_RETRY_AFTER = timedelta(hours=24)
ROTATION_GRACE = timedelta(hours=24)


def _valid_url(url: str, policy: NetworkPolicy) -> str:
    try:
        parsed = URL(url)
    except ValueError as exc:
        raise Unprocessable("invalid-url", "Invalid URL.") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise Unprocessable("invalid-url", "The URL must be http(s) with a host.")
    if parsed.user or parsed.password:
        raise Unprocessable("invalid-url", "The URL must not carry credentials.")
    try:
        refuse_literal_host(parsed.host, policy)
    except DestinationRefused as exc:
        raise Unprocessable(
            "internal-destination", "The URL points to an internal address."
        ) from exc
    return url


def _valid_event_types(event_types: list[str]) -> list[str]:
    unknown = sorted(set(event_types) - SUBSCRIBABLE)
    if unknown:
        raise Unprocessable("unknown-event-type", f"Unknown event types: {', '.join(unknown)}.")
    return sorted(set(event_types))


async def create_endpoint(
    session: AsyncSession,
    sealer: Sealer,
    org_id: uuid.UUID,
    *,
    url: str,
    description: str,
    event_types: list[str],
    enabled: bool,
    now: datetime,
    policy: NetworkPolicy | None = None,
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its secret (the only time the secret is handed out, besides
    rotation)."""
    secret = new_secret()
    endpoint = WebhookEndpoint(
        id=uuid7(),
        org_id=org_id,
        url=_valid_url(url, policy or NetworkPolicy()),
        description=description,
        event_types=_valid_event_types(event_types),
        enabled=enabled,
        disabled_reason=None if enabled else "manual",
        secret_sealed=sealer.seal(secret),
        previous_secret_sealed=None,
        previous_secret_expires_at=None,
        failing_since=None,
        created_at=now,
        updated_at=now,
    )
    await repository.add_endpoint(session, endpoint)
    return endpoint, secret


async def update_endpoint(
    session: AsyncSession,
    endpoint: WebhookEndpoint,
    changes: dict[str, Any],
    now: datetime,
    policy: NetworkPolicy | None = None,
    change: AuditChange | None = None,
) -> WebhookEndpoint:
    """Apply a partial update; enabling clears the failure history, disabling gives up
    the pending deliveries (they can be recovered). `change` receives the endpoint's
    settings before and after, for the audit record."""
    before = _settings_of(endpoint)
    if "url" in changes:
        endpoint.url = _valid_url(changes["url"], policy or NetworkPolicy())
    if "description" in changes:
        endpoint.description = changes["description"]
    if "event_types" in changes:
        endpoint.event_types = _valid_event_types(changes["event_types"])
    if "enabled" in changes and changes["enabled"] != endpoint.enabled:
        endpoint.enabled = changes["enabled"]
        if endpoint.enabled:
            endpoint.disabled_reason = None
            endpoint.failing_since = None
        else:
            endpoint.disabled_reason = "manual"
            await repository.fail_pending_of_endpoint(
                session, endpoint.id, "endpoint disabled", now
            )
    endpoint.updated_at = now
    await session.flush()
    if change is not None:
        change.note(before, _settings_of(endpoint))
    return endpoint


def _settings_of(endpoint: WebhookEndpoint) -> dict[str, Any]:
    names = ("url", "description", "event_types", "enabled", "disabled_reason")
    return {name: getattr(endpoint, name) for name in names}


async def delete_endpoint(session: AsyncSession, endpoint: WebhookEndpoint, now: datetime) -> None:
    """Delete an endpoint softly: it disappears from lists and reads, gets no new
    deliveries and its pending ones are given up; retention removes the row later."""
    endpoint.deleted_at = now
    endpoint.enabled = False
    endpoint.disabled_reason = "deleted"
    endpoint.updated_at = now
    await session.flush()
    await repository.fail_pending_of_endpoint(session, endpoint.id, "endpoint deleted", now)


async def rotate_secret(
    session: AsyncSession, sealer: Sealer, endpoint: WebhookEndpoint, now: datetime
) -> str:
    """Give the endpoint a new secret; the old one keeps signing for 24 h."""
    secret = new_secret()
    endpoint.previous_secret_sealed = endpoint.secret_sealed
    endpoint.previous_secret_expires_at = now + ROTATION_GRACE
    endpoint.secret_sealed = sealer.seal(secret)
    endpoint.updated_at = now
    await session.flush()
    return secret


def signing_secrets(
    sealer: Sealer,
    secret_sealed: str,
    previous_sealed: str | None,
    previous_expires_at: datetime | None,
    now: datetime,
) -> list[str]:
    """The secrets that sign a message now: the current one, plus the previous one
    during its rotation grace period. Raises SealError when the current one cannot be
    opened (sealed with a key no longer configured); a previous one that cannot is left
    out, so rotating the secret is the customer's way out."""
    secrets = [sealer.unseal(secret_sealed).decode()]
    if previous_sealed and previous_expires_at is not None and now < previous_expires_at:
        with contextlib.suppress(SealError):
            secrets.append(sealer.unseal(previous_sealed).decode())
    return secrets


def event_org(event: CloudEvent[Any]) -> uuid.UUID | None:
    """The org a subscribable event belongs to (None for other events)."""
    if event.type not in SUBSCRIBABLE:
        return None
    org_id = getattr(event.data, "org_id", None)
    return org_id if isinstance(org_id, uuid.UUID) else None


async def queue_for_event(session: AsyncSession, event: CloudEvent[Any], now: datetime) -> int:
    """Queue the event for every subscribed endpoint of its org (of every org, for a
    platform-wide type); returns deliveries queued. Idempotent on the event id (one
    message per org and event)."""
    if event.type in PLATFORM_WIDE:
        return await _queue_for_every_org(session, event, now)
    org_id = event_org(event)
    if org_id is None:
        return 0
    endpoints = await repository.subscribed_endpoints(session, org_id, event.type)
    if not endpoints:
        return 0
    message_id = f"msg_{uuid.UUID(event.id).hex}" if _is_uuid(event.id) else f"msg_{event.id}"
    return await _queue_message(session, event, org_id, message_id, endpoints, now)


async def _queue_for_every_org(session: AsyncSession, event: CloudEvent[Any], now: datetime) -> int:
    """One message per org with endpoints taking the type; its id (the `webhook-id`) is
    derived from the event id and the org, so a redelivery queues nothing new."""
    by_org: dict[uuid.UUID, list[WebhookEndpoint]] = {}
    for endpoint in await repository.endpoints_taking(session, event.type):
        by_org.setdefault(endpoint.org_id, []).append(endpoint)
    queued = 0
    for org_id, endpoints in by_org.items():
        message_id = f"msg_{uuid.uuid5(uuid.NAMESPACE_OID, f'{event.id}/{org_id}').hex}"
        queued += await _queue_message(session, event, org_id, message_id, endpoints, now)
    return queued


async def _queue_message(
    session: AsyncSession,
    event: CloudEvent[Any],
    org_id: uuid.UUID,
    message_id: str,
    endpoints: list[WebhookEndpoint],
    now: datetime,
) -> int:
    created = await repository.insert_message(
        session,
        {
            "id": message_id,
            "org_id": org_id,
            "event_type": event.type,
            "event_id": event.id,
            "body": body_for_event(event),
            "created_at": now,
        },
    )
    if not created:
        return 0
    return len(
        await repository.insert_deliveries(
            session, [_delivery(message_id, e, now) for e in endpoints]
        )
    )


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _delivery(message_id: str, endpoint: WebhookEndpoint, now: datetime) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "endpoint_id": endpoint.id,
        "org_id": endpoint.org_id,
        "state": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


async def queue_ping(session: AsyncSession, endpoint: WebhookEndpoint, now: datetime) -> int:
    """Queue a test message to one endpoint; returns the delivery id."""
    if not endpoint.enabled:
        raise Conflict("endpoint-disabled", "The endpoint is disabled.")
    message_id = f"msg_{uuid7().hex}"
    await repository.insert_message(
        session,
        {
            "id": message_id,
            "org_id": endpoint.org_id,
            "event_type": "tollgate.webhook.test",
            "event_id": None,
            "body": ping_body(endpoint.id, now),
            "created_at": now,
        },
    )
    (delivery_id,) = await repository.insert_deliveries(
        session, [_delivery(message_id, endpoint, now)]
    )
    return delivery_id


def retry_delay(
    attempts: int, retry_after_seconds: float | None, rng: random.Random
) -> timedelta | None:
    """Delay before the next attempt after `attempts` failed ones; None = give up."""
    if attempts >= len(RETRY_SCHEDULE):
        return None
    seconds = RETRY_SCHEDULE[attempts] * rng.uniform(1 - JITTER, 1 + JITTER)
    if retry_after_seconds is not None:
        seconds = max(seconds, min(retry_after_seconds, MAX_RETRY_AFTER.total_seconds()))
    return timedelta(seconds=seconds)


@dataclass(frozen=True)
class Recorded:
    """What recording an attempt decided."""

    state: str
    endpoint_disabled: bool = False


async def record_outcome(
    session: AsyncSession,
    claimed: ClaimedDelivery,
    outcome: AttemptOutcome,
    *,
    now: datetime,
    rng: random.Random,
    disable_after: timedelta,
) -> Recorded:
    """Log the attempt and move the delivery on: succeeded, retry later, or failed.

    410 Gone disables the endpoint at once; an endpoint with no success for
    `disable_after` (5 days) is disabled; either way its contacts are emailed and its
    pending deliveries are failed (recoverable).
    """
    delivery = await session.get(WebhookDelivery, claimed.delivery_id, with_for_update=True)
    if delivery is None:  # endpoint deleted meanwhile
        return Recorded("gone")
    await repository.record_attempt(
        session,
        WebhookAttempt(
            delivery_id=delivery.id,
            attempted_at=now,
            succeeded=outcome.succeeded,
            response_status=outcome.status,
            duration_ms=outcome.duration_ms,
            response_body=outcome.response_body,
            error=outcome.error,
        ),
    )
    if delivery.state != "pending":
        return Recorded(delivery.state)
    attempts = delivery.attempts + 1
    if outcome.succeeded:
        await repository.update_delivery(
            session,
            delivery.id,
            state="succeeded",
            attempts=attempts,
            leased_until=None,
            last_status=outcome.status,
            last_error=None,
            finished_at=now,
        )
        await repository.clear_failing(session, delivery.endpoint_id)
        return Recorded("succeeded")
    endpoint = await repository.endpoint_by_id(session, delivery.endpoint_id, for_update=True)
    assert endpoint is not None  # the delivery row would be gone with it
    error = outcome.error or f"HTTP {outcome.status}"
    reason: str | None = None
    if outcome.status == 410:
        reason = "gone"
    else:
        if endpoint.failing_since is None:
            endpoint.failing_since = now
        elif now - endpoint.failing_since >= disable_after:
            reason = "failing"
    delay = retry_delay(attempts, outcome.retry_after_seconds, rng)
    final = reason is not None or delay is None
    await repository.update_delivery(
        session,
        delivery.id,
        state="failed" if final else "pending",
        attempts=attempts,
        leased_until=None,
        next_attempt_at=now + delay if delay is not None else delivery.next_attempt_at,
        last_status=outcome.status,
        last_error=error,
        finished_at=now if final else None,
    )
    if reason is not None and endpoint.enabled:
        await disable_endpoint(session, endpoint, reason, now)
        return Recorded("failed", endpoint_disabled=True)
    return Recorded("failed" if final else "pending")


async def disable_endpoint(
    session: AsyncSession, endpoint: WebhookEndpoint, reason: str, now: datetime
) -> None:
    """Disable an endpoint, fail its pending deliveries and email the org's contacts."""
    endpoint.enabled = False
    endpoint.disabled_reason = reason
    endpoint.updated_at = now
    await session.flush()
    await repository.fail_pending_of_endpoint(
        session, endpoint.id, f"endpoint disabled: {reason}", now
    )
    # The endpoint's host only, never its URL (whose path a tenant writes: text sent
    # from the operator's domain to the org's contacts), and one such mail per org and
    # day (the console lists every disabled endpoint).
    await email.queue_for_org(
        session,
        endpoint.org_id,
        kind="webhook_endpoint_disabled",
        context={
            "host": URL(endpoint.url).raw_host or "?",  # punycode, not look-alike Unicode
            "reason": reason,
            "endpoint_id": str(endpoint.id),
        },
        dedupe_key=f"endpoint-disabled:{endpoint.org_id}:{now.date().isoformat()}",
        now=now,
    )


async def retry_delivery(
    session: AsyncSession, org_id: uuid.UUID, delivery_id: int, now: datetime
) -> WebhookDelivery:
    """Send one delivery again now (a fresh retry cycle)."""
    delivery = await repository.delivery_of_org(session, org_id, delivery_id, for_update=True)
    if delivery is None:
        raise NotFound("delivery-not-found", "No such delivery.")
    endpoint = await repository.endpoint_by_id(session, delivery.endpoint_id)
    if endpoint is None or not endpoint.enabled:
        raise Conflict("endpoint-disabled", "The endpoint is disabled; enable it first.")
    if delivery.state == "pending":
        raise Conflict("already-queued", "The delivery is already queued.")
    await repository.update_delivery(
        session,
        delivery.id,
        state="pending",
        attempts=0,
        next_attempt_at=now,
        leased_until=None,
        finished_at=None,
    )
    await session.refresh(delivery)
    return delivery


async def recover(
    session: AsyncSession, endpoint: WebhookEndpoint, since: datetime, now: datetime
) -> int:
    """Queue again every failed delivery of the endpoint created since `since`."""
    if not endpoint.enabled:
        raise Conflict("endpoint-disabled", "The endpoint is disabled; enable it first.")
    if since > now:
        raise Unprocessable("invalid-range", "`since` is in the future.")
    return await repository.requeue_failed_since(session, endpoint.id, since, now)
