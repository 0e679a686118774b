"""HTTP transport of email: org notification contacts, and the admins' view of the
mail queue (failures are visible here and can be retried)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from tollgate.kit.audit import RecordedChange
from tollgate.kit.auth import CurrentPrincipal, Role, authorize_org, require_admin
from tollgate.kit.db import DbSession
from tollgate.kit.pagination import (
    MAX_PAGE_SIZE,
    Cursor,
    Page,
    PageSize,
    decode_cursor,
    page_after,
    page_of,
)
from tollgate.kit.requests import NUL_FREE
from tollgate.notifier.email import repository, service
from tollgate.notifier.email.schemas import ContactOut, ContactsIn, EmailOut
from tollgate.notifier.state import Notifier

router = APIRouter(tags=["email"])


@router.get("/orgs/{org_id}/notification-contacts")
async def list_contacts(
    org_id: uuid.UUID,
    principal: CurrentPrincipal,
    db: DbSession,
    cursor: Cursor = None,
    limit: PageSize = MAX_PAGE_SIZE,
) -> Page[ContactOut]:
    """Who receives the org's notification emails, by address (at most 20)."""
    authorize_org(principal, org_id, Role.viewer)
    contacts = await repository.contacts_of_org(db, org_id)
    page, next_cursor = page_after(contacts, cursor, limit, lambda c: (c.email,), (str,))
    return Page[ContactOut](items=[ContactOut.of(c) for c in page], next_cursor=next_cursor)


@router.put("/orgs/{org_id}/notification-contacts")
async def replace_contacts(
    org_id: uuid.UUID,
    body: ContactsIn,
    principal: CurrentPrincipal,
    db: DbSession,
    notifier: Notifier,
    change: RecordedChange,
) -> Page[ContactOut]:
    """Replace the org's notification contacts (owners); answers all of them."""
    authorize_org(principal, org_id, Role.owner)
    contacts = [
        service.Contact(email=service.deliverable_address(c.email), locale=c.locale)
        for c in body.contacts
    ]
    async with db.begin():
        stored = await service.replace_contacts(
            db, org_id, contacts, notifier.clock.now(), change, notifier.sms_balances
        )
    return Page[ContactOut](items=[ContactOut.of(c) for c in stored])


@router.get("/admin/emails")
async def list_emails(
    principal: CurrentPrincipal,
    db: DbSession,
    state: Literal["pending", "sent", "failed"] | None = None,
    kind: Annotated[str | None, Query(max_length=64, pattern=NUL_FREE)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Cursor = None,
) -> Page[EmailOut]:
    """The mail queue, newest first, one page at a time; `state=failed` lists permanent
    failures."""
    require_admin(principal)
    before = decode_cursor(cursor, datetime, uuid.UUID) if cursor else None
    rows = await repository.list_emails(db, state=state, limit=limit + 1, kind=kind, before=before)
    page, next_cursor = page_of(rows, limit, lambda m: (m.created_at, m.id))
    return Page[EmailOut](items=[EmailOut.of(m) for m in page], next_cursor=next_cursor)


@router.post("/admin/emails/{email_id}/retry", status_code=202)
async def retry_email(
    email_id: uuid.UUID, principal: CurrentPrincipal, db: DbSession, notifier: Notifier
) -> EmailOut:
    """Queue a failed mail again."""
    require_admin(principal)
    async with db.begin():
        return EmailOut.of(await service.retry_failed(db, email_id, notifier.clock.now()))
