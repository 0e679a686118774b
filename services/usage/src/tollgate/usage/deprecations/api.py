"""HTTP transport of deprecation notices: what was announced, for the operator."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from tollgate.kit.auth import CurrentPrincipal, require_admin
from tollgate.kit.db import DbSession
from tollgate.kit.pagination import (
    DEFAULT_PAGE_SIZE,
    Cursor,
    Page,
    PageSize,
    int_cursor,
    next_cursor_of,
)
from tollgate.kit.problems import documented_problems
from tollgate.usage.deprecations import repository

router = APIRouter(tags=["deprecations"])

_ERRORS = documented_problems(
    {
        401: "Missing or invalid token.",
        403: "Platform admins only.",
        422: ("Invalid id, or a cursor that is not one of ours.", ["invalid-cursor"]),
    }
)


class DeprecationNotice(BaseModel):
    """One deprecation announced to the callers of an API or of one of its routes."""

    model_config = ConfigDict(from_attributes=True)

    route_id: uuid.UUID | None = Field(description="The deprecated route; null: the whole API.")
    sunset_at: datetime | None = Field(description="The Sunset date announced; null: none yet.")
    orgs_notified: int = Field(
        description="Orgs whose live keys called it in the 30 days before, each told once."
    )
    announced_at: datetime = Field(description="When usage saw the deprecation and told them.")
    api_version: int = Field(description="The registry version of the API it was seen in.")


@router.get(
    "/apis/{api_id}/deprecation-notices",
    response_model=Page[DeprecationNotice],
    responses=_ERRORS,
)
async def list_deprecation_notices(
    api_id: uuid.UUID,
    principal: CurrentPrincipal,
    session: DbSession,
    cursor: Cursor = None,
    limit: PageSize = DEFAULT_PAGE_SIZE,
) -> Page[DeprecationNotice]:
    """The deprecations of the API and of its routes announced so far, newest first: one
    per (route, Sunset date), with how many orgs were told. Platform admins only; an
    API nothing was announced for (or no API at all) has none."""
    require_admin(principal)
    rows = await repository.announcements(
        session, api_id, before=int_cursor(cursor), limit=limit + 1
    )
    page, next_cursor = next_cursor_of(rows, limit, "id")
    return Page[DeprecationNotice](
        items=[DeprecationNotice.model_validate(row) for row in page], next_cursor=next_cursor
    )
