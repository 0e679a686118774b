"""HTTP transport of the request log: validate, authorize, delegate."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from tollgate.contracts.events.gateway import RejectionReason
from tollgate.kit.auth import CurrentPrincipal
from tollgate.kit.db import DbSession
from tollgate.kit.problems import documented_problems
from tollgate.kit.requests import DateTimeText
from tollgate.usage.config import CurrentSettings
from tollgate.usage.reads import read_transaction
from tollgate.usage.requestlog import service
from tollgate.usage.requestlog.repository import LogFilter
from tollgate.usage.requestlog.schemas import RequestLogItem, RequestLogPage
from tollgate.usage.scope import org_scope, time_range

router = APIRouter(prefix="/usage", tags=["request log"])

StatusFilter = Annotated[
    str | None,
    Query(
        pattern=r"^[1-5](\d\d|xx)$",
        description="An exact status (`404`) or a class (`4xx`).",
    ),
]


@router.get("/logs", response_model=RequestLogPage)
async def list_logs(
    settings: CurrentSettings,
    request: Request,
    principal: CurrentPrincipal,
    session: DbSession,
    org_id: uuid.UUID | None = None,
    start: Annotated[DateTimeText | None, Query(alias="from")] = None,
    end: Annotated[DateTimeText | None, Query(alias="to")] = None,
    key_id: uuid.UUID | None = None,
    api_id: uuid.UUID | None = None,
    route_id: uuid.UUID | None = None,
    status: StatusFilter = None,
    outcome: Literal["completed", "rejected"] | None = None,
    mode: Annotated[
        Literal["live", "test"] | None,
        Query(description="Only `live` or only `test` (`tg_test_` keys) requests; default both."),
    ] = None,
    reason: RejectionReason | None = None,
    path_prefix: Annotated[
        str | None, Query(max_length=2048, pattern=r"^[^\x00?#]*$", description="e.g. `/orders`")
    ] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> RequestLogPage:
    """The raw request log, newest first, with filters and cursor pagination."""
    scope = org_scope(principal, org_id)
    span = time_range(
        start,
        end,
        default=timedelta(hours=24),
        longest=timedelta(days=settings.request_log_retention_days + 1),
    )
    exact = int(status) if status and status.isdigit() else None
    where = LogFilter(
        start=span.start,
        end=span.end,
        org_id=scope,
        all_orgs=scope is None,
        key_id=key_id,
        api_id=api_id,
        route_id=route_id,
        status=exact,
        status_class=int(status[0]) if status and exact is None else None,
        outcome=outcome,
        reason=reason.value if reason else None,
        path_prefix=path_prefix,
        mode=mode,
    )
    async with read_transaction(session, settings):
        rows, next_cursor = await service.list_requests(session, where, cursor=cursor, limit=limit)
    return RequestLogPage(items=[RequestLogItem.of(r) for r in rows], next_cursor=next_cursor)


@router.get(
    "/logs/{request_id}",
    response_model=RequestLogItem,
    responses=documented_problems(
        {404: ("No such request in the caller's orgs.", ["request-not-found"])}
    ),
)
async def get_log(
    request_id: uuid.UUID, principal: CurrentPrincipal, session: DbSession
) -> RequestLogItem:
    """One request by its id (the gateway's `X-Request-ID`)."""
    async with session.begin():
        row = await service.find_request(session, principal, request_id)
    return RequestLogItem.of(row)
