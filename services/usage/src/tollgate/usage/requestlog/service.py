"""Request log rules: cursors, page sizes, visibility. Never commits."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.kit import pagination
from tollgate.kit.auth import Principal
from tollgate.kit.problems import NotFound
from tollgate.usage.models import RequestLogEntry
from tollgate.usage.requestlog import repository
from tollgate.usage.requestlog.repository import LogFilter
from tollgate.usage.scope import can_see


def encode_cursor(row: RequestLogEntry) -> str:
    """An opaque cursor pointing just after `row`."""
    return pagination.encode_cursor(row.time, row.request_id)


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The keyset position in a cursor; 422 when it is not one of ours."""
    at, request_id = pagination.decode_cursor(cursor, datetime, uuid.UUID)
    return at, request_id


async def list_requests(
    session: AsyncSession, where: LogFilter, *, cursor: str | None, limit: int
) -> tuple[list[RequestLogEntry], str | None]:
    """A page of the log and the cursor of the next page (None at the end)."""
    after = decode_cursor(cursor) if cursor else None
    rows = await repository.page(session, where, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1]) if more and rows else None


async def find_request(
    session: AsyncSession, principal: Principal, request_id: uuid.UUID
) -> RequestLogEntry:
    """A request the caller may see; 404 when unknown or another tenant's."""
    row = await repository.by_request_id(session, request_id)
    if row is None or not can_see(principal, row.org_id):
        raise NotFound("request-not-found", "No such request.")
    return row


async def recent_for_key(
    session: AsyncSession, where: LogFilter, limit: int
) -> list[RequestLogEntry]:
    """The latest requests matching `where` (newest first)."""
    return await repository.page(session, where, after=None, limit=limit)
