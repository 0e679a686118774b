"""Outbound SMS: the org's message log (status filter, paged), one message with its
status timeline, and the operator's price table (prefix → credits per segment).

Messages are sent through the gateway with an API key, not from the console; these
pages only read notifier's log with the member's token. Another org's message id is a
404 (notifier answers 404 for it).
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from tollgate.console.backends import BackendDown, BackendProblem
from tollgate.console.pages.operator import operator_page, require_operator
from tollgate.console.web import CurrentSession, OrgNotFound, backends, org_context, panel, render

router = APIRouter()
STATUSES = ("queued", "sent", "delivered", "undelivered", "failed")
PREFIX = re.compile(r"^\+[0-9]{0,15}$")
INTEGER = re.compile(r"^[0-9]{1,13}$")


@router.get("/orgs/{org_id}/sms")
async def sms_log(
    request: Request,
    org_id: uuid.UUID,
    session: CurrentSession,
    status: Annotated[
        Literal["", "queued", "sent", "delivered", "undelivered", "failed"], Query()
    ] = "",
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    ctx = await org_context(request, session, org_id)
    page = await panel(
        backends(request).sms_sent(session.access_token, org_id, status or None, cursor)
    )
    return render(
        request,
        "sms.html",
        {
            "ctx": ctx,
            "me": ctx.me,
            "orgs": ctx.orgs,
            "org": ctx.org,
            "page": page,
            "status": status,
            "statuses": STATUSES,
        },
    )


@router.get("/orgs/{org_id}/sms/{message_id}")
async def sms_message(
    request: Request, org_id: uuid.UUID, message_id: uuid.UUID, session: CurrentSession
) -> Response:
    ctx = await org_context(request, session, org_id)
    message = await panel(backends(request).sms_message(session.access_token, org_id, message_id))
    if message.problem is not None and message.problem.status == 404:
        raise OrgNotFound
    return render(
        request,
        "sms_message.html",
        {"ctx": ctx, "me": ctx.me, "orgs": ctx.orgs, "org": ctx.org, "message": message},
    )


async def _prices_page(
    request: Request,
    session: CurrentSession,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    problem: BackendProblem | None = None,
    down: bool = False,
    status: int = 200,
) -> Response:
    me, orgs = await require_operator(request, session)
    prices = await panel(backends(request).sms_prices(session.access_token))
    return operator_page(
        request,
        "admin_sms_prices.html",
        me,
        orgs,
        "sms-prices",
        status=status,
        prices=prices,
        values=values or {},
        errors=errors or {},
        problem=problem,
        down=down,
        done=request.query_params.get("done", ""),
    )


@router.get("/admin/sms/prices")
async def sms_prices(request: Request, session: CurrentSession) -> Response:
    return await _prices_page(request, session)


@router.post("/admin/sms/prices")
async def set_sms_price(request: Request, session: CurrentSession) -> Response:
    """Set (or, with `delete`, remove) the price per segment of one prefix."""
    await require_operator(request, session)
    form = await request.form()
    values = {k: v.strip() for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
    prefix, price = values.get("prefix", ""), values.get("price_per_segment", "")
    errors: dict[str, str] = {}
    if not PREFIX.fullmatch(prefix):
        errors["prefix"] = "prefix"
    deleting = values.get("delete") == "1"
    if not deleting and not INTEGER.fullmatch(price):
        errors["price_per_segment"] = "number"
    if errors:
        return await _prices_page(request, session, values=values, errors=errors, status=400)
    client = backends(request)
    try:
        if deleting:
            await client.delete_sms_price(session.access_token, prefix)
        else:
            await client.set_sms_price(session.access_token, prefix, int(price))
    except BackendProblem as exc:
        return await _prices_page(
            request, session, values=values, errors=exc.field_errors, problem=exc, status=exc.status
        )
    except BackendDown:
        return await _prices_page(request, session, values=values, down=True, status=503)
    return RedirectResponse(
        "/admin/sms/prices?done=" + ("deleted" if deleting else "saved"), status_code=303
    )
