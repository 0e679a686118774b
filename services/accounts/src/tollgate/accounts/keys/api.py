"""HTTP transport of API keys: `/v1/orgs/{org_id}/keys` and `/v1/keys/{key_id}`.

A key is reached only through its org: the caller must be a member of the key's org
(404 otherwise, so ids of other tenants' keys are indistinguishable from unknown ids).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.accounts.caller import CurrentActor, CurrentCaller
from tollgate.accounts.config import CurrentSettings
from tollgate.accounts.keys import service
from tollgate.accounts.keys.schemas import (
    KeyCreateIn,
    KeyIssuedOut,
    KeyOut,
    KeyPatch,
    KeyStatus,
    RotateIn,
)
from tollgate.accounts.models import ApiKey
from tollgate.accounts.orgs.service import get_org
from tollgate.kit.auth import Principal, Role, authorize_org
from tollgate.kit.db import DbSession
from tollgate.kit.pagination import (
    DEFAULT_PAGE_SIZE,
    Cursor,
    Page,
    PageSize,
    next_cursor_of,
    uuid_cursor,
)
from tollgate.kit.problems import documented_problems
from tollgate.kit.requests import NUL_FREE

router = APIRouter(tags=["keys"])


_KEY_ERRORS = documented_problems(
    {404: ("No such key (or not in the caller's orgs).", ["key-not-found"])}
)


async def _authorized_key(
    db: AsyncSession, caller: Principal, key_id: uuid.UUID, at_least: Role
) -> ApiKey:
    key = await service.get_key(db, key_id)
    if not caller.can(key.org_id, Role.viewer):
        raise service.not_found()
    authorize_org(caller, key.org_id, at_least)
    return key


@router.post("/orgs/{org_id}/keys", status_code=201, response_model=KeyIssuedOut)
async def create_key(
    settings: CurrentSettings,
    org_id: uuid.UUID,
    body: KeyCreateIn,
    request: Request,
    actor: CurrentActor,
    db: DbSession,
) -> KeyIssuedOut:
    """Issue a key. The raw key is in this response only; it cannot be shown again."""
    assert actor.principal is not None
    authorize_org(actor.principal, org_id, Role.developer)
    async with db.begin():
        await get_org(db, org_id)
        key, raw = await service.create_key(db, settings, actor, org_id, body)
    return KeyIssuedOut(**key.model_dump(), key=raw)


@router.get("/orgs/{org_id}/keys", response_model=Page[KeyOut])
async def list_keys(
    org_id: uuid.UUID,
    caller: CurrentCaller,
    db: DbSession,
    cursor: Cursor = None,
    limit: PageSize = DEFAULT_PAGE_SIZE,
    status: Annotated[
        KeyStatus | None,
        Query(description="only keys in this status (a revoked key is only `revoked`)"),
    ] = None,
    api_id: Annotated[
        uuid.UUID | None,
        Query(description="only keys that may call this API (no API restriction or listed)"),
    ] = None,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            pattern=NUL_FREE,
            description="name contains (case-insensitive)",
        ),
    ] = None,
) -> Page[KeyOut]:
    """The org's keys (prefix and last 4 only), optionally filtered by status, by an
    API they may call and by a name search. A cursor belongs to the filters it was
    issued with."""
    authorize_org(caller, org_id, Role.viewer)
    async with db.begin():
        await get_org(db, org_id)
        rows = await service.list_keys(
            db,
            org_id,
            after=uuid_cursor(cursor),
            limit=limit + 1,
            status=status.value if status is not None else None,
            api_id=api_id,
            name_contains=q,
        )
    page, nxt = next_cursor_of(rows, limit, "id")
    return Page[KeyOut](items=page, next_cursor=nxt)


@router.get("/keys/{key_id}", response_model=KeyOut, responses=_KEY_ERRORS)
async def get_key(key_id: uuid.UUID, caller: CurrentCaller, db: DbSession) -> KeyOut:
    async with db.begin():
        key = await _authorized_key(db, caller, key_id, Role.viewer)
        return await service.read_key(db, key)


@router.patch("/keys/{key_id}", response_model=KeyOut, responses=_KEY_ERRORS)
async def update_key(
    settings: CurrentSettings,
    key_id: uuid.UUID,
    body: KeyPatch,
    request: Request,
    actor: CurrentActor,
    db: DbSession,
) -> KeyOut:
    """Change name, enabled (enable/disable), expiry, scopes, allowed APIs, limits, IP
    allowlist or metadata. Unknown or read-only fields are refused (422)."""
    assert actor.principal is not None
    async with db.begin():
        await _authorized_key(db, actor.principal, key_id, Role.developer)
        return await service.update_key(db, settings, actor, key_id, body)


@router.post("/keys/{key_id}/rotate", response_model=KeyIssuedOut, responses=_KEY_ERRORS)
async def rotate_key(
    settings: CurrentSettings,
    key_id: uuid.UUID,
    request: Request,
    actor: CurrentActor,
    db: DbSession,
    body: RotateIn | None = None,
) -> KeyIssuedOut:
    """New secret (returned once); the old one keeps working for the grace period."""
    assert actor.principal is not None
    grace = body.grace_seconds if body else None
    async with db.begin():
        await _authorized_key(db, actor.principal, key_id, Role.developer)
        key, raw = await service.rotate_key(db, settings, actor, key_id, grace)
    return KeyIssuedOut(**key.model_dump(), key=raw)


@router.post("/keys/{key_id}/revoke", response_model=KeyOut, responses=_KEY_ERRORS)
async def revoke_key(
    settings: CurrentSettings,
    key_id: uuid.UUID,
    request: Request,
    actor: CurrentActor,
    db: DbSession,
) -> KeyOut:
    """Revoke permanently; gateways reject it within a second."""
    assert actor.principal is not None
    async with db.begin():
        await _authorized_key(db, actor.principal, key_id, Role.developer)
        return await service.revoke_key(db, settings, actor, key_id)


@router.delete("/keys/{key_id}", status_code=204, responses=_KEY_ERRORS)
async def delete_key(
    settings: CurrentSettings,
    key_id: uuid.UUID,
    request: Request,
    actor: CurrentActor,
    db: DbSession,
) -> Response:
    """Delete the key (owners); it disappears from gateways (tombstone). Deleting it
    again answers 204 to the owners of the org it was in (a retried delete); to anyone
    else it is a 404 like any id outside their orgs."""
    assert actor.principal is not None
    async with db.begin():
        deleted_from = await service.org_of_deleted_key(db, key_id)
        if deleted_from is not None and actor.principal.can(deleted_from, Role.viewer):
            authorize_org(actor.principal, deleted_from, Role.owner)
            return Response(status_code=204)
        await _authorized_key(db, actor.principal, key_id, Role.owner)
        await service.delete_key(db, settings, actor, key_id)
    return Response(status_code=204)
