"""Buy credits: the credit packs on sale, "buy" by Stripe Checkout (the browser is sent
to the checkout URL billing answers), and the org's receipts.

`/orgs/{org}/billing` is also where Checkout sends the customer back
(`?purchase=…&result=success|cancelled`, billing's `CONSOLE_URL`; a subscription's
`?plan=…` return goes on to the plan page): the page says so, but
credits are added only by billing when Stripe reports the payment, never on this
redirect. In billing's `manual` mode there is no card payment: the page says that an
operator adds credits.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from tollgate.console.backends import BackendDown, BackendProblem
from tollgate.console.web import CurrentSession, OrgContext, backends, org_context, panel, render

router = APIRouter()
PACK_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def can_buy(ctx: OrgContext) -> bool:
    """Billing lets owners start a Checkout."""
    return ctx.role == "owner"


async def _billing_page(
    request: Request,
    org_id: uuid.UUID,
    token: str,
    ctx: OrgContext,
    *,
    cursor: str | None = None,
    problem: BackendProblem | None = None,
    down: bool = False,
    status: int = 200,
) -> Response:
    client = backends(request)
    packs, page = await asyncio.gather(
        panel(client.credit_packs(token)), panel(client.purchases(token, org_id, cursor))
    )
    result = request.query_params.get("result")
    return render(
        request,
        "billing.html",
        {
            "ctx": ctx,
            "me": ctx.me,
            "orgs": ctx.orgs,
            "org": ctx.org,
            "packs": packs,
            "page": page,
            "can_buy": can_buy(ctx),
            "result": result if result in ("success", "cancelled") else None,
            "problem": problem,
            "down": down,
        },
        status=status,
    )


@router.get("/orgs/{org_id}/billing")
async def billing_page(
    request: Request,
    org_id: uuid.UUID,
    session: CurrentSession,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    ctx = await org_context(request, session, org_id)
    if request.query_params.get("plan") and request.query_params.get("result") in (
        "success",
        "cancelled",
    ):
        # Billing returns subscription Checkouts here too: the plan page tells that story.
        result = request.query_params["result"]
        return RedirectResponse(f"/orgs/{org_id}/plan?subscription={result}", status_code=303)
    return await _billing_page(request, org_id, session.access_token, ctx, cursor=cursor)


@router.post("/orgs/{org_id}/billing/checkout")
async def buy_pack(request: Request, org_id: uuid.UUID, session: CurrentSession) -> Response:
    """Start a Checkout for one pack and send the browser to it (303)."""
    ctx = await org_context(request, session, org_id)
    pack_id = str((await request.form()).get("pack_id", ""))
    if not PACK_ID.fullmatch(pack_id):
        return await _billing_page(request, org_id, session.access_token, ctx, status=400)
    try:
        started = await backends(request).checkout(session.access_token, org_id, pack_id)
    except BackendProblem as exc:
        status = exc.status if exc.status in (400, 403, 404, 409, 422) else 400
        return await _billing_page(
            request, org_id, session.access_token, ctx, problem=exc, status=status
        )
    except BackendDown:
        return await _billing_page(
            request, org_id, session.access_token, ctx, down=True, status=503
        )
    return RedirectResponse(started.checkout_url, status_code=303)
