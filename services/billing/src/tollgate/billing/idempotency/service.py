"""Idempotency rules for admin writes (draft-ietf-httpapi-idempotency-key-header).

Within the request's transaction, `claim` either reserves the key (the caller then
does the work and `remember`s its response) or returns the stored response of the
first request. Concurrent requests with the same key wait on the first one's row
and then replay its response, so exactly one is applied. The same key with a
different request (method, path or body) is refused with 422. Keys are kept for
`idempotency_retention_hours` (≥ 24 h). Nothing here commits.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.billing.config import Settings
from tollgate.billing.idempotency import repository
from tollgate.kit.problems import Conflict, Unprocessable


@dataclass(frozen=True)
class StoredResponse:
    """The response given to the first request with a key."""

    status_code: int
    body: bytes


def fingerprint(method: str, path: str, body: dict[str, Any]) -> str:
    """A digest of what the request asks for (body compared as canonical JSON)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


async def claim(
    session: AsyncSession, org_id: uuid.UUID, key: str, print_: str
) -> StoredResponse | None:
    """Reserve `key` for this request (None: go ahead) or return the first response."""
    if await repository.claim(session, org_id, key, print_):
        return None
    record = await repository.get(session, org_id, key)
    if record is None or record.response is None:  # pragma: no cover - claim waited on it
        raise Conflict(
            "idempotency-key-in-progress", "A request with this Idempotency-Key is in progress."
        )
    if record.fingerprint != print_:
        raise Unprocessable(
            "idempotency-key-reused", "This Idempotency-Key was used for a different request."
        )
    return StoredResponse(status_code=record.status_code, body=record.response)


async def remember(
    session: AsyncSession, org_id: uuid.UUID, key: str, status_code: int, body: bytes
) -> None:
    """Store the response of the request that claimed `key`."""
    await repository.complete(session, org_id, key, status_code, body)


async def forget_expired(session: AsyncSession, settings: Settings) -> int:
    """Drop keys older than the retention."""
    cutoff = datetime.now(UTC) - timedelta(hours=settings.idempotency_retention_hours)
    return await repository.forget_before(session, cutoff)
