"""The logs explorer: the request log with its filters in the URL, and one request.

Filters are passed to usage as they are; what usage refuses (a malformed status, say)
comes back as a problem and is shown above the table. The mode filter shows live
requests by default, or those of `tg_test_` keys (`test`), or both (`all`); every row
says which mode it was.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from tollgate.console.backends import BackendProblem
from tollgate.console.pages.orgs import time_range, traffic_mode
from tollgate.console.web import CurrentSession, backends, org_context, panel, render

router = APIRouter()
LOG_RANGES = ("1h", "24h", "7d")
LOG_MODES = ("live", "test", "all")


@router.get("/orgs/{org_id}/logs")
async def log_list(
    request: Request,
    org_id: uuid.UUID,
    session: CurrentSession,
    status: Annotated[str | None, Query(max_length=10)] = None,
    key_id: Annotated[str | None, Query(max_length=40)] = None,
    api_id: Annotated[str | None, Query(max_length=40)] = None,
    path_prefix: Annotated[str | None, Query(max_length=2048)] = None,
    range: Annotated[str | None, Query(max_length=10)] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    request_id: Annotated[str | None, Query(max_length=64)] = None,
    mode: Annotated[str | None, Query(max_length=10)] = None,
) -> Response:
    if request_id:
        try:
            wanted = uuid.UUID(request_id.strip())
        except ValueError:
            wanted = None
        if wanted is not None:
            return RedirectResponse(f"/orgs/{org_id}/logs/{wanted}", status_code=303)
    client = backends(request)
    token = session.access_token
    chosen, start, end = time_range(range, LOG_RANGES)
    shown = traffic_mode(mode, LOG_MODES)
    filters: dict[str, Any] = {
        "mode": None if shown == "all" else shown,
        "status": (status or "").strip(),
        "key_id": key_id,
        "api_id": api_id,
        "path_prefix": path_prefix,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "cursor": cursor,
    }
    ctx, page, keys, apis = await asyncio.gather(
        org_context(request, session, org_id),
        panel(client.logs(token, org_id, filters)),
        panel(client.keys(token, org_id, None)),
        panel(client.apis(token)),
    )
    key_names = {str(k.id): k.name for k in (keys.value.items if keys.value else [])}
    api_names = {str(a.id): a.name for a in apis.value or []}
    template = "logs_table.html" if request.headers.get("hx-request") else "logs.html"
    # The same filters in test mode: offered when live shows nothing (a new org's first
    # calls are usually made with a tg_test_ key).
    shown_filters = {"status": status, "key_id": key_id, "api_id": api_id}
    shown_filters |= {"path_prefix": path_prefix, "range": chosen, "mode": "test"}
    test_query = urlencode({k: v for k, v in shown_filters.items() if v})
    return render(
        request,
        template,
        {
            "ctx": ctx,
            "me": ctx.me,
            "orgs": ctx.orgs,
            "org": ctx.org,
            "page": page,
            "filters": {
                "status": status or "",
                "key_id": key_id or "",
                "api_id": api_id or "",
                "path_prefix": path_prefix or "",
                "range": chosen,
                "mode": shown,
            },
            "ranges": LOG_RANGES,
            "modes": LOG_MODES,
            "test_url": f"/orgs/{org_id}/logs?{test_query}",
            "key_names": key_names,
            "api_names": api_names,
            "filtered": any((status, key_id, api_id, path_prefix)) or shown != "live",
        },
    )


@router.get("/orgs/{org_id}/logs/{request_id}")
async def log_detail(
    request: Request, org_id: uuid.UUID, request_id: uuid.UUID, session: CurrentSession
) -> Response:
    client = backends(request)
    token = session.access_token
    ctx, item, keys, apis = await asyncio.gather(
        org_context(request, session, org_id),
        panel(client.log(token, request_id)),
        panel(client.keys(token, org_id, None)),
        panel(client.apis(token)),
    )
    if item.value is not None and item.value.org_id != org_id:
        # Another org's request (its reader may see both orgs) is not shown under this one.
        raise BackendProblem("usage", 404, {"title": "Not Found"})
    return render(
        request,
        "log.html",
        {
            "ctx": ctx,
            "me": ctx.me,
            "orgs": ctx.orgs,
            "org": ctx.org,
            "item": item,
            "request_id": request_id,
            "key_names": {str(k.id): k.name for k in (keys.value.items if keys.value else [])},
            "api_names": {str(a.id): a.name for a in apis.value or []},
        },
    )
