"""Credits: the org's balance and status, and its ledger (filterable by kind)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from tollgate.console.web import CurrentSession, backends, org_context, panel, render

router = APIRouter()
KINDS = ("debit", "top_up", "adjustment", "refund", "expiry")


@router.get("/orgs/{org_id}/credits")
async def credits_page(
    request: Request,
    org_id: uuid.UUID,
    session: CurrentSession,
    kind: Annotated[str | None, Query(max_length=20)] = None,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    client = backends(request)
    token = session.access_token
    chosen = kind if kind in KINDS else None
    ctx, balance, page = await asyncio.gather(
        org_context(request, session, org_id),
        panel(client.balance(token, org_id)),
        panel(client.transactions(token, org_id, cursor, chosen)),
    )
    return render(
        request,
        "credits.html",
        {
            "ctx": ctx,
            "me": ctx.me,
            "orgs": ctx.orgs,
            "org": ctx.org,
            "balance": balance,
            "page": page,
            "kind": chosen or "",
            "kinds": KINDS,
        },
    )
