"""SQL of webhooks: endpoints, messages, the delivery queue and its attempt log."""

from __future__ import annotations

import uuid
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.notifier.models import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookMessage,
)

_CLAIM_LOCK = zlib.crc32(b"tollgate-notifier:webhook-claim")


@dataclass(frozen=True)
class ClaimedDelivery:
    """A leased queue row with what is needed to send it."""

    delivery_id: int
    message_id: str
    org_id: uuid.UUID
    endpoint_id: uuid.UUID
    attempts: int
    body: str
    url: str
    endpoint_enabled: bool
    secret_sealed: str
    previous_secret_sealed: str | None
    previous_secret_expires_at: datetime | None


async def add_endpoint(session: AsyncSession, endpoint: WebhookEndpoint) -> None:
    """Insert a new endpoint."""
    session.add(endpoint)
    await session.flush()


async def endpoint_of_org(
    session: AsyncSession,
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    *,
    for_update: bool = False,
    deleted: bool = False,
) -> WebhookEndpoint | None:
    """The org's endpoint with that id; None for another org's, and for a deleted
    endpoint unless `deleted` (a repeated delete finds it)."""
    stmt = select(WebhookEndpoint).where(
        WebhookEndpoint.id == endpoint_id, WebhookEndpoint.org_id == org_id
    )
    if not deleted:
        stmt = stmt.where(WebhookEndpoint.deleted_at.is_(None))
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).one_or_none()


async def endpoint_by_id(
    session: AsyncSession, endpoint_id: uuid.UUID, *, for_update: bool = False
) -> WebhookEndpoint | None:
    """Any endpoint by id (workers only)."""
    stmt = select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).one_or_none()


async def endpoints_of_org(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    after: tuple[datetime, uuid.UUID] | None = None,
    limit: int | None = None,
) -> list[WebhookEndpoint]:
    """An org's endpoints (not the deleted ones), oldest first; after the keyset
    position `after`, at most `limit`."""
    stmt = (
        select(WebhookEndpoint)
        .where(WebhookEndpoint.org_id == org_id, WebhookEndpoint.deleted_at.is_(None))
        .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    )
    if after is not None:
        stmt = stmt.where(tuple_(WebhookEndpoint.created_at, WebhookEndpoint.id) > tuple_(*after))
    if limit is not None:
        stmt = stmt.limit(limit)
    return list((await session.scalars(stmt)).all())


async def subscribed_endpoints(
    session: AsyncSession, org_id: uuid.UUID, event_type: str
) -> list[WebhookEndpoint]:
    """Enabled endpoints of an org that take `event_type` (an empty filter takes all)."""
    stmt = select(WebhookEndpoint).where(
        WebhookEndpoint.org_id == org_id,
        WebhookEndpoint.enabled.is_(True),
        (func.cardinality(WebhookEndpoint.event_types) == 0)
        | WebhookEndpoint.event_types.contains([event_type]),
    )
    return list((await session.scalars(stmt)).all())


async def endpoints_taking(session: AsyncSession, event_type: str) -> list[WebhookEndpoint]:
    """Enabled endpoints of every org that take `event_type` (an empty filter takes all),
    by org."""
    stmt = (
        select(WebhookEndpoint)
        .where(
            WebhookEndpoint.enabled.is_(True),
            (func.cardinality(WebhookEndpoint.event_types) == 0)
            | WebhookEndpoint.event_types.contains([event_type]),
        )
        .order_by(WebhookEndpoint.org_id, WebhookEndpoint.id)
    )
    return list((await session.scalars(stmt)).all())


async def insert_message(session: AsyncSession, row: dict[str, Any]) -> bool:
    """Insert a message; False when the org already has one for that event."""
    stmt = insert(WebhookMessage).values(row).on_conflict_do_nothing().returning(WebhookMessage.id)
    return (await session.scalars(stmt)).first() is not None


async def insert_deliveries(session: AsyncSession, rows: list[dict[str, Any]]) -> list[int]:
    """Queue deliveries; an existing (message, endpoint) pair is skipped."""
    if not rows:
        return []
    stmt = (
        insert(WebhookDelivery)
        .values(rows)
        .on_conflict_do_nothing(constraint="uq_webhook_deliveries_target")
        .returning(WebhookDelivery.id)
    )
    return list((await session.scalars(stmt)).all())


_CLAIM = text(
    """
    WITH orgs AS (
        SELECT DISTINCT org_id FROM webhook_deliveries
        WHERE state = 'pending' AND next_attempt_at <= :now
    ),
    candidates AS (
        SELECT c.id, c.org_id, c.next_attempt_at
        FROM orgs o CROSS JOIN LATERAL (
            SELECT d.id, d.org_id, d.next_attempt_at FROM webhook_deliveries d
            WHERE d.org_id = o.org_id AND d.state = 'pending' AND d.next_attempt_at <= :now
              AND (d.leased_until IS NULL OR d.leased_until <= :now)
            ORDER BY d.next_attempt_at, d.id
            LIMIT :org_cap
            FOR UPDATE SKIP LOCKED
        ) c
    ),
    busy AS (
        SELECT org_id, count(*) AS n FROM webhook_deliveries
        WHERE state = 'pending' AND leased_until > :now
        GROUP BY org_id
    ),
    ranked AS (
        SELECT c.id, c.next_attempt_at,
               row_number() OVER (PARTITION BY c.org_id ORDER BY c.next_attempt_at, c.id)
                 + coalesce(b.n, 0) AS slot
        FROM candidates c LEFT JOIN busy b ON b.org_id = c.org_id
    ),
    chosen AS (
        SELECT id FROM ranked WHERE slot <= :org_cap
        ORDER BY slot, next_attempt_at, id LIMIT :limit
    )
    UPDATE webhook_deliveries d SET leased_until = :lease
    FROM chosen, webhook_messages m, webhook_endpoints e
    WHERE d.id = chosen.id AND m.id = d.message_id AND e.id = d.endpoint_id
    RETURNING d.id, d.message_id, d.org_id, d.endpoint_id, d.attempts, m.body,
              e.url, e.enabled, e.secret_sealed, e.previous_secret_sealed,
              e.previous_secret_expires_at
    """
)


async def claim_due(
    session: AsyncSession, *, now: datetime, lease_until: datetime, limit: int, org_cap: int
) -> list[ClaimedDelivery]:
    """Lease up to `limit` due deliveries, at most `org_cap` in flight per org.

    Rows are picked with FOR UPDATE SKIP LOCKED; a transaction-scoped advisory lock
    serialises the (short) claim so that concurrent replicas count in-flight rows
    exactly and the per-org cap holds across processes.
    """
    await session.execute(select(func.pg_advisory_xact_lock(_CLAIM_LOCK)))
    result = await session.execute(
        _CLAIM,
        {"now": now, "lease": lease_until, "limit": limit, "org_cap": org_cap},
    )
    return [
        ClaimedDelivery(
            delivery_id=row.id,
            message_id=row.message_id,
            org_id=row.org_id,
            endpoint_id=row.endpoint_id,
            attempts=row.attempts,
            body=row.body,
            url=row.url,
            endpoint_enabled=row.enabled,
            secret_sealed=row.secret_sealed,
            previous_secret_sealed=row.previous_secret_sealed,
            previous_secret_expires_at=row.previous_secret_expires_at,
        )
        for row in result
    ]


async def record_attempt(session: AsyncSession, attempt: WebhookAttempt) -> None:
    """Append to the delivery log."""
    session.add(attempt)
    await session.flush()


async def update_delivery(session: AsyncSession, delivery_id: int, **values: Any) -> None:
    """Change a delivery's queue state."""
    await session.execute(
        update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(**values)
    )


async def fail_pending_of_endpoint(
    session: AsyncSession, endpoint_id: uuid.UUID, reason: str, now: datetime
) -> int:
    """Give up every pending delivery of a disabled endpoint (recoverable later)."""
    result = await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.state == "pending")
        .values(state="failed", last_error=reason, leased_until=None, finished_at=now)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def requeue_failed_since(
    session: AsyncSession, endpoint_id: uuid.UUID, since: datetime, now: datetime
) -> int:
    """Put every failed delivery created since `since` back in the queue."""
    result = await session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.endpoint_id == endpoint_id,
            WebhookDelivery.state == "failed",
            WebhookDelivery.created_at >= since,
        )
        .values(
            state="pending",
            attempts=0,
            next_attempt_at=now,
            leased_until=None,
            finished_at=None,
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def delivery_of_org(
    session: AsyncSession, org_id: uuid.UUID, delivery_id: int, *, for_update: bool = False
) -> WebhookDelivery | None:
    """The org's delivery with that id; None for another org's."""
    stmt = select(WebhookDelivery).where(
        WebhookDelivery.id == delivery_id, WebhookDelivery.org_id == org_id
    )
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).one_or_none()


async def deliveries_of_endpoint(
    session: AsyncSession,
    endpoint_id: uuid.UUID,
    *,
    state: str | None,
    before_id: int | None,
    limit: int,
) -> list[tuple[WebhookDelivery, str]]:
    """An endpoint's deliveries, newest first, with their event types."""
    stmt = (
        select(WebhookDelivery, WebhookMessage.event_type)
        .join(WebhookMessage, WebhookMessage.id == WebhookDelivery.message_id)
        .where(WebhookDelivery.endpoint_id == endpoint_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    )
    if state is not None:
        stmt = stmt.where(WebhookDelivery.state == state)
    if before_id is not None:
        stmt = stmt.where(WebhookDelivery.id < before_id)
    return [(row[0], row[1]) for row in (await session.execute(stmt)).all()]


async def event_type_of(session: AsyncSession, message_id: str) -> str:
    """The event type of a message."""
    stmt = select(WebhookMessage.event_type).where(WebhookMessage.id == message_id)
    return str((await session.scalars(stmt)).one())


async def attempts_of(session: AsyncSession, delivery_id: int) -> list[WebhookAttempt]:
    """A delivery's attempts, oldest first."""
    stmt = (
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id == delivery_id)
        .order_by(WebhookAttempt.id)
    )
    return list((await session.scalars(stmt)).all())


async def clear_failing(session: AsyncSession, endpoint_id: uuid.UUID) -> None:
    """A success ends an endpoint's failing streak (a no-op write when not failing)."""
    await session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.failing_since.is_not(None))
        .values(failing_since=None)
    )
