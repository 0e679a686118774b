"""HTTP transport of the audit log: `GET /v1/audit`."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from tollgate.accounts.audit import service
from tollgate.accounts.audit.schemas import AuditEntryOut
from tollgate.accounts.caller import CurrentCaller
from tollgate.accounts.storable import UtcFilterDatetime
from tollgate.kit.db import DbSession
from tollgate.kit.pagination import (
    DEFAULT_PAGE_SIZE,
    Cursor,
    Page,
    PageSize,
    int_cursor,
    next_cursor_of,
)

router = APIRouter(tags=["audit"])


@router.get("/audit", response_model=Page[AuditEntryOut])
async def list_audit(
    caller: CurrentCaller,
    db: DbSession,
    org_id: uuid.UUID | None = None,
    actor_id: uuid.UUID | None = None,
    action: Annotated[str | None, Query(max_length=100, pattern=r"^[a-z0-9_.]+$")] = None,
    target_id: Annotated[str | None, Query(max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")] = None,
    since: UtcFilterDatetime | None = None,
    until: UtcFilterDatetime | None = None,
    cursor: Cursor = None,
    limit: PageSize = DEFAULT_PAGE_SIZE,
) -> Page[AuditEntryOut]:
    """Audit entries, newest first: admins see all, owners their orgs' entries."""
    async with db.begin():
        rows = await service.list_entries(
            db,
            caller,
            org_id=org_id,
            actor_id=actor_id,
            action=action,
            target_id=target_id,
            since=since,
            until=until,
            before_id=int_cursor(cursor),
            limit=limit + 1,
        )
    page, nxt = next_cursor_of(rows, limit, "id")
    return Page[AuditEntryOut](
        items=[AuditEntryOut.model_validate(r) for r in page], next_cursor=nxt
    )
